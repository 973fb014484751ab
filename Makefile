# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine
# (Python 3.11, git and make) and can be run first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_EVENTS ?= 300000
DEMO_USERS ?= 6000
DEMO_DAYS ?= 30

.PHONY: install demo test lint format ui bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/personalization demo --events $(DEMO_EVENTS) --users $(DEMO_USERS) --days $(DEMO_DAYS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# an empty database of its own: what is_incremental() renders must not depend on past builds
	rm -f target/lint.duckdb
	PERSONALIZATION_DB=target/lint.duckdb $(BIN)/sqlfluff lint models tests/dbt macros

format: $(INSTALLED)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	rm -f target/lint.duckdb
	PERSONALIZATION_DB=target/lint.duckdb $(BIN)/sqlfluff fix models

test: lint
	@# pytest exits 5 when it collected nothing: a suite that ran no test is a failure here
	$(BIN)/pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

ui: $(INSTALLED)
	$(BIN)/dbt parse --quiet
	mkdir -p data/dagster && cp orchestration/dagster.yaml data/dagster/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/data/dagster $(BIN)/dagster dev -m orchestration.definitions

bench: $(INSTALLED)
	$(BIN)/python bench/run.py

clean:
	rm -rf target logs data reports/*.png .pytest_cache .ruff_cache
