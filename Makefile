# leadscore: two commands for a new user — `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_ARGS ?=

.PHONY: install dashboard dashboard-deps test-dashboard browser demo lint test test-unit test-integration bench bench-model bench-api bench-webhooks clean

# A virtual environment under the project with leadscore and its test tools.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## s3rver (npm), the file-backed object store the durable embedded broker (`leadscore broker`,
## `make demo`) keeps its data in, beside the venv's Python. Without npm the demo's broker
## keeps its data in memory (and says so).
S3RVER_DIR   := $(VENV)/s3rver
S3RVER_STAMP := $(S3RVER_DIR)/.installed-stamp

$(S3RVER_STAMP): deploy/s3rver/package.json deploy/s3rver/package-lock.json $(STAMP)
	@if command -v $(NPM) >/dev/null 2>&1; then \
	  mkdir -p $(S3RVER_DIR) && cp deploy/s3rver/package.json deploy/s3rver/package-lock.json $(S3RVER_DIR)/ && \
	  cd $(S3RVER_DIR) && $(NPM) ci --no-audit --no-fund --loglevel=error && touch .installed-stamp; \
	else echo "npm not found: the embedded broker will keep its data in memory only (install Node.js 20+ and rerun)"; fi

install: $(STAMP) $(S3RVER_STAMP)

## The web dashboard (dashboard/): its npm packages, then a build into dashboard/dist, which
## `leadscore api` serves at /. Rebuilt only when its sources change. Without Node.js the
## demo still runs (the API says how to get the dashboard); `make test` needs Node.js.
NPM        ?= npm
DASH       := dashboard
DASH_STAMP := $(DASH)/node_modules/.installed-stamp
DASH_SRC   := $(shell find $(DASH)/src $(DASH)/public -type f 2>/dev/null) $(DASH)/index.html $(DASH)/vite.config.ts $(DASH)/tsconfig.json

$(DASH_STAMP): $(DASH)/package.json $(DASH)/package-lock.json
	cd $(DASH) && $(NPM) ci --no-audit --no-fund --loglevel=error
	touch $(DASH_STAMP)

$(DASH)/dist/index.html: $(DASH_STAMP) $(DASH_SRC)
	cd $(DASH) && $(NPM) run build

dashboard-deps: $(DASH_STAMP)

dashboard: $(DASH)/dist/index.html

## The dashboard's component tests (Vitest, no browser).
test-dashboard: $(DASH_STAMP)
	cd $(DASH) && $(NPM) test

## Debian's chromium for the dashboard's end-to-end tests (Playwright drives it; no browser
## download). Installed with apt-get when missing and this user may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else echo "chromium is missing: install it (Debian: sudo apt-get install chromium) for the dashboard's browser tests"; fi; }

## Start the embedded broker and Redis, train a model if none exists, run the worker and
## simulated traffic with a live console view. Ctrl-C stops everything.
demo: install
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory dashboard; \
	 else echo "npm not found: the demo runs without the web dashboard (install Node.js 20+ and rerun)"; fi
	$(BIN)/leadscore demo $(DEMO_ARGS)

## Static checks: formatting and lint (ruff), types (mypy; strict on schemas/, models/,
## simulation/). Configuration in pyproject.toml.
lint: install
	$(BIN)/ruff format --check leadscore tests benchmarks
	$(BIN)/ruff check leadscore tests benchmarks
	$(BIN)/mypy

## pytest runs the tests in several processes (pytest-xdist; PYTEST_WORKERS=0: in pytest's
## own). A module's tests stay in one process (a few modules' are split per test) and the
## heaviest go first (tests/conftest.py); each process has its own broker and Redis. Most
## integration tests wait on servers, so the suite takes three processes on two cores (~5 min
## there); the unit tests, all CPU, two (~40 s).
PYTEST_WORKERS ?= 3
PYTEST_UNIT_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q --dist loadscope --no-loadscope-reorder

## The whole test suite: static checks, the dashboard's component tests, then unit tests,
## doctests and integration tests on a real broker and Redis, including the dashboard in a
## real browser.
test: lint install dashboard browser
	cd $(DASH) && $(NPM) test
	$(PYTEST) -n $(PYTEST_WORKERS)

test-unit: install
	$(PYTEST) -n $(PYTEST_UNIT_WORKERS) tests/unit

test-integration: install
	$(PYTEST) -n $(PYTEST_WORKERS) tests/integration

## Worker throughput on the embedded broker (see docs/performance.md). For the model engine
## alone (training, one lead, batches, size, memory) beside scikit-learn, run `make bench-model`.
bench: install
	$(BIN)/python benchmarks/stream_throughput.py

## The model engine's figures beside scikit-learn/shap, same run; BENCH_MODEL_ARGS=--quick for ~2-3 minutes.
BENCH_MODEL_ARGS ?=
bench-model: install
	$(BIN)/python benchmarks/model_engine.py $(BENCH_MODEL_ARGS)

## POST /v1/score of `leadscore api` under wrk load beside the seed's sklearn endpoint, same run
## (~15 min; needs wrk: apt-get install wrk). E.g. BENCH_API_ARGS="--workers 1,2 --rounds 1".
BENCH_API_ARGS ?=
bench-api: install
	$(BIN)/python benchmarks/api_latency.py $(BENCH_API_ARGS)

## Webhook delivery (queueing, then signed POSTs at concurrency 8/32/128 and for one lead) to a local
## receiver process, beside plain httpx/aiohttp clients on it, same run; ~1.5 min, needs the Redis at
## 127.0.0.1:6379 (or BENCH_WEBHOOKS_ARGS="--redis URL"). See docs/performance.md.
BENCH_WEBHOOKS_ARGS ?=
bench-webhooks: install
	$(BIN)/python benchmarks/webhook_delivery.py $(BENCH_WEBHOOKS_ARGS)

clean:
	rm -rf $(VENV) artifacts .pytest_cache $(DASH)/node_modules $(DASH)/dist
