# One entry point for people and CI. `make demo` runs the main job, `make test` runs every test.
# Both install what they need first (Python virtual environment; R and its packages for tests).
VENV ?= .venv
PY := $(VENV)/bin/python
export FUSEMAP_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup demo test test-python bench clean

setup:
	@scripts/setup_python.sh

demo: setup
	$(VENV)/bin/fusemap demo --out results/demo --overwrite

test-python: setup
	$(PY) -m pytest -q

test: test-python

# Benchmarks against other methods in their own environments (never installed by `make test`);
# see benchmarks/README.md. Writes benchmarks/results. BENCH_ARGS go to python -m benchmarks.run.
bench:
	benchmarks/run.sh $(BENCH_ARGS)

clean:
	rm -rf results .pytest_cache
