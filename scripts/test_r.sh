#!/usr/bin/env bash
# R side of `make test`: build the FuseMap R package, install it into build/r/lib, run its testthat
# tests against the project's Python (.venv), then `R CMD check` the built package (tests are not
# run twice). Fails on any test failure and on any ERROR or WARNING from R CMD check.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=build/r
mkdir -p "$OUT/lib"
export FUSEMAP_PYTHON=${FUSEMAP_PYTHON:-$ROOT/.venv/bin/python}
export FUSEMAP_R_STRICT=1           # missing Python fails the tests instead of skipping them
export RPY2_CFFI_MODE=ABI
export R_LIBS="$ROOT/$OUT/lib${R_LIBS:+:$R_LIBS}"

data=${FUSEMAP_DATA_DIR:-$ROOT/../shared/data}
t0=$(date +%s)
# The tarball carries the Python wheel and the vignette, knitted with the test settings
# (FUSEMAP_VIGNETTE_FAST=1: 3 epochs, 300 cells per section).
tarball=$(FUSEMAP_DATA_DIR=$data FUSEMAP_VIGNETTE_FAST=1 scripts/build_r.sh "$OUT" | tail -n 1)
R CMD INSTALL --library="$OUT/lib" "$tarball" >"$OUT/install.log" 2>&1 ||
  { cat "$OUT/install.log"; exit 1; }
t1=$(date +%s)

echo "[test-r] testthat (rpkg/tests/testthat)"
Rscript -e '
suppressPackageStartupMessages(library(FuseMap))
res <- as.data.frame(testthat::test_dir("rpkg/tests/testthat", package = "FuseMap",
                                        load_package = "installed", stop_on_failure = FALSE))
n_fail <- sum(res$failed > 0 | res$error)
n_skip <- sum(res$skipped & !(res$failed > 0 | res$error))
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n", nrow(res) - n_fail - n_skip, n_fail, n_skip))
quit(status = as.integer(n_fail > 0))
'
t2=$(date +%s)

echo "[test-r] R CMD check $tarball"
# --ignore-vignettes: the vignette needs Python and the shared data; it is knitted below instead.
(cd "$OUT" && _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual --no-tests --ignore-vignettes "$(basename "$tarball")" >check.log 2>&1) ||
  { cat "$OUT/check.log"; exit 1; }
status=$(grep -E "^Status:" "$OUT/FuseMap.Rcheck/00check.log" || true)
t3=$(date +%s)
echo "[test-r] R CMD check: ${status:-no status line}"
echo "[test-r] seconds: build+install $((t1 - t0)), testthat $((t2 - t1)), check $((t3 - t2))"
if grep -qE "^Status:.*(ERROR|WARNING)" "$OUT/FuseMap.Rcheck/00check.log"; then
  grep -B2 -A12 -E "\.\.\. (ERROR|WARNING)" "$OUT/FuseMap.Rcheck/00check.log"
  exit 1
fi

# The vignette knitted into the tarball: its results are there (any chunk error failed the build).
# Skipped with the reason when the shared data is absent.
if [ -f "$data/starmap_mpfc_BZ14.h5ad" ]; then
  rm -rf "$OUT/vignette" && mkdir -p "$OUT/vignette"
  tar -xzf "$tarball" -C "$OUT/vignette" FuseMap/inst/doc/FuseMap.html
  html="$OUT/vignette/FuseMap/inst/doc/FuseMap.html"
  for want in "query accuracy against the authors" "Pearson r, imputed vs measured"; do
    grep -q "$want" "$html" || { echo "[test-r] the built vignette lacks '$want'"; exit 1; }
  done
  figures=$(grep -o 'data:image/png' "$html" | wc -l)
  [ "$figures" -ge 4 ] || { echo "[test-r] the built vignette has $figures figures (< 4)"; exit 1; }
  echo "[test-r] R vignette: built into the tarball with its results and $figures figures"
else
  echo "[test-r] R vignette: results not checked (shared data not found in $data; set FUSEMAP_DATA_DIR)"
fi

# A new R user: the tarball installed into an empty library, no FUSEMAP_PYTHON, outside the
# project; installFuseMap() makes the Python environment, then FuseMap finds it and the vignette.
echo "[test-r] installFuseMap() from a clean R library"
t4=$(date +%s)
clean=$(mktemp -d)
trap 'rm -rf "$clean"' EXIT
mkdir -p "$clean/lib" "$clean/work"
R CMD INSTALL --library="$clean/lib" "$tarball" >"$OUT/clean-install.log" 2>&1 ||
  { cat "$OUT/clean-install.log"; exit 1; }
(cd "$clean/work" && env -u FUSEMAP_PYTHON -u FUSEMAP_R_STRICT R_LIBS="$clean/lib" \
   R_USER_DATA_DIR="$clean/data" Rscript -e '
  library(FuseMap)
  stopifnot(is.null(fusemapPython()), !fusemapAvailable())
  py <- installFuseMap()
  stopifnot(identical(fusemapPython(), py), startsWith(py, Sys.getenv("R_USER_DATA_DIR")))
  stopifnot(fusemapAvailable())
  stopifnot(nrow(vignette(package = "FuseMap")$results) == 1L)
  cat("fusemap", FuseMap:::.fusemap_py()$fusemap$`__version__`, "from", py, "\n")
' >"$ROOT/$OUT/clean.log" 2>&1) || { tail -n 40 "$ROOT/$OUT/clean.log"; exit 1; }
tail -n 1 "$OUT/clean.log"
echo "[test-r] installFuseMap(): $(( $(date +%s) - t4 )) s"
