# One entry point for people and CI. `make demo` runs the main job, `make test` runs every test.
# Both install what they need first (Python virtual environment; R and its packages for tests).
VENV ?= .venv
PY := $(VENV)/bin/python
export FUSEMAP_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup setup-r demo test test-python test-r r-package docs vignettes bench bench-report bench-perf clean

setup:
	@scripts/setup_python.sh

# R, SpatialExperiment and rpy2 (scripts/setup_r.sh); before the Python tests, which test fusemap.io.
setup-r: setup
	@scripts/setup_r.sh

demo: setup
	$(VENV)/bin/fusemap demo --out results/demo --overwrite

test-python: setup setup-r
	$(PY) -m pytest -q

# the R package: testthat tests and R CMD check (scripts/test_r.sh)
test-r: setup-r
	@scripts/test_r.sh

# the documentation is built last: it shows the tutorials as tests/project/test_vignettes.py just
# rendered them (build/vignettes-fast), and a docstring Sphinx cannot read fails the build
test: test-python test-r docs

# API reference, CLI reference and the tutorials as last rendered (make vignettes, or make test) ->
# docs/_build/html; warnings are errors. The notebooks are not executed here (docs/conf.py).
docs:
	@FUSEMAP_EXTRAS=test,spatialdata,docs scripts/setup_python.sh
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "[docs] docs/_build/html/index.html"

# the R package tarball, carrying the fusemap wheel (for installFuseMap()) and the vignette
r-package: setup-r
	@scripts/build_r.sh build/r

# Tutorials executed and rendered to vignettes/_build/*.ipynb and *.html (see vignettes/README.md);
# VIGNETTE_ARGS go to vignettes/render.py (e.g. "01 R", --fast, --no-r).
vignettes: setup-r
	@FUSEMAP_EXTRAS=test,spatialdata,docs scripts/setup_python.sh
	@mkdir -p build/r/lib && R CMD INSTALL --no-test-load --library=build/r/lib rpkg >build/r/vignettes-install.log 2>&1 \
	  || { cat build/r/vignettes-install.log; exit 1; }
	$(PY) vignettes/render.py $(VIGNETTE_ARGS)

# Benchmarks against other methods in their own environments (never installed by `make test`);
# see benchmarks/README.md. Writes benchmarks/results. BENCH_ARGS go to python -m benchmarks.run.
bench:
	benchmarks/run.sh $(BENCH_ARGS)

# Speed and memory: this project vs the authors' FuseMap 1.1.3, and a scaling curve to 1M cells
# (hours on 2 CPU cores); see benchmarks/performance/README.md. BENCH_PERF_ARGS go to its run.py.
# The report cases (held out: no default was chosen on them): ours at defaults and on the shared genes
# only, 3 seeds, against Harmony, PCA, majority class, gimVI, Tangram and scANVI; resumes from
# benchmarks/results/report_cases/*.jsonl. Writes benchmarks/results/report_cases/REPORT.md.
bench-report: setup
	benchmarks/envs/bench.sh
	FUSEMAP_DATA_DIR=$${FUSEMAP_DATA_DIR:-$$(cd .. && pwd)/shared/data} $(PY) -m benchmarks.ablation \
	  --cases hippocampus_xenium_slideseq,cortex_three_tech,hippocampus_scref \
	  --variants default,shared_genes_only --seeds 0,1,2 --comparator-seeds 0,1,2 --query \
	  --out benchmarks/results/report_cases
	$(PY) -m benchmarks.ablation --report --out benchmarks/results/report_cases

bench-perf: setup
	benchmarks/envs/authors.sh
	$(PY) benchmarks/performance/run.py $(BENCH_PERF_ARGS)

clean:
	rm -rf results .pytest_cache docs/_build docs/_generated docs/api/generated docs/tutorials
