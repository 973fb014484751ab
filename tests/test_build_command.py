"""`personalization build`: dbt build at the project's reference time, on the prod target unless
the development key is asked for."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING, make_warehouse, query

from personalization import cli
from personalization.dbt_runner import Warehouse
from personalization.privacy import KEY_ENV_VAR


def test_build_refuses_without_a_key_then_builds_with_the_development_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fixture_warehouse: Warehouse,
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    monkeypatch.delenv("PERSONALIZATION_DBT_TARGET", raising=False)
    monkeypatch.setenv("PERSONALIZATION_LANDING", str(landing))
    monkeypatch.setenv("PERSONALIZATION_DB", str(db))
    selection = ["--select", "+stg_events"]
    with caplog.at_level(logging.ERROR):
        refused = cli.main(["build", "--as-of", FIXTURE_AS_OF, *selection])
    # the prod target: no key, no build (and no public key used behind the user's back)
    assert refused == 1
    assert f"{KEY_ENV_VAR} is not set" in caplog.text
    staged_tables = "select count(*) from duckdb_tables() where schema_name = 'staging'"
    assert not db.exists() or query(make_warehouse(tmp_path, landing), staged_tables) == [(0,)]

    assert cli.main(["build", "--development-key", "--as-of", FIXTURE_AS_OF, *selection]) == 0
    built = make_warehouse(tmp_path, landing)
    # the reference time given is the one recorded, and the staged events are the fixture's
    assert query(
        built, "select strftime(max(as_of), '%Y-%m-%dT%H:%M:%SZ') from raw.dbt_builds"
    ) == [(FIXTURE_AS_OF,)]
    staged = "select count(*), count(distinct message_id) from staging.stg_events"
    assert query(built, staged) == query(fixture_warehouse, staged)
