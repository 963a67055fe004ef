#!/usr/bin/env bash
# Build the FuseMap R package tarball into $1 (default build/r): the Python package's wheel goes
# into rpkg/inst/python first (installFuseMap() installs it, so an installed R package carries the
# Python of its own version), and the vignette is knitted into the tarball when a Python with
# fusemap is found (FUSEMAP_PYTHON or the project's .venv); without one it shows code only.
# Prints the tarball's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-build/r}
mkdir -p "$OUT"
rm -rf rpkg/inst/python && mkdir -p rpkg/inst/python
.venv/bin/uv build --quiet --wheel --out-dir rpkg/inst/python "$ROOT" >"$OUT/wheel.log" 2>&1 ||
  { cat "$OUT/wheel.log"; exit 1; }
rm -f rpkg/inst/python/.gitignore
export FUSEMAP_PYTHON=${FUSEMAP_PYTHON:-$ROOT/.venv/bin/python}
version=$(awk '/^Version:/ {print $2}' rpkg/DESCRIPTION)
tarball="FuseMap_${version}.tar.gz"
(cd "$OUT" && rm -f "$tarball" && R CMD build "$ROOT/rpkg" >build.log 2>&1) ||
  { tail -n 60 "$OUT/build.log"; exit 1; }
echo "$OUT/$tarball"
