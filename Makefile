# fashionrec: `make demo` and `make test` work on a machine that has only python3.
# uv is bootstrapped into .uv/ when it is not on PATH; the environment is .venv/, pinned by uv.lock.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .uv/bin/uv)
RUN := $(UV) run --frozen
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export DO_NOT_TRACK ?= 1
# short OpenMP busy-wait, so torch in two processes on the same cores does not stall (cli/main.py)
export GOMP_SPINCOUNT ?= 1000

.PHONY: demo test ui bench env java lint clean

.uv/bin/uv:
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	touch $@

env: .venv/.synced

# The dbt target `spark` (docs/spark.md) runs Spark, which needs a Java runtime: Debian's, when none is on PATH.
SUDO := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)
java:
	@command -v java >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q openjdk-17-jre-headless; }

# Fresh clone -> environment -> demo logs -> the warehouse and its row counts -> every other asset
# -> the leaderboard.
demo: export FASHIONREC_PRESET = demo
demo: env
	@test -f "$${FASHIONREC_RAW_DIR:-$${FASHIONREC_HOME:-warehouse}/raw}/events.parquet" \
		|| $(RUN) fashionrec generate --preset demo --stats
	$(RUN) fashionrec run 'group:warehouse'
	$(RUN) fashionrec tables
	$(RUN) fashionrec run 'not group:warehouse' --parallel 2 --steps
	$(RUN) fashionrec report

test: export FASHIONREC_PRESET = tiny
test: env java
	$(RUN) pytest -q

# The Dagster UI on the same code location and instance that `fashionrec run` uses.
ui: env
	export DAGSTER_HOME=$${DAGSTER_HOME:-$${FASHIONREC_HOME:-$$(pwd)/warehouse}/dagster_home}; \
	mkdir -p "$$DAGSTER_HOME" && $(RUN) dagster dev -m assets.definitions

bench: env
	$(RUN) python bench/warehouse.py

lint: env
	$(RUN) ruff check .

clean:
	rm -rf warehouse/raw warehouse/fashionrec.duckdb* warehouse/lancedb warehouse/artifacts \
		warehouse/reports warehouse/dagster_home dbt_project/target dbt_project/logs
