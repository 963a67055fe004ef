# One entry point for people and CI. `make demo` runs the main job, `make test` runs every test.
# Both install what they need first (Python virtual environment; R and its packages for tests).
VENV ?= .venv
PY := $(VENV)/bin/python
export FUSEMAP_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup demo test test-python clean

setup:
	@scripts/setup_python.sh

demo: setup
	$(VENV)/bin/fusemap demo --out results/demo --overwrite

test-python: setup
	$(PY) -m pytest -q

test: test-python

clean:
	rm -rf results .pytest_cache
