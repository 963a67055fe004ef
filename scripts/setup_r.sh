#!/usr/bin/env bash
# Install what the R side needs, skipping whatever is already there (safe to run again):
#  1. Debian's R 4.2.2 with reticulate, Bioconductor infrastructure and testthat (apt);
#  2. SpatialExperiment 1.16.0, which this Debian release lacks: its source archive from Debian's
#     next release (r-bioc-spatialexperiment), fetched with apt's own tools from the archive this
#     machine's apt configuration names, checked against the signed index, built with R CMD INSTALL;
#  3. rpy2 and anndata2ri into the project's .venv (the `r` extra), for fusemap.io.
# Needs root for apt (as on the development and CI machines) unless everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
NEXT_SUITE=${FUSEMAP_R_SOURCE_SUITE:-trixie}   # Debian release that ships SpatialExperiment 1.16
SPE_VERSION=1.16.0
WORK=build/r/apt-src

DEBS=(r-base-core r-cran-reticulate r-cran-cli r-cran-jsonlite r-cran-matrix r-cran-testthat
      r-bioc-biocgenerics r-bioc-s4vectors r-bioc-summarizedexperiment r-bioc-singlecellexperiment
      r-cran-rjson r-cran-magick r-bioc-biocfilecache
      r-cran-knitr r-cran-rmarkdown r-cran-uwot    # the R vignette (rmarkdown brings pandoc)
      libopenblas0-pthread)  # R's BLAS; torch inside R uses it (reference BLAS: training ~10x slower)

# -- 1. Debian packages --------------------------------------------------------------------------------
missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup-r] apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- 2. SpatialExperiment from Debian's next release --------------------------------------------------
if ! Rscript --vanilla -e "q(status = as.integer(!nzchar(system.file(package = 'SpatialExperiment')) ||
                  packageVersion('SpatialExperiment') < '$SPE_VERSION'))" >/dev/null 2>&1; then
  echo "[setup-r] SpatialExperiment $SPE_VERSION from Debian's $NEXT_SUITE source archive"
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  # the archive this machine's apt uses for its own release's main component
  uri=$(apt-cache policy | awk -v s="$codename/main" '$3 == s {print $2; exit}')
  if [ -z "$uri" ]; then
    apt-get update -qq
    uri=$(apt-cache policy | awk -v s="$codename/main" '$3 == s {print $2; exit}')
  fi
  [ -n "$uri" ] || { echo "[setup-r] no apt source for $codename/main is configured" >&2; exit 1; }
  mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
  echo "deb-src $uri $NEXT_SUITE main" > "$WORK/sources.list"
  aptopts=(-o "Dir::Etc::SourceList=$PWD/$WORK/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$PWD/$WORK/lists" -o "Dir::Cache=$PWD/$WORK/cache"
           -o APT::Sandbox::User=root)
  apt-get "${aptopts[@]}" update -qq
  # the upstream tarball (*.orig.tar.*) with its SHA256 from the signed source index
  line=$(apt-get "${aptopts[@]}" source --print-uris r-bioc-spatialexperiment 2>/dev/null |
         grep -E "^'[^']+\.orig\.tar\.[a-z]+'" | head -n1)
  [ -n "$line" ] || { echo "[setup-r] r-bioc-spatialexperiment not found in $NEXT_SUITE" >&2; exit 1; }
  url=$(echo "$line" | awk '{gsub("\x27", "", $1); print $1}')
  file=$(echo "$line" | awk '{print $2}')
  hash=$(echo "$line" | awk '{print $4}')   # SHA256:<hex>
  /usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$url" "$WORK/$file" "$hash" >/dev/null
  rm -rf "$WORK/src" && mkdir -p "$WORK/src"
  tar -xf "$WORK/$file" -C "$WORK/src"
  R CMD INSTALL --no-test-load "$WORK/src/SpatialExperiment" >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; exit 1; }
fi

# -- 3. rpy2 + anndata2ri in the project's virtual environment ----------------------------------------
if [ -x "$VENV/bin/python" ]; then
  stamp="$VENV/.fusemap-r-installed"
  want="$(cat pyproject.toml scripts/setup_r.sh | sha1sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] ||
     ! "$VENV/bin/python" -c "import importlib.util as u; assert u.find_spec('rpy2') and u.find_spec('anndata2ri')" \
       >/dev/null 2>&1; then
    echo "[setup-r] installing fusemap[r] (rpy2, anndata2ri) into $VENV"
    fl=$("$VENV/bin/python" -m pip config get global.find-links 2>/dev/null || true)
    if [ -n "$fl" ] && [ -d "$fl" ]; then export UV_FIND_LINKS="$fl"; fi
    "$VENV/bin/uv" pip install --python "$VENV/bin/python" --quiet -e ".[r]"
    echo "$want" > "$stamp"
  fi
fi
