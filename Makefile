# Everything a fresh machine needs is set up by these targets: a virtualenv in .venv with the project
# and its dev tools. `make demo` runs the main job, `make test` the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench train-lpe clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The whole depot on this machine: broker, cloud service, four edge nodes on simulated cameras and the
# live map; prints the map's URL and keys; Ctrl-C stops it. Options: `depotwatch demo --help`.
demo: $(STAMP)
	$(BIN)/depotwatch demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd ansible && PATH="$(abspath $(BIN)):$$PATH" ansible-lint -q

# Benchmarks print their tables and write bench/results/*.json; speed targets live here, not in tests.
bench: $(STAMP)
	$(BIN)/python -m bench.lpe
	$(BIN)/python -m bench.flows

# Re-trains the LPE from simulator data (about 30 minutes on 2 cores) and rewrites ir_models/lpe/.
train-lpe: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	$(BIN)/python -m training.lpe.train
	$(BIN)/python -m bench.lpe --update-card

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
