"""One reference time (as_of) for every entry point, recorded per build; history guarded;
publish only what a successful build produced."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import make_warehouse, query

from orchestration.dbt_assets import AS_OF_SOURCE_TAG, AS_OF_TAG, dbt_models
from orchestration.landing import landing_events
from orchestration.resources import WarehouseResource, dbt_resource
from personalization.dbt_runner import DbtError, Warehouse, run_dbt
from personalization.publish import UnfinishedBuildError, publish
from personalization.reference_time import ReferenceTime, resolve_as_of

SEGMENT_SIZES = "select segment_name, size from marts.dim_segments order by 1"
LAST_BUILD = (
    "select strftime(as_of, '%Y-%m-%dT%H:%M:%S'), as_of_pinned, status from raw.dbt_builds "
    "order by started_at desc limit 1"
)


def copy_warehouse(source: Warehouse, root: Path) -> Warehouse:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.db_path, root / "warehouse.duckdb")
    return make_warehouse(root, source.landing_path, as_of=None)


def test_as_of_rule_explicit_then_environment_then_warehouse_then_now(
    fixture_warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERSONALIZATION_AS_OF", raising=False)
    db = fixture_warehouse.db_path  # built with as_of pinned to FIXTURE_AS_OF
    pinned = "2026-01-03T00:00:00.000000Z"
    assert resolve_as_of(None, db) == ReferenceTime(pinned, "warehouse")
    assert resolve_as_of(None, tmp_path / "new.duckdb") == ReferenceTime(None, "now")
    monkeypatch.setenv("PERSONALIZATION_AS_OF", "2026-02-01T00:00:00Z")
    assert resolve_as_of(None, db) == ReferenceTime("2026-02-01T00:00:00Z", "environment")
    assert resolve_as_of("2026-03-01", db) == ReferenceTime("2026-03-01", "explicit")
    assert query(fixture_warehouse, LAST_BUILD) == [("2026-01-03T00:00:00", True, "success")]


@pytest.fixture(scope="module")
def after_dagster(
    fixture_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Warehouse, dg.DagsterRun]:
    """`make demo` (a build pinned to the data's end), then "Materialize all" in Dagster with no
    as_of configured anywhere."""
    root = tmp_path_factory.mktemp("demo_then_dagster")
    warehouse = copy_warehouse(fixture_warehouse, root)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PERSONALIZATION_AS_OF", raising=False)
        result = dg.materialize(
            [landing_events, dbt_models],
            resources={
                "dbt": dbt_resource(),
                "warehouse": WarehouseResource(
                    db_path=str(warehouse.db_path),
                    landing_path=str(warehouse.landing_path),
                    target_root=str(root / "dbt_runs"),
                    development_key=True,  # the demo's warehouse, built with the development key
                ),
            },
            instance=instance,
            raise_on_error=False,
        )
    assert result.success
    return warehouse, instance.get_run_by_id(result.run_id)


def test_demo_then_dagster_keeps_segments_populated(
    after_dagster: tuple[Warehouse, dg.DagsterRun], fixture_warehouse: Warehouse
) -> None:
    warehouse, run = after_dagster
    assert run.tags[AS_OF_TAG] == "2026-01-03T00:00:00.000000Z"
    assert run.tags[AS_OF_SOURCE_TAG] == "warehouse"
    assert query(warehouse, LAST_BUILD) == [("2026-01-03T00:00:00", True, "success")]
    sizes = query(warehouse, SEGMENT_SIZES)
    assert sizes == query(fixture_warehouse, SEGMENT_SIZES)
    assert sum(size for _, size in sizes) > 0
    lapsed = query(
        warehouse,
        "select count(*) filter (where lifecycle_stage = 'lapsed'), count(*) "
        "from marts.dim_user_profiles",
    )[0]
    assert lapsed[0] < lapsed[1]


def test_as_of_backwards_is_refused_and_history_kept(
    after_dagster: tuple[Warehouse, dg.DagsterRun],
) -> None:
    warehouse, _ = after_dagster
    history = (
        "select count(*), min(valid_from), max(valid_to) from marts.fct_segment_membership_history"
    )
    before = query(warehouse, history)
    earlier = Warehouse(warehouse.db_path, warehouse.landing_path, warehouse.target_path,
                        "2026-01-02T00:00:00Z")  # fmt: skip
    refused = r"refusing to build at as_of 2026-01-02 00:00:00: an earlier build of this "
    with pytest.raises(DbtError, match=refused + r"warehouse used as_of 2026-01-03 00:00:00"):
        run_dbt(["build"], earlier)
    assert query(warehouse, history) == before
    assert query(warehouse, LAST_BUILD) == [("2026-01-03T00:00:00", True, "success")]


def test_history_tests_catch_backwards_and_overlapping_spells(
    fixture_warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(fixture_warehouse, tmp_path)
    guards = ["assert_membership_spells_forward", "assert_membership_spells_do_not_overlap",
              "assert_segment_events_match_spells"]  # fmt: skip
    passed = run_dbt(["test", "--select", *guards], warehouse)
    assert passed.stdout.count("PASS") >= 3
    with duckdb.connect(str(warehouse.db_path)) as con:
        user, segment = con.execute(
            "select canonical_user_id, segment_name from marts.fct_segment_membership_history "
            "where valid_to is null limit 1"
        ).fetchone()
        # what an as_of moved back by a day leaves: a spell closed before it opened, and a
        # second open spell for the same member
        con.execute(
            "insert into marts.fct_segment_membership_history "
            "(segment_name, canonical_user_id, valid_from, valid_to) values "
            "(?, ?, timestamp '2026-01-02', timestamp '2026-01-01'), "
            "(?, ?, timestamp '2026-01-02 12:00', null)",
            [segment, user, segment, user],
        )
    failed = run_dbt(["test", "--select", *guards], warehouse, check=False)
    assert failed.returncode != 0
    for name in guards:
        assert "FAIL" in failed.stdout and f"Failure in test {name}" in failed.stdout, name


def record_build(db: Path, status: str) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(
            "insert into raw.dbt_builds values ('killed-build', 'build', timestamp '2026-01-03', "
            "true, false, (select max(started_at) + interval 1 minute from raw.dbt_builds), "
            "null, ?, null)",
            [status],
        )


@pytest.mark.parametrize(("status", "message"), [
    ("running", "did not finish (killed, or still running)"),
    ("failed", "failed, so its marts may mix"),
])  # fmt: skip
def test_publish_after_an_unfinished_build_is_refused(
    fixture_warehouse: Warehouse, tmp_path: Path, status: str, message: str
) -> None:
    warehouse = copy_warehouse(fixture_warehouse, tmp_path / "build")
    record_build(warehouse.db_path, status)
    expected = r"last build .* \(dbt build killed-build, .*" + re.escape(message)
    with pytest.raises(UnfinishedBuildError, match=expected):
        publish(warehouse.db_path, tmp_path / "published")
    assert not (tmp_path / "published" / "current").exists()


def test_published_marts_carry_the_build_that_produced_them(
    fixture_warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse = copy_warehouse(fixture_warehouse, tmp_path / "build")
    ((build_id,),) = query(warehouse, "select build_id from raw.dbt_builds")
    version = json.loads(
        (publish(warehouse.db_path, tmp_path / "pub") / "_version.json").read_text()
    )
    assert version["build_id"] == build_id
    assert {info["build_id"] for info in version["tables"].values()} == {build_id}
    assert "marts.dim_user_profiles" in version["tables"]
    # a mart no build produced (left over, or made by hand) is not published
    with duckdb.connect(str(warehouse.db_path)) as con:
        con.execute("create table marts.dim_stale as select 1 as x")
    with pytest.raises(UnfinishedBuildError, match="refusing to publish marts.dim_stale"):
        publish(warehouse.db_path, tmp_path / "pub")
