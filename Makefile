# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine
# (Python 3.11, git and make) and can be run first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_EVENTS ?= 300000
DEMO_USERS ?= 6000
DEMO_DAYS ?= 30

.PHONY: install demo test lint format ui serve dashboard docs column-docs bench clean \
	install-spark test-spark test-spark-ci bench-spark

$(INSTALLED): pyproject.toml
	@echo "installing the pinned dependencies into $(VENV) (about 2 minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	@# pip's own lines (Collecting ..., Installing ...) are the progress of the long step
	bash -o pipefail -c "$(BIN)/pip install --disable-pip-version-check --progress-bar off \
		-e '.[dev]' | grep -E --line-buffered '^(Collecting|Installing|Successfully|ERROR)'"
	touch $(INSTALLED)

# The oldest DuckDB the README promises reads the published file (tests/test_mart_docs.py,
# scripts/check_bi_compat.sh): its Python package in a folder of its own, never imported by the
# project (PYTHONPATH=$(OLDEST_DUCKDB_DIR) selects it)
OLDEST_DUCKDB := 1.0.0
OLDEST_DUCKDB_DIR := $(VENV)/duckdb-$(OLDEST_DUCKDB)
$(OLDEST_DUCKDB_DIR)/.installed: | $(INSTALLED)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps \
		--target $(OLDEST_DUCKDB_DIR) duckdb==$(OLDEST_DUCKDB)
	touch $@

install: $(INSTALLED) $(OLDEST_DUCKDB_DIR)/.installed

demo: $(INSTALLED)
	$(BIN)/personalization demo --events $(DEMO_EVENTS) --users $(DEMO_USERS) --days $(DEMO_DAYS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# an empty database of its own: what is_incremental() renders must not depend on past builds
	rm -f target/lint.duckdb
	PERSONALIZATION_DB=target/lint.duckdb $(BIN)/sqlfluff lint models tests/dbt macros
	@# the dbt templater lints a model's own text, not what its macro calls expand to: the SQL
	@# the segment macros generate is rendered without dbt and linted as plain SQL
	rm -rf target/lint/compiled
	$(BIN)/python -m personalization.segments.render --out target/lint/compiled
	$(BIN)/sqlfluff lint --config lint/compiled.sqlfluff --disregard-sqlfluffignores target/lint/compiled

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	rm -f target/lint.duckdb
	PERSONALIZATION_DB=target/lint.duckdb $(BIN)/sqlfluff fix models

# One pytest worker per core (-n auto), each test file kept on one worker (its module fixtures
# are built once): most of the suite's time is dbt parsing, which uses one core per process.
# Files are handed out in collection order, heaviest first (tests/conftest.py HEAVY_FIRST); the
# 20 slowest tests are printed at the end, to keep that order and the 20-minute budget honest.
test: lint $(OLDEST_DUCKDB_DIR)/.installed
	@# pytest exits 5 when it collected nothing: a suite that ran no test is a failure here
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder --durations=20; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# Spark as a second engine (docs/scale-out.md): the `spark` extra (dbt-spark, pyspark; Java 17)
# in the same .venv, only when asked; `make install` and `make test` never touch it.
SPARK_INSTALLED := $(VENV)/.installed-spark
$(SPARK_INSTALLED): pyproject.toml | $(INSTALLED)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,spark]'
	touch $@

install-spark: install $(SPARK_INSTALLED)

# The Spark lane: tests/fixtures/landing built on DuckDB and on local Spark, compared table by
# table (the equality report is logged). Marked `spark`, which make test deselects.
test-spark: install-spark
	$(BIN)/pytest -m 'spark or spark_smoke' tests/spark -p no:cacheprovider -o log_cli=true \
		--log-cli-level=INFO

# CI's Spark lane (.ci/run, after make test, when Java 17 is there): the smallest comparison of
# the two engines (tests/spark/test_spark_smoke.py: one JVM, no dbt on Spark; a planted
# difference fails it). pytest's exit 5 (nothing collected) fails it too.
test-spark-ci: install-spark
	$(BIN)/pytest -m spark_smoke tests/spark/test_spark_smoke.py -p no:cacheprovider \
		-o log_cli=true --log-cli-level=INFO --durations=5; status=$$?; \
	if [ $$status -eq 5 ]; then echo "test-spark-ci collected no tests" >&2; exit 1; fi; exit $$status

# The same build on DuckDB and on local Spark, side by side (bench/bench_spark.py; 1M events by
# default, BENCH_SPARK_EVENTS to change): wall and CPU seconds per step, niced (shared machine)
BENCH_SPARK_EVENTS ?= 1000000
bench-spark: install-spark
	nice -n 10 $(BIN)/python bench/bench_spark.py --events $(BENCH_SPARK_EVENTS) --out reports/bench_spark.json

# dagster dev parses the dbt project itself (DbtProject.prepare_if_dev in orchestration/dbt_assets.py)
# Runs use PERSONALIZATION_HMAC_KEY when set (prod target); without it, the demo's warehouse and
# the public development key (dev target), said out loud: never that way in production.
ui: $(INSTALLED)
	mkdir -p data/dagster && cp orchestration/dagster.yaml data/dagster/dagster.yaml
	@if [ -z "$$PERSONALIZATION_HMAC_KEY" ]; then echo "make ui: PERSONALIZATION_HMAC_KEY is not set: \
	runs use the public development key (the demo's); set the key for real data"; fi
	PERSONALIZATION_DBT_TARGET=$${PERSONALIZATION_DBT_TARGET:-$$([ -n "$$PERSONALIZATION_HMAC_KEY" ] \
	&& echo prod || echo dev)} DAGSTER_HOME=$(CURDIR)/data/dagster $(BIN)/dagster dev -m orchestration.definitions

# The push-based micro-batch worker (docs/orchestration.md): runs the micro-batch job whenever
# complete files land, recorded in the instance `make ui` opens; the landing sensor is off while it
# runs. Ctrl-C stops it after the run in flight.
.PHONY: worker
worker: $(INSTALLED)
	mkdir -p data/dagster && cp orchestration/dagster.yaml data/dagster/dagster.yaml
	PERSONALIZATION_DBT_TARGET=$${PERSONALIZATION_DBT_TARGET:-$$([ -n "$$PERSONALIZATION_HMAC_KEY" ] \
	&& echo prod || echo dev)} DAGSTER_HOME=$(CURDIR)/data/dagster $(BIN)/personalization worker

# The collector (Segment's tracking API, writing landing files) and the profile API, on loopback.
# Development keys unless PERSONALIZATION_WRITE_KEYS / PERSONALIZATION_API_KEYS are set.
COLLECTOR_PORT ?= 8088
API_PORT ?= 8089
serve: $(INSTALLED)
	@# Ctrl-C reaches both (graceful: the collector publishes its open file); TERM is passed on
	PERSONALIZATION_WRITE_KEYS=$${PERSONALIZATION_WRITE_KEYS:-dev-write-key} \
	PERSONALIZATION_API_KEYS=$${PERSONALIZATION_API_KEYS:-dev-read-key} \
	bash -c 'trap "kill -TERM \$$collector \$$api" TERM; \
		$(BIN)/personalization collect --port $(COLLECTOR_PORT) & collector=$$!; \
		$(BIN)/personalization serve --port $(API_PORT) \
			$$([ -n "$$PERSONALIZATION_HMAC_KEY" ] || echo --development-key) & api=$$!; \
		wait'

# the dashboard over the published marts (after `make demo`): http://127.0.0.1:8501
DASHBOARD_PORT ?= 8501
dashboard: $(INSTALLED)
	$(BIN)/streamlit run personalization/dashboard/app.py --server.address 127.0.0.1 \
		--server.port $(DASHBOARD_PORT) --server.headless true --browser.gatherUsageStats false

# dbt's documentation site of every model, test and exposure: http://127.0.0.1:8080
# (prod target when PERSONALIZATION_HMAC_KEY is set, else the demo's dev target)
docs: $(INSTALLED)
	$(BIN)/dbt docs generate --quiet --target $(if $(PERSONALIZATION_HMAC_KEY),prod,dev)
	$(BIN)/dbt docs serve --host 127.0.0.1 --port 8080 --no-browser --target $(if $(PERSONALIZATION_HMAC_KEY),prod,dev)

# the descriptions of the trait columns of dim_user_profiles, from the trait catalogue and the
# tracking plan's declared traits (run after editing either; tests/test_mart_docs.py checks it)
column-docs: $(INSTALLED)
	$(BIN)/python -m personalization.column_docs

bench: $(INSTALLED)
	$(BIN)/python bench/run.py

clean:
	@# generated files only: data/ (warehouse, published marts, demo pictures), dbt's target/
	rm -rf target logs data .pytest_cache .ruff_cache
