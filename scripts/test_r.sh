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

version=$(awk '/^Version:/ {print $2}' rpkg/DESCRIPTION)
tarball="FuseMap_${version}.tar.gz"
t0=$(date +%s)
(cd "$OUT" && rm -f "$tarball" && R CMD build --no-build-vignettes "$ROOT/rpkg" >build.log 2>&1) ||
  { cat "$OUT/build.log"; exit 1; }
R CMD INSTALL --library="$OUT/lib" "$OUT/$tarball" >"$OUT/install.log" 2>&1 ||
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
(cd "$OUT" && _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual --no-tests --ignore-vignettes "$tarball" >check.log 2>&1) ||
  { cat "$OUT/check.log"; exit 1; }
status=$(grep -E "^Status:" "$OUT/FuseMap.Rcheck/00check.log" || true)
t3=$(date +%s)
echo "[test-r] R CMD check: ${status:-no status line}"
echo "[test-r] seconds: build+install $((t1 - t0)), testthat $((t2 - t1)), check $((t3 - t2))"
if grep -qE "^Status:.*(ERROR|WARNING)" "$OUT/FuseMap.Rcheck/00check.log"; then
  grep -B2 -A12 -E "\.\.\. (ERROR|WARNING)" "$OUT/FuseMap.Rcheck/00check.log"
  exit 1
fi

# The R vignette, knitted with the test settings (FUSEMAP_VIGNETTE_FAST=1: 3 epochs, 300 cells per
# section); any chunk error fails. Skipped with the reason when the shared data is absent.
data=${FUSEMAP_DATA_DIR:-$ROOT/../shared/data}
if [ -f "$data/starmap_mpfc_BZ14.h5ad" ]; then
  echo "[test-r] knitting rpkg/vignettes/FuseMap.Rmd (fast settings)"
  rm -rf "$OUT/vignette" && mkdir -p "$OUT/vignette"
  (cd "$OUT/vignette" && FUSEMAP_DATA_DIR=$data FUSEMAP_VIGNETTE_FAST=1 Rscript -e "
    knitr::knit('$ROOT/rpkg/vignettes/FuseMap.Rmd', output = 'FuseMap.md', quiet = TRUE)
    md <- readLines('FuseMap.md')
    stopifnot(any(grepl('query accuracy against the authors', md)), any(grepl('Pearson r, imputed vs measured', md)),
              length(list.files('figure', pattern = '[.]png\$')) >= 4)" >log.txt 2>&1) ||
    { tail -n 40 "$OUT/vignette/log.txt"; exit 1; }
  echo "[test-r] R vignette: knitted in $(( $(date +%s) - t3 )) s"
else
  echo "[test-r] R vignette: skipped (shared data not found in $data; set FUSEMAP_DATA_DIR)"
fi
