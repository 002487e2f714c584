# leadscore: two commands for a new user — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_ARGS ?=

.PHONY: install demo test test-unit test-integration bench clean

# A virtual environment under the project with leadscore and its test tools.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Start the embedded broker and Redis, train a model if none exists, run the worker and
## simulated traffic with a live console view. Ctrl-C stops everything.
demo: install
	$(BIN)/leadscore demo $(DEMO_ARGS)

## The whole test suite: unit tests, doctests and integration tests on a real broker and Redis.
test: install
	$(BIN)/python -m pytest -q

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

test-integration: install
	$(BIN)/python -m pytest -q tests/integration

bench: install
	$(BIN)/python benchmarks/stream_throughput.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
