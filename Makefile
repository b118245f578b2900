# Every target installs what it needs into .venv first, so each works on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
AIOPS_HOME ?= $(HOME)/.aiops
export AIOPS_HOME

.PHONY: install chromium prometheus demo test test-fast lint format ui console instance mlflow-ui bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/aiops demo

# Chromium for the overview's headless-browser test (apt when root; the test skips without it)
chromium:
	@.ci/install-chromium

# Prometheus for the telemetry scrape test (Debian's package, its service kept stopped; the test
# runs the binary on loopback and skips without it)
prometheus:
	@.ci/install-prometheus

test: $(STAMP) chromium prometheus
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# The suite without the tests marked slow (whole scenarios, multi-week worlds, many Dagster runs)
test-fast: $(STAMP) chromium prometheus
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The web console over the demo's store (`make demo` first; it prints an admin token), on
# loopback: http://127.0.0.1:8080/ (README: Console)
CONSOLE_PORT ?= 8080
console: $(STAMP)
	$(BIN)/aiops console --config $(AIOPS_HOME)/demo/config.yaml --port $(CONSOLE_PORT)

# Dagster webserver + daemon on the demo's instance and config (run `make demo` first).
ui: $(STAMP)
	DAGSTER_HOME=$(AIOPS_HOME)/dagster AIOPS_CONFIG=$(AIOPS_HOME)/demo/config.yaml \
		$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The production Dagster instance in the same home: PostgreSQL storage (the URL read from
# $$AIOPS_DAGSTER_PG_URL whenever the instance opens), queued runs, a limit per tenant, run
# monitoring. `make ui` then runs on it (README: Production instance).
MAX_RUNS   ?= 10
PER_TENANT ?= 2
instance: $(STAMP)
	$(BIN)/aiops instance --dagster-home $(AIOPS_HOME)/dagster \
		--max-concurrent-runs $(MAX_RUNS) --per-tenant $(PER_TENANT)

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(AIOPS_HOME)/demo/mlflow.db \
		--host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_drift.py
	$(BIN)/python benchmarks/bench_alerts.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_multivariate.py
	$(BIN)/python benchmarks/bench_changepoints.py
	$(BIN)/python benchmarks/bench_ops_small_counts.py
	$(BIN)/python benchmarks/bench_long_strings.py
	$(BIN)/python benchmarks/bench_metrics_scrape.py
	$(BIN)/python benchmarks/bench_console.py
	$(BIN)/python benchmarks/bench_dead_route.py
	$(BIN)/python benchmarks/bench_dead_route_run.py
	$(BIN)/python benchmarks/bench_mlflow_down.py
	$(BIN)/python benchmarks/bench_workers.py
	$(BIN)/python benchmarks/bench_backfill.py --old
	$(BIN)/python benchmarks/bench_level_shift_false_alarms.py
	$(BIN)/python benchmarks/bench_fairness.py
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_pushdown.py
	$(BIN)/python benchmarks/bench_slo.py
	$(BIN)/python benchmarks/bench_segments.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
