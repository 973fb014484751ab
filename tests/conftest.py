"""Shared fixtures: warehouses built by dbt on known inputs, once per test session."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_LANDING = FIXTURES / "landing"


def pytest_configure(config: pytest.Config) -> None:
    """dagster-dbt reads target/manifest.json at import: make sure a fresh one exists."""
    run_dbt(
        ["parse", "--quiet"], Warehouse(PROJECT_ROOT / "target" / "parse.duckdb", FIXTURE_LANDING)
    )


def make_warehouse(root: Path, landing: Path) -> Warehouse:
    return Warehouse(
        db_path=root / "warehouse.duckdb", landing_path=landing, target_path=root / "target"
    )


def query(warehouse: Warehouse, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        return con.sql(sql).fetchall()


@pytest.fixture(scope="session")
def fixture_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """tests/fixtures/landing (hand-written lines, one per rule) built once with dbt build."""
    root = tmp_path_factory.mktemp("fixture_warehouse")
    landing = root / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)
    warehouse = make_warehouse(root, landing)
    run_dbt(["build"], warehouse)
    return warehouse


GENERATED_ARGS = {"events": 20_000, "users": 500, "days": 10, "seed": 7}


@pytest.fixture(scope="session")
def generate() -> Callable[..., Path]:
    """Run the generator CLI into a folder; returns the folder."""

    def _generate(out: Path, **overrides: int) -> Path:
        args = {**GENERATED_ARGS, **overrides}
        code = cli.main(
            ["generate", "--quiet", f"--out={out}", *(f"--{k}={v}" for k, v in args.items())]
        )
        assert code == 0
        return out

    return _generate


@pytest.fixture(scope="session")
def generated_warehouse(
    tmp_path_factory: pytest.TempPathFactory, generate: Callable[..., Path]
) -> Warehouse:
    """20k generated events (defects, duplicates, late events included) built with dbt build."""
    root = tmp_path_factory.mktemp("generated_warehouse")
    landing = generate(root / "landing")
    warehouse = make_warehouse(root, landing)
    run_dbt(["build"], warehouse)
    return warehouse
