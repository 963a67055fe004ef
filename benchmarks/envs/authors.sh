#!/usr/bin/env bash
# Create .venv-authors: the authors' FuseMap 1.1.3, used only as a comparator. It pins torch 2.0.1
# and dgl 1.1.1 (DGL does not work with newer torch); its declared dependencies include an LLM
# agent stack that integration does not use, so the wheel is installed WITHOUT dependencies and the
# ones it imports for integration are pinned here. About 5 GB.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${AUTHORS_VENV:-.venv-authors}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
[ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
stamp="$VENV/.authors-installed"
want="$(sha1sum < "$0" | cut -c1-16)"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
uv() { "$VENV/bin/uv" pip install --python "$VENV/bin/python" --quiet "$@"; }
uv "torch==2.0.1" "dgl==1.1.1" "scanpy==1.9.3" "anndata<0.12" "numpy<2" "matplotlib<3.9" \
   "harmonypy==0.0.10" leidenalg "sparse==0.14.0" easydict "pandas<2.2" "scipy<1.13" \
   "scikit-learn<1.6" "umap-learn<0.6" tqdm seaborn
uv --no-deps "fusemap==1.1.3"
echo "$want" > "$stamp"
