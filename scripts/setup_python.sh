#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install fusemap with the extras named in
# $FUSEMAP_EXTRAS (default: test,spatialdata). Idempotent: re-running only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS=${FUSEMAP_EXTRAS:-test,spatialdata}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/uv" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
fi

# uv does not read pip's configuration: hand it the find-links folder that pip's configuration
# names (where the machine keeps its CPU build of torch), only when that folder exists.
fl=$("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true)
if [ -n "$fl" ] && [ -d "$fl" ]; then export UV_FIND_LINKS="$fl"; fi

# The stamp holds the hash of what was installed and the extras installed with it. A request is
# satisfied when the hash matches and its extras are among those installed (so `make docs`, which
# adds the docs extra, and `make setup` do not reinstall in turn); otherwise the union is installed.
stamp="$VENV/.fusemap-installed"
hash="$(cat pyproject.toml scripts/setup_python.sh | sha1sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cut -d- -f1 "$stamp")" = "$hash" ]; then
  have=",$(cut -d- -f2- "$stamp"),"
  missing=""
  for e in ${EXTRAS//,/ }; do
    case "$have" in *",$e,"*) ;; *) missing="$missing,$e" ;; esac
  done
  [ -z "$missing" ] && exit 0
  EXTRAS="$(cut -d- -f2- "$stamp")$missing"
fi
want="$hash-$EXTRAS"
echo "[setup] installing torch and fusemap[$EXTRAS] into $VENV"
# torch first: the CPU wheel of 2.13.0 satisfies the package's range, so nothing else pulls CUDA.
# --compile-bytecode: uv writes no .pyc by default, and where PYTHONDONTWRITEBYTECODE is set (CI)
# every Python process then compiled torch, scanpy and the rest from source: importing them took
# 28.9 s instead of 9.6 s, in each test subprocess, notebook kernel and CLI call. Each install
# compiles only the packages it installs, so torch needs the flag too: without it, importing torch
# and building an Adam optimiser (which imports torch._dynamo) took 6.7 s instead of 3.0 s.
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --quiet --compile-bytecode "torch==2.13.0"
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --quiet --compile-bytecode -e ".[$EXTRAS]"
echo "$want" > "$stamp"
