#!/usr/bin/env bash
# Install R and Seurat v4 from Debian's packages (r-cran-seurat) for the Seurat baseline.
set -euo pipefail
if Rscript -e 'quit(status = !requireNamespace("Seurat", quietly = TRUE))' >/dev/null 2>&1; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends r-base-core r-cran-seurat r-cran-matrix
