# Thin wrappers over uv. Every target sets itself up: only Python 3.11+ and make are needed.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# One "planned" event per asset of a range run, not one per day of every asset, in the
# webserver and daemon too (docs/operating.md, "Partitions"; topo_pipeline/definitions.py).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1

.PHONY: setup test test-fast lint demo report dev bench recover clean

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (container and CI
# images often set it) every process would otherwise recompile the ~2,700 modules Dagster
# imports, about 2 s per process (CLI, daemon, webserver, code server, test worker).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet --compile-bytecode
	touch $@

setup: $(VENV)/.synced

# The project's own modules are not installed, so they are compiled where they are imported.
# With PYTHONDONTWRITEBYTECODE set, every process would compile them again, and pytest would
# rewrite the test modules' asserts again in every worker: about 2 s of CPU per test worker,
# less per Dagster process. Their bytecode goes to __pycache__ folders, which git ignores.
unexport PYTHONDONTWRITEBYTECODE

# lint-imports checks the package's layers ([tool.importlinter] in pyproject.toml). Its
# graph builds in a fraction of a second: no cache folder is left in the work tree.
lint: setup
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync lint-imports --no-cache

# Four workers on two cores: many tests mostly wait (daemon ticks, run start-ups, rate
# limits, Retry-After), so the rest of the suite runs beside them. A test file stays on one
# worker (module fixtures). xdist would reorder the files by their number of tests;
# --no-loadscope-reorder keeps the conftest's order, which starts the waiting files first.
PYTEST_WORKERS ?= 4
PYTEST := $(UV) run --no-sync pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The tests of a Dagster instance on PostgreSQL (marked alone) run after the rest, on a
# quiet machine: they wait for the daemon's sensor ticks, which the other workers' load
# delays past any sensible timeout. A failure is run again once (and shown as a rerun).
test: setup lint
	$(UV) run --no-sync python -m topo_pipeline.instance
	$(UV) run --no-sync dg check defs
	$(PYTEST) -m "not alone"
	$(UV) run --no-sync pytest -m alone --reruns 1

# The inner loop: everything but the tests that start Dagster processes (marked slow).
test-fast: setup
	$(PYTEST) -m "not slow"

demo: setup
	$(UV) run --no-sync python -m topo_pipeline.demo

# The SLA report (TOPO_REPORT_PATH) rebuilt from the analyst copy, without a run.
report: setup
	$(UV) run --no-sync python -m topo_pipeline.report

dev: setup
	$(UV) run --no-sync python -m topo_pipeline.dev

# Runs whose process died (kill -9, out of memory) marked failed, their pool slots and
# files freed. Runs and the daemon do this by themselves; this is a tool for a clean-up by
# hand (python -m topo_pipeline.recovery --dry-run only reports).
recover: setup
	$(UV) run --no-sync python -m topo_pipeline.recovery

bench: setup
	$(UV) run --no-sync python bench/ingest_bench.py
	$(UV) run --no-sync python bench/warehouse_bench.py
	$(UV) run --no-sync python bench/live_bench.py

clean:
	rm -rf $(VENV) .uv data .pytest_cache .ruff_cache
