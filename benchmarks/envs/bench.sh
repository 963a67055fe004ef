#!/usr/bin/env bash
# Create .venv-bench: the project (editable) plus the Python baselines of the benchmark
# (Scanorama, scVI, STAGATE, GraphST; gimVI and Tangram for imputation). Separate from .venv so that
# `make test` never installs them.
# Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${BENCH_VENV:-.venv-bench}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
[ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
# uv ignores pip's configuration: give it the machine's find-links folder (CPU torch) when present.
fl=$("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true)
if [ -n "$fl" ] && [ -d "$fl" ]; then export UV_FIND_LINKS="$fl"; fi
stamp="$VENV/.bench-installed"
want="$(cat pyproject.toml "$0" | sha1sum | cut -c1-16)"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
uv() { "$VENV/bin/uv" pip install --python "$VENV/bin/python" --quiet "$@"; }
uv "torch==2.13.0"
uv -e ".[test]" "scanorama>=1.7" "scvi-tools>=1.2,<1.5" "stagate-modern>=1.0" "torch-geometric>=2.5" \
   "pot>=0.9" "torch>=2.3,<2.14" "tangram-sc==1.0.4"
# GraphST 1.1.1 pins old releases of its dependencies; everything it imports is installed above
# (plus pot, which it imports without declaring), so install it alone.
uv --no-deps "GraphST==1.1.1"
echo "$want" > "$stamp"
