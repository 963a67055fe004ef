#!/usr/bin/env bash
# One command for the whole benchmark: set up the benchmark-only environments (.venv-bench,
# .venv-authors, R + Seurat from Debian), then run every method on every case and write
# benchmarks/results. Extra arguments go to `python -m benchmarks.run` (e.g. --seeds 1, --reuse).
set -euo pipefail
cd "$(dirname "$0")/.."
export FUSEMAP_DATA_DIR=${FUSEMAP_DATA_DIR:-$(cd .. && pwd)/shared/data}
benchmarks/envs/bench.sh
benchmarks/envs/authors.sh || echo "[bench] authors' FuseMap environment failed; its row will say why"
benchmarks/envs/seurat.sh || echo "[bench] R/Seurat set-up failed; its row will say why"
exec .venv-bench/bin/python -m benchmarks.run "$@"
