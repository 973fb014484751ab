"""Shared fixtures: warehouses built by dbt on known inputs, once per test session."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from personalization import cli, warm_dbt
from personalization.api.keys import mart_key
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_LANDING = FIXTURES / "landing"


def pytest_configure(config: pytest.Config) -> None:
    """dagster-dbt reads target/manifest.json at import: make sure a fresh one exists. Then the
    tests' dbt commands go to a warm server (personalization/warm_dbt.py): most of their time is
    dbt starting and parsing, and the server saves each command the start (about 40%)."""
    if not hasattr(config, "workerinput"):  # pytest-xdist workers: the controller parsed already
        run_dbt(
            ["parse", "--quiet"],
            Warehouse(PROJECT_ROOT / "target" / "parse.duckdb", FIXTURE_LANDING),
        )
    warm_dbt.enable()


# The heaviest test files, heaviest first (seconds of one whole run, summed per file: the
# microbatch, incremental-load, fresh-clone and real-shaped files take 7-12% of the suite each).
# `make test` runs pytest-xdist with --dist loadfile --no-loadscope-reorder, which hands files
# to the workers in collection order: the long files start first and the short ones fill the
# end, so no long file runs alone while the other worker idles. Files not listed follow, in
# their usual order. Re-measure with `pytest --junitxml` when the balance changes.
HEAVY_FIRST = (
    "test_microbatch_equivalence.py",
    "test_incremental_load.py",
    "test_fresh_clone.py",
    "test_real_shaped.py",
    "test_privacy_erasure.py",
    "test_orchestration.py",
    "test_worker.py",  # one real worker process: start, warm server, parse, two runs
    "test_clustering.py",
    "test_publish.py",
    "test_reference_time.py",
    "test_clustering_real.py",
    "test_consent.py",
    "test_segments.py",
    "test_dashboard.py",
    "test_clustering_dbt.py",
    "test_identity_privacy.py",
    "test_profiles.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heaviest files first (HEAVY_FIRST); a file's tests stay together and in order."""
    missing = [name for name in HEAVY_FIRST if not (Path(__file__).parent / name).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py HEAVY_FIRST names missing files: {missing}")
    rank = {name: position for position, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# The reference time of the hand-written fixture lines (they span 2025-12-30 to 2026-01-02).
FIXTURE_AS_OF = "2026-01-03T00:00:00Z"


def make_warehouse(root: Path, landing: Path, as_of: str | None = FIXTURE_AS_OF) -> Warehouse:
    """A warehouse in its own folder (database and dbt target), so builds never collide."""
    return Warehouse(
        db_path=root / "warehouse.duckdb",
        landing_path=landing,
        target_path=root / "target",
        as_of=as_of,
    )


def user_key(raw_id: str) -> str:
    """The key the marts use for a raw userId or anonymousId, in the dev target tests build: its
    keyed HMAC pseudonym with the development key (or PERSONALIZATION_HMAC_KEY when set).

    Tests that look a user up in a mart by the id the fixture sent go through this one function."""
    return mart_key(raw_id)


def ground_truth(warehouse: Warehouse, profiled: bool | None = True) -> dict[str, dict[str, str]]:
    """The generator's ground-truth users (ground_truth/users.csv of the warehouse's landing
    folder), keyed as the marts key a user: by the pseudonym of the canonical id.

    The shipped analytics_consent_policy (`exclude`) profiles only users whose final analytics
    consent holds (`consent_analytics`): profiled=True gives those (who the marts must hold),
    False the users who refused analytics (who no mart may hold), None every user."""
    with (warehouse.landing_path / "ground_truth" / "users.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        user_key(row["canonical_id"]): row
        for row in rows
        if profiled is None or (row["consent_analytics"] == "true") == profiled
    }


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
    as_of = json.loads((landing / "manifest.json").read_text())["as_of"]
    warehouse = make_warehouse(root, landing, as_of=as_of)
    run_dbt(["build"], warehouse)
    return warehouse
