"""Dagster code location: definitions, an in-process build, blocking checks, sensors, alerts."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING, make_warehouse, query

from orchestration import dbt_assets, sensors
from orchestration.dbt_assets import (
    DBT_MANIFEST,
    LANDING_KEY,
    TRANSLATOR,
    dbt_models,
    manifest_for_database,
)
from orchestration.definitions import defs
from orchestration.landing import landing_events
from orchestration.publish import published_marts
from orchestration.resources import DUCKDB_POOL, WarehouseResource, dbt_resource
from personalization import warm_dbt
from personalization.dbt_runner import Warehouse, run_dbt

MANIFEST = json.loads((Path(__file__).parent.parent / "target" / "manifest.json").read_text())
MODELS = {k: v for k, v in MANIFEST["nodes"].items() if v["resource_type"] in ("model", "seed")}
TESTS = {k: v for k, v in MANIFEST["nodes"].items() if v["resource_type"] == "test"}
STG_EVENTS = dg.AssetKey(["staging", "stg_events"])
PROFILES = dg.AssetKey(["marts", "dim_user_profiles"])
RAW = dg.AssetKey(["raw", "raw_landing_events"])
RAW_PK_CHECK = "unique_combination_of_columns_raw_landing_events_file_path__line_number"
RAW_GUARD = "guard_keys_raw_landing_events_loaded"  # the same key, on the lines a batch loaded
KEYS = {"unique", "not_null", "unique_combination_of_columns", "relationships"}


def is_ephemeral(props: dict[str, Any]) -> bool:
    return props["config"]["materialized"] == "ephemeral"


def dbt_key(name: str) -> dg.AssetKey:
    (props,) = [v for v in MODELS.values() if v["name"] == name]
    return TRANSLATOR.get_asset_key(props)


# ---------------------------------------------------------------- definitions


def test_definitions_load_every_asset_check_schedule_and_sensor() -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = set(graph.get_all_asset_keys())
    expected_dbt = {TRANSLATOR.get_asset_key(props) for props in MODELS.values()}
    # raw_load/landing_file_log: the file log the raw load writes (a dbt source read by the
    # manifest view and rpt_data_quality)
    file_log = dg.AssetKey(["raw_load", "landing_file_log"])
    assert keys == expected_dbt | {LANDING_KEY, dg.AssetKey("published_marts"), file_log}
    for key in (
        LANDING_KEY,
        RAW,
        STG_EVENTS,
        PROFILES,
        dg.AssetKey(["marts", "rpt_identity_audit"]),
    ):
        assert key in keys
    # the landing asset is the upstream of the raw load, observable, not materialisable
    assert LANDING_KEY in graph.get(RAW).parent_keys
    assert graph.get(LANDING_KEY).is_observable
    # every dbt test attached to a model is an asset check; error severity = blocking
    check_keys = set(graph.asset_check_keys)
    expected_checks = {
        dg.AssetCheckKey(TRANSLATOR.get_asset_key(MODELS[t["attached_node"]]), t["name"])
        for t in TESTS.values()
        if t.get("attached_node") in MODELS
    }
    # the singular conservation test attaches to stg_events through its meta.dagster.ref
    expected_checks.add(dg.AssetCheckKey(STG_EVENTS, "assert_raw_lines_conserved"))
    # singular tests on one model are that model's checks: the membership history guards
    history = dbt_key("fct_segment_membership_history")
    expected_checks |= {
        dg.AssetCheckKey(history, name)
        for name in ("assert_membership_spells_forward", "assert_membership_spells_do_not_overlap")
    }
    # and the consent guard (warns when no line carries any consent signal) is int_user_consent's
    expected_checks.add(
        dg.AssetCheckKey(dbt_key("int_user_consent"), "assert_consent_signals_present")
    )
    assert expected_checks <= check_keys
    # the volume check is the dbt tests on rpt_event_volume_daily: no check defined in Python
    assert check_keys == expected_checks
    volume = dbt_key("rpt_event_volume_daily")
    assert {
        dg.AssetCheckKey(volume, f"{name}_rpt_event_volume_daily_")
        for name in ("feed_alive", "volume_latest_day_within_baseline")
    } <= check_keys
    for name in ("unique_stg_events_message_id", "assert_raw_lines_conserved"):
        assert dg.AssetCheckKey(STG_EVENTS, name) in check_keys
    specs = {spec.key: spec for spec in dbt_models.check_specs}
    assert specs[dg.AssetCheckKey(STG_EVENTS, "assert_raw_lines_conserved")].blocking
    assert specs[dg.AssetCheckKey(RAW, RAW_PK_CHECK)].blocking
    assert specs[dg.AssetCheckKey(RAW, RAW_GUARD)].blocking
    assert {s.name for s in repo.schedule_defs} == {
        "daily_full_build_schedule",
        "hourly_incremental_schedule",
    }
    assert {s.name for s in repo.sensor_defs} == {"landing_microbatch_sensor", "run_failure_alert"}
    assert {j.name for j in repo.get_all_jobs()} >= {"microbatch_job", "daily_full_build_job"}
    schedules = {s.name: s for s in repo.schedule_defs}
    assert schedules["daily_full_build_schedule"].cron_schedule == "0 2 * * *"
    assert schedules["daily_full_build_schedule"].job_name == "daily_full_build_job"
    assert schedules["hourly_incremental_schedule"].job_name == "microbatch_job"


def test_translator_groups_owners_freshness_and_pool() -> None:
    graph = defs.get_repository_def().asset_graph
    assert graph.get(STG_EVENTS).group_name == "staging"
    assert graph.get(PROFILES).group_name == "marts"
    assert graph.get(dbt_key("int_events_stitched")).group_name == "intermediate"
    assert graph.get(RAW).group_name == "landing"
    assert graph.get(PROFILES).owners == ["team:analytics-engineering"]
    python_models = [
        v for v in MODELS.values() if v["original_file_path"].startswith("python_models/")
    ]
    for props in python_models:
        if props["name"] != "raw_landing_events":
            key = TRANSLATOR.get_asset_key(props)
            assert graph.get(key).group_name == "python_models"
            assert graph.get(key).owners == ["team:data-science"]
    # descriptions come from the dbt docs
    assert (
        graph.get(PROFILES).description
        == MODELS["model.personalization.dim_user_profiles"]["description"].strip()
    )
    # marts carry a freshness policy: 3 h for incremental marts, 48 h for daily reports
    assert graph.get(PROFILES).freshness_policy.fail_window.to_timedelta() == timedelta(hours=3)
    rpt = graph.get(dg.AssetKey(["marts", "rpt_identity_audit"])).freshness_policy
    assert rpt.fail_window.to_timedelta() == timedelta(hours=48)
    assert graph.get(STG_EVENTS).freshness_policy is None
    # one writer at a time: the dbt step, publish and the volume check share a pool
    assert dbt_models.op.pool == DUCKDB_POOL
    assert published_marts.op.pool == DUCKDB_POOL
    assert dbt_models.op.retry_policy.max_retries == 2


def test_microbatch_job_selects_raw_load_to_marts_only() -> None:
    job = defs.resolve_job_def("microbatch_job")
    selected = set(job.asset_layer.selected_asset_keys)
    for name in ("raw_landing_events", "stg_landing__events_checked", "stg_events",
                 "int_events_stitched", "dim_user_profiles"):  # fmt: skip
        assert dbt_key(name) in selected
    assert dg.AssetKey(["marts", "rpt_identity_audit"]) not in selected
    assert dg.AssetKey("published_marts") not in selected
    assert not [k for k in selected if k.path[0] == "reference"]  # seeds: daily build
    segments = [
        v for v in MODELS.values() if v["original_file_path"].startswith("models/marts/segments/")
    ]
    keys = {TRANSLATOR.get_asset_key(v): v["name"] for v in segments}
    assert {k for k, name in keys.items() if not name.startswith("rpt_")} <= selected
    assert not {k for k, name in keys.items() if name.startswith("rpt_")} & selected
    if "model.personalization.fct_segment_membership" in MODELS:
        assert dbt_key("fct_segment_membership") in selected


def test_microbatch_selection_includes_segments_and_leaves_out_clustering() -> None:
    """The dbt selector `microbatch` (selectors.yml), resolved by dagster-dbt: every non-report
    segment mart with all its upstream models, except seeds and daily-only fits (imputation,
    clustering), whose last tables the micro-batch reads."""
    selected = set(defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys)
    by_key = {TRANSLATOR.get_asset_key(v): v for v in MODELS.values()}
    chosen = {uid for uid, v in MODELS.items() if TRANSLATOR.get_asset_key(v) in selected}
    assert {k for k in selected if k in by_key} == selected  # only dbt models
    daily = {uid for uid, v in MODELS.items() if dbt_assets.is_daily_only(v)}
    assert daily >= {"model.personalization.int_user_age_knn"}
    assert not chosen & daily
    assert not [uid for uid in chosen if "cluster" in uid or MODELS[uid]["name"].startswith("rpt_")]
    assert not [uid for uid in chosen if MODELS[uid]["resource_type"] == "seed"]
    # closed upwards: every model upstream of a selected one is selected, or daily-only, or a seed
    for uid in chosen:
        for parent in MANIFEST["parent_map"][uid]:
            props = MODELS.get(parent)
            if props and props["resource_type"] == "model" and not is_ephemeral(props):
                assert parent in chosen or parent in daily or "cluster" in parent, (uid, parent)
    for name in ("fct_sessions", "fct_user_activity_daily", "int_user_consent", "people",
                 "int_touched_users", "int_touched_user_runs"):  # fmt: skip
        assert dbt_key(name) in selected


def test_microbatch_defers_tests_of_models_it_does_not_rebuild() -> None:
    """New users are clustered by the daily refit: cluster tests wait for the daily build."""
    selected = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    deferred = dbt_assets.tests_left_for_daily(DBT_MANIFEST, selected)
    if "model.personalization.fct_user_clusters" in MODELS:
        assert "assert_every_user_clustered_once_per_method" in deferred
    assert not [name for name in deferred if "stg_events" in name or "user_profiles" in name]
    assert dbt_assets.tests_left_for_daily(DBT_MANIFEST, dbt_models.keys) == []


def excluded_tests(args: list[str]) -> set[str]:
    """The test names a `dbt build` leaves out: its --exclude criteria resolved as dbt does
    (`test_name:KIND` is every generic test of that kind, `tag:TAG` the tests of the models
    with that tag, anything else a test's name)."""
    if "--exclude" not in args:
        return set()
    names: set[str] = set()
    for criterion in args[args.index("--exclude") + 1].split():
        if criterion.startswith("tag:"):  # tagged models, and their tests with them
            tag = criterion.split(":", 1)[1]
            names |= {
                t["name"]
                for uid, t in TESTS.items()
                if any(
                    tag in MODELS.get(p, {}).get("config", {}).get("tags", [])
                    for p in MANIFEST["parent_map"][uid]
                )
            }
        elif criterion.startswith("test_name:"):
            kind = criterion.split(":", 1)[1]
            names |= {
                t["name"]
                for t in TESTS.values()
                if (t.get("test_metadata") or {}).get("name") == kind
            }
        else:
            assert criterion in {t["name"] for t in TESTS.values()}, criterion
            names.add(criterion)
    return names


def test_sensor_batches_run_only_the_guard_tests() -> None:
    """A sensor-started micro-batch runs keys, conservation and the history guards, no unit
    tests; the hourly run (no batch tag) runs every test of the same models."""
    selected = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    dbt_vars = {"as_of": FIXTURE_AS_OF}
    sensor = dbt_assets.dbt_build_args(DBT_MANIFEST, selected, dbt_vars, sensor_batch=True)
    hourly = dbt_assets.dbt_build_args(DBT_MANIFEST, selected, dbt_vars, sensor_batch=False)
    assert sensor[:3] == hourly[:3] == ["build", "--vars", json.dumps(dbt_vars)]
    assert sensor[sensor.index("--exclude-resource-type") + 1] == "unit_test"
    assert "--exclude-resource-type" not in hourly
    # a test runs when one of its parents is built (indirect selection): only those are excluded
    models = dbt_assets.selected_unique_ids(DBT_MANIFEST, selected)
    runnable = {
        t["name"] for uid, t in TESTS.items() if set(DBT_MANIFEST["parent_map"][uid]) & models
    }
    deferred = set(dbt_assets.tests_left_for_daily(DBT_MANIFEST, selected)) & runnable
    folded = set(dbt_assets.folded_guard_tests(DBT_MANIFEST)) & runnable
    hourly_left = excluded_tests(hourly)
    # the hourly run checks whole tables with dbt's own key tests: it skips the folded guards
    assert deferred and len(folded) == 26 and hourly_left == deferred | folded
    # the micro-batch job's runs (the hourly schedule's too) leave unit tests to the daily build
    # (tagged incremental); the daily job's runs and manual materialisations keep them
    jobs = {
        name: defs.resolve_job_def(name).tags for name in ("microbatch_job", "daily_full_build_job")
    }
    assert jobs["microbatch_job"][dbt_assets.RUN_KIND_TAG] == dbt_assets.INCREMENTAL_KIND
    assert jobs["daily_full_build_job"][dbt_assets.RUN_KIND_TAG] == "full"
    scheduled = dbt_assets.dbt_build_args(
        DBT_MANIFEST, selected, dbt_vars, sensor_batch=False, unit_tests=False
    )
    assert scheduled[scheduled.index("--exclude-resource-type") + 1] == "unit_test"
    assert excluded_tests(scheduled) == hourly_left  # the same data tests as with unit tests
    left = excluded_tests(sensor) & runnable
    assert deferred <= left and not folded & left
    left -= deferred
    # dbt resolves each criterion against the graph: a few kinds, not hundreds of names
    assert len(sensor[sensor.index("--exclude") + 1].split()) < 40 < len(left)
    by_name = {t["name"]: t for t in TESTS.values()}
    kinds = {(by_name[n].get("test_metadata") or {}).get("name", "singular") for n in left}
    assert {"accepted_values", "accepted_range"} <= kinds
    # every key test is left (the folded guard_keys of each written table checks the same keys
    # on the rows the run wrote); the tables left unguarded are views and the models a landing
    # file cannot change
    left_keys = [n for n in left if (by_name[n].get("test_metadata") or {}).get("name") in KEYS]
    assert {n for n in runnable if (by_name[n].get("test_metadata") or {}).get("name") in KEYS} == (
        set(left_keys)
    )
    guarded = {by_name[n]["attached_node"] for n in folded}
    unguarded = {by_name[n]["attached_node"] for n in left_keys} - guarded
    independent = {
        uid
        for uid in unguarded
        if dbt_assets.LANDING_INDEPENDENT_TAG in MODELS[uid]["config"]["tags"]
    }
    assert {uid.split(".")[-1] for uid in independent} == {
        "privacy_requests",
        "privacy_suppression_list",
    }
    assert {MODELS[uid]["config"]["materialized"] for uid in unguarded - independent} == {"view"}
    for guard in ("assert_raw_lines_conserved", RAW_GUARD):
        assert guard in runnable and guard not in left
    for whole_table in (RAW_PK_CHECK, "unique_fct_sessions_session_id"):
        assert whole_table in runnable and whole_table in left and whole_table not in hourly_left
    assert "assert_consent_signals_present" in left
    # the keys of views (stg_events, int_events_stitched) are left too: a batch writes no rows
    # there; the keys of the tables they feed are checked
    for view_key in ("unique_stg_events_message_id", "unique_int_events_stitched_message_id"):
        assert by_name[view_key]["attached_node"] in MODELS
        assert MODELS[by_name[view_key]["attached_node"]]["config"]["materialized"] == "view"
        assert view_key in left


def test_the_hourly_selector_is_what_the_hourly_job_runs(tmp_path: Path) -> None:
    """`dbt build --selector hourly` (selectors.yml; what bench_profiles times) resolved by dbt
    itself: the micro-batch job's models and the data tests its hourly runs keep, so neither a
    folded guard nor a unit test, and dbt's whole-table key tests still in."""
    listed = run_dbt(
        ["ls", "--selector", "hourly", "--output", "json", "--output-keys", "unique_id", "--quiet"],
        make_warehouse(tmp_path, FIXTURE_LANDING),
    ).stdout
    ids = {json.loads(line)["unique_id"] for line in listed.splitlines() if line.startswith("{")}
    selected = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    models = dbt_assets.selected_unique_ids(DBT_MANIFEST, selected)
    assert {uid for uid in ids if uid.startswith("model.")} == {
        uid for uid in models if uid.startswith("model.")
    }
    assert not any(uid.startswith("unit_test.") for uid in ids)
    tests = {TESTS[uid]["name"] for uid in ids if uid.startswith("test.")}
    hourly = dbt_assets.dbt_build_args(
        DBT_MANIFEST, selected, {"as_of": FIXTURE_AS_OF}, sensor_batch=False, unit_tests=False
    )
    runnable = {
        t["name"] for uid, t in TESTS.items() if set(DBT_MANIFEST["parent_map"][uid]) & models
    }
    assert tests and not tests & set(dbt_assets.folded_guard_tests(DBT_MANIFEST))
    assert {RAW_PK_CHECK, "unique_fct_sessions_session_id"} <= tests
    # the job's own exclusions (tests waiting on a daily-only model) aside, the same tests
    assert tests - excluded_tests(hourly) == runnable - excluded_tests(hourly)


def test_sensor_batches_skip_models_a_landing_file_cannot_change() -> None:
    """The privacy request log and suppression list read nothing (personalization/erasure.py
    writes their rows): a sensor batch leaves them, and their tests, to the hourly run."""
    tagged = {
        props["name"]: props
        for props in MODELS.values()
        if dbt_assets.LANDING_INDEPENDENT_TAG in props["config"]["tags"]
    }
    assert set(tagged) == {"privacy_requests", "privacy_suppression_list"}
    for props in tagged.values():  # a tagged model reading anything could change with a file
        assert props["depends_on"]["nodes"] == [], props["name"]
    selected = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    assert {dbt_key(name) for name in tagged} <= set(selected)  # the hourly run builds them
    dbt_vars = {"as_of": FIXTURE_AS_OF}
    sensor = dbt_assets.dbt_build_args(DBT_MANIFEST, selected, dbt_vars, sensor_batch=True)
    hourly = dbt_assets.dbt_build_args(DBT_MANIFEST, selected, dbt_vars, sensor_batch=False)
    criterion = f"tag:{dbt_assets.LANDING_INDEPENDENT_TAG}"
    assert criterion in sensor[sensor.index("--exclude") + 1].split()
    assert criterion not in " ".join(hourly)


def test_the_shipped_instance_dequeues_sensor_runs_every_second(tmp_path: Path) -> None:
    """orchestration/dagster.yaml: a sensor's run waits in the run queue until the daemon next
    dequeues it (every 5 s by default); the shipped instance dequeues every second and keeps
    the pool limit of 1 and the run limit of 4 next to it."""
    shutil.copy(Path(sensors.__file__).parent / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
    concurrency = instance.get_concurrency_config()
    assert concurrency.pool_config.default_pool_limit == 1
    assert concurrency.run_queue_config is not None
    assert concurrency.run_queue_config.max_concurrent_runs == 4


def test_segment_definitions_are_validated_once_per_dbt_invocation(
    fixture_warehouse: Warehouse,
) -> None:
    """int_touched_users, dim_segments, fct_segment_membership and its every-user delete check
    all read the segment definitions; the fixture's `dbt build` validates them once
    (validate_segments_once logs each validation it runs, keyed on the invocation id and the
    definitions)."""
    assert fixture_warehouse.target_path is not None
    log_text = (fixture_warehouse.target_path / "logs" / "dbt.log").read_text()
    keys = [
        line.split("segment definitions validated: ", 1)[1].strip()
        for line in log_text.splitlines()
        if "segment definitions validated: " in line
    ]
    assert keys, "no validation logged: fct_segment_membership was not compiled"
    invocations = [key.split(":", 1)[0] for key in keys]  # invocation id : definitions hash
    assert len(invocations) == len(set(invocations)), keys
    compiled = fixture_warehouse.target_path / "compiled" / "personalization" / "models"
    for model in ("dim_segments.sql", "fct_segment_membership.sql"):  # both read them
        assert list(compiled.rglob(model)), model


# ---------------------------------------------------------------- in-process builds


def warehouse_resource(root: Path, landing: Path) -> WarehouseResource:
    return WarehouseResource(
        db_path=str(root / "warehouse.duckdb"),
        landing_path=str(landing),
        publish_root=str(root / "published"),
        as_of=FIXTURE_AS_OF,
        target_root=str(root / "dbt_runs"),
        development_key=True,  # the tests ask for the public development key
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    """Every asset materialised in process on the fixture landing files (one dbt build)."""
    root = tmp_path_factory.mktemp("orchestration_build")
    landing = root / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)
    result = dg.materialize(
        [landing_events, dbt_models, published_marts],
        resources={"dbt": dbt_resource(), "warehouse": warehouse_resource(root, landing)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    return root, result


def test_materialise_every_asset_on_fixture_data(
    built: tuple[Path, dg.ExecuteInProcessResult], fixture_warehouse: Warehouse
) -> None:
    root, result = built
    assert result.success
    materialised = {
        e.event_specific_data.materialization.asset_key
        for e in result.get_asset_materialization_events()
    }
    expected = {TRANSLATOR.get_asset_key(p) for p in MODELS.values()} | {
        dg.AssetKey("published_marts")
    }
    assert materialised == expected
    evaluations = result.get_asset_check_evaluations()
    failed = [e.check_name for e in evaluations if not e.passed]
    # only checks of severity WARN may fail (segment minimum sizes on 8 users, for instance)
    warn = dg.AssetCheckSeverity.WARN
    assert all(e.severity == warn for e in evaluations if not e.passed), failed
    names = {e.check_name for e in evaluations}
    assert {
        "unique_stg_events_message_id",
        "assert_raw_lines_conserved",
        "feed_alive_rpt_event_volume_daily_",
        "volume_latest_day_within_baseline_rpt_event_volume_daily_",
    } <= names
    # the build equals the plain dbt build of the same files (conftest's fixture_warehouse)
    db = Warehouse(root / "warehouse.duckdb", root / "landing")
    for table in ("staging.stg_events", "marts.dim_user_profiles", "raw.raw_landing_events"):
        sql = f"select count(*) from {table}"
        assert query(db, sql) == query(fixture_warehouse, sql)
    assert any((root / "published").iterdir())
    # dbt wrote its artefacts under the run's own folder, not the project's target/
    assert list((root / "dbt_runs").glob("*/run_results.json"))


def test_materialisations_carry_row_counts_and_column_schema(
    built: tuple[Path, dg.ExecuteInProcessResult],
) -> None:
    """dagster-dbt's fetch_row_counts / fetch_column_metadata, although the manifest was parsed
    with another database file (conftest: target/parse.duckdb) than the run writes."""
    root, result = built
    materialisations = [
        e.event_specific_data.materialization for e in result.get_asset_materialization_events()
    ]
    metadata = {m.asset_key: m.metadata for m in materialisations}
    profiles = metadata[PROFILES]
    rows = query(
        Warehouse(root / "warehouse.duckdb", root / "landing"),
        "select count(*) from marts.dim_user_profiles",
    )[0][0]
    assert rows > 0
    assert profiles["dagster/row_count"].value == rows
    columns = {c.name: c.type for c in profiles["dagster/column_schema"].schema.columns}
    # dbt's names for DuckDB's types (VARCHAR is dbt's "character varying")
    assert columns["canonical_user_id"].startswith("character varying")
    assert (columns["revenue"], columns["orders"]) == ("DOUBLE", "BIGINT")
    assert "average_order_value_30d" in columns
    # every table's materialisation has both; views only a schema (dagster-dbt counts no view:
    # its query may be costly), but a mart that is a view is counted (mart_view_row_count:
    # dim_user_profiles, above)
    for name in ("fct_sessions", "raw_landing_events", "fct_user_clusters"):
        assert "dagster/row_count" in metadata[dbt_key(name)], name
        assert "dagster/column_schema" in metadata[dbt_key(name)], name
    assert MODELS["model.personalization.dim_user_profiles"]["config"]["materialized"] == "view"
    for view in ("stg_events", "int_events_stitched"):
        assert "dagster/row_count" not in metadata[dbt_key(view)], view
        assert "dagster/column_schema" in metadata[dbt_key(view)], view


def test_manifest_names_the_database_the_run_writes() -> None:
    """The project is parsed with one database file (the tests: target/parse.duckdb, catalog
    `parse`); a run writing another (prod.duckdb) looks its relations up in `prod`."""
    (props,) = [v for v in MODELS.values() if v["name"] == "dim_user_profiles"]
    parsed = props["database"]
    assert parsed != "prod"
    manifest = manifest_for_database(DBT_MANIFEST, "prod")
    (moved,) = [v for v in manifest["nodes"].values() if v["name"] == "dim_user_profiles"]
    assert moved["database"] == "prod"
    assert moved["relation_name"] == '"prod"."marts"."dim_user_profiles"'
    assert all(v["database"] == "prod" for v in manifest["sources"].values())
    assert props["database"] == parsed  # the definitions' manifest is left as it was
    assert manifest_for_database(manifest, "prod") is manifest


@pytest.fixture(scope="module")
def blocked(
    built: tuple[Path, dg.ExecuteInProcessResult], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]:
    """The micro-batch plus publish on a copy of the build whose raw table has a duplicate line
    among the lines loaded since the last run (the rows a sensor batch's guard reads: a line
    loaded again, a day after the previous run's load high-water mark), started as the landing
    sensor starts it (guard tests only, in the warm dbt server)."""
    root, _ = built
    bad = tmp_path_factory.mktemp("orchestration_blocked")
    shutil.copy(root / "warehouse.duckdb", bad / "warehouse.duckdb")
    with duckdb.connect(str(bad / "warehouse.duckdb")) as con:
        con.execute(
            "insert into raw.raw_landing_events select * replace (loaded_at + interval 1 day "
            "as loaded_at) from raw.raw_landing_events where loaded_at = "
            "(select max(loaded_at) from raw.raw_landing_events) limit 1"
        )
    instance = dg.DagsterInstance.ephemeral()
    selection = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    result = dg.materialize(
        [landing_events, dbt_models, published_marts],
        selection=[*selection, dg.AssetKey("published_marts")],
        resources={"dbt": dbt_resource(), "warehouse": warehouse_resource(bad, root / "landing")},
        instance=instance,
        raise_on_error=False,
        tags={dbt_assets.SENSOR_BATCH_TAG: "landing-test"},
    )
    # the batch ran in the warm server of its artefact folder: stopping it says it was there
    assert warm_dbt.stop_server(warm_dbt.socket_path(bad / "dbt_runs"))
    return instance, result


def test_failing_blocking_check_stops_downstream_assets(
    built: tuple[Path, dg.ExecuteInProcessResult],
    blocked: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
) -> None:
    _, result = blocked
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # a sensor batch checks the raw keys with the folded guard (the whole-table test is hourly's)
    assert RAW_PK_CHECK not in evaluations
    assert evaluations[RAW_GUARD].passed is False
    assert evaluations[RAW_GUARD].asset_key == RAW
    materialised = {
        e.event_specific_data.materialization.asset_key
        for e in result.get_asset_materialization_events()
    }
    assert RAW in materialised  # the model ran; its test failed
    # a sensor batch runs the guard tests (the raw PK failed above) and leaves value checks to
    # the hourly run; the full materialisation ran them
    value_checks = ("accepted_values_", "accepted_range_")
    assert not [name for name in evaluations if name.startswith(value_checks)]
    everything = {e.check_name for e in built[1].get_asset_check_evaluations()}
    assert [name for name in everything if name.startswith(value_checks)]
    for name in ("stg_landing__events_checked", "stg_events", "dim_user_profiles"):
        assert dbt_key(name) not in materialised
    assert dg.AssetKey("published_marts") not in materialised
    # a failing test is not a transient failure: the dbt step ran once, without retries
    restarts = [e for e in result.all_events if e.event_type_value == "STEP_RESTARTED"]
    assert restarts == []


# ---------------------------------------------------------------- failure alert


class _Capture(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_failure_sensor_posts_to_webhook(
    blocked: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    instance, result = blocked
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    server.timeout = 10
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    monkeypatch.setenv(sensors.WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/alert")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()
    try:
        sensors.run_failure_alert(context)
        thread.join(timeout=10)
    finally:
        server.server_close()
    assert len(_Capture.received) == 1
    payload = _Capture.received[0]
    assert payload["run_id"] == result.run_id
    assert payload["alert"] == "dagster_run_failure"
    assert payload["status"] == "FAILURE"
    # an unreachable webhook is logged, never raised
    monkeypatch.setenv(sensors.WEBHOOK_ENV, f"http://127.0.0.1:{server.server_port}/gone")
    sensors.run_failure_alert(context)


# ---------------------------------------------------------------- micro-batch sensor


def land(root: Path, name: str, age_seconds: float = 60) -> None:
    """A landing file last modified age_seconds ago (settled by default: older than the
    10-second settle time)."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"type": "track"}\n')
    modified = path.stat().st_mtime - age_seconds
    os.utime(path, (modified, modified))


def tick(instance: dg.DagsterInstance, cursor: str | None) -> Any:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return sensors.landing_microbatch_sensor.evaluate_tick(context)


def test_sensor_one_run_per_batch_none_on_repeat_and_waits_for_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONALIZATION_LANDING", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    land(tmp_path, "dt=2026-01-01/part-0000.jsonl")
    land(tmp_path, "dt=2026-01-01/notes.txt")  # not a landing file
    first = tick(instance, None)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["personalization/batch_files"] == "1"
    assert first.run_requests[0].run_key == sensors.batch_key(["dt=2026-01-01/part-0000.jsonl"])
    # a repeat tick with nothing new requests nothing
    repeat = tick(instance, first.cursor)
    assert repeat.run_requests == [] and repeat.cursor in (None, first.cursor)
    # a burst of three files coalesces into one run
    for i in range(1, 4):
        land(tmp_path, f"dt=2026-01-02/part-000{i}.jsonl.gz")
    burst = tick(instance, first.cursor)
    assert len(burst.run_requests) == 1
    assert burst.run_requests[0].tags["personalization/batch_files"] == "3"
    assert burst.run_requests[0].run_key != first.run_requests[0].run_key
    assert tick(instance, burst.cursor).run_requests == []
    # while a micro-batch run is in progress a new file waits (cursor not advanced)
    running = instance.add_run(
        dg.DagsterRun(
            job_name="microbatch_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )  # fmt: skip
    )
    land(tmp_path, "dt=2026-01-03/part-0000.jsonl")
    waiting = tick(instance, burst.cursor)
    assert waiting.run_requests == []
    assert "in progress" in waiting.skip_message
    assert waiting.cursor in (None, burst.cursor)
    instance.report_run_canceled(running)
    after = tick(instance, burst.cursor)
    assert len(after.run_requests) == 1
    assert after.run_requests[0].tags["personalization/batch_first_file"] == (
        "dt=2026-01-03/part-0000.jsonl"
    )
    assert set(json.loads(after.cursor)["seen"]) == {
        "dt=2026-01-01/part-0000.jsonl", "dt=2026-01-02/part-0001.jsonl.gz",
        "dt=2026-01-02/part-0002.jsonl.gz", "dt=2026-01-02/part-0003.jsonl.gz",
        "dt=2026-01-03/part-0000.jsonl",
    }  # fmt: skip


def test_sensor_waits_for_a_file_to_settle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file modified within the settle time is still being written: the sensor neither hands
    it over nor marks it seen; once settled it is the next batch."""
    monkeypatch.setenv("PERSONALIZATION_LANDING", str(tmp_path))
    monkeypatch.setenv("PERSONALIZATION_LANDING_SETTLE_SECONDS", "30")
    instance = dg.DagsterInstance.ephemeral()
    land(tmp_path, "dt=2026-01-01/part-0000.jsonl", age_seconds=31)
    land(tmp_path, "dt=2026-01-01/part-0001.jsonl", age_seconds=0)
    first = tick(instance, None)
    assert [r.tags["personalization/batch_files"] for r in first.run_requests] == ["1"]
    assert json.loads(first.cursor)["seen"] == ["dt=2026-01-01/part-0000.jsonl"]
    assert tick(instance, first.cursor).run_requests == []
    land(tmp_path, "dt=2026-01-01/part-0001.jsonl", age_seconds=31)
    second = tick(instance, first.cursor)
    assert second.run_requests[0].tags["personalization/batch_first_file"] == (
        "dt=2026-01-01/part-0001.jsonl"
    )
    assert WarehouseResource().dbt_vars()["landing_settle_seconds"] == 30


def test_sensor_batches_skip_the_metadata_queries() -> None:
    """Row counts and column schemas (a query per model after dbt exits, about a minute per
    batch) are left out of sensor-started micro-batches only."""

    class Stream:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def fetch_row_counts(self) -> Stream:
            self.calls.append("row_counts")
            return self

        def _attach_metadata(self, fn: object) -> Stream:
            self.calls.append(f"attach {getattr(fn, '__name__', fn)}")
            return self

        def fetch_column_metadata(self, with_column_lineage: bool) -> Stream:
            self.calls.append(f"columns lineage={with_column_lineage}")
            return self

    sensor, hourly = Stream(), Stream()
    assert dbt_assets.with_table_metadata(sensor, sensor_batch=True) is sensor
    assert sensor.calls == []
    assert dbt_assets.with_table_metadata(hourly, sensor_batch=False) is hourly
    assert hourly.calls == [
        "row_counts",
        "attach mart_view_row_count",
        "columns lineage=False",
    ]


# ---------------------------------------------------------------- the warm micro-batch path


def test_manifest_key_follows_what_a_parse_reads(tmp_path: Path) -> None:
    """The cached manifest's key changes with every file, var, target and environment value a
    parse reads, and not with as_of (rendered at compile time) or a run's artefact folders."""
    project = tmp_path / "project"
    segments = project / "models" / "marts" / "segments" / "segments.yml"
    segments.parent.mkdir(parents=True)
    segments.write_text("segments: [{name: a, rules: []}]\n")
    model = project / "models" / "a.sql"
    model.write_text("select 1 as a")
    (project / "dbt_project.yml").write_text("name: p\n")

    def key(as_of: str = "2026-01-01", landing: str = "in", target: str = "dev", **env: str) -> Any:
        dbt_vars = json.dumps({"as_of": as_of, "landing_path": landing})
        environment = {"PERSONALIZATION_DB": "a.duckdb", "DBT_TARGET_PATH": "/t/1", **env}
        args = ["build", "--vars", dbt_vars, "--target", target]
        return warm_dbt.manifest_key(args, environment, project)

    base = key()
    assert key(as_of="2026-02-01") == base
    assert key(DBT_TARGET_PATH="/t/2", DBT_LOG_PATH="/t/2", HOME="/elsewhere") == base
    assert len({base, key(landing="other"), key(target="prod"), key(PERSONALIZATION_DB="b")}) == 4
    for path, edit in ((model, "select 2 as a"), (segments, "segments: []\n")):
        before = path.read_text()
        path.write_text(edit)
        assert key() != base, path.name
        path.write_text(before)
        assert key() == base
    (project / "models" / "b.sql").write_text("select 1 as b")
    assert key() != base
    for command in (["parse"], ["--version"], ["debug"]):
        assert warm_dbt.manifest_key(command, {}, project) is None


PROBE_PROJECT = {
    "dbt_project.yml": "name: warm_probe\nversion: '1.0'\nconfig-version: 2\nprofile: warm_probe\n",
    "profiles.yml": (
        "warm_probe:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('PERSONALIZATION_DB') }}\"\n      threads: 1\n"
    ),
    # a definition in YAML read from the graph at execution, as the segment definitions are
    "models/schema.yml": (
        "models:\n  - name: probe\n    config:\n      materialized: table\n"
        "      meta: {threshold: 1}\n"
    ),
    "models/probe.sql": (
        "{% set node = graph.nodes.get('model.warm_probe.probe') if execute else none %}\n"
        "select cast('{{ var(\"as_of\") }}' as timestamp) as as_of,\n"
        "    {{ node.config.meta.threshold if node else 0 }} as threshold, 'one' as label\n"
    ),
    # a model dbt's static parser reads (it starts the thread pool a fork does not copy)
    "models/plain.sql": (
        "{{ config(materialized='view') }}\n{{ config(tags=['probe']) }}\n"
        "select * from {{ ref('probe') }}\nunion all\nselect * from {{ ref('probe') }}\n"
    ),
}


def test_warm_server_reuses_its_manifest_and_reparses_a_changed_project(tmp_path: Path) -> None:
    """Batches on one cached manifest get each batch's as_of (rendered at compile time, so the
    rows are right without a parse); an edited definition or model is parsed again before the
    next batch runs, never run with the stale manifest."""
    project = tmp_path / "project"
    for name, text in PROBE_PROJECT.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    db = tmp_path / "probe.duckdb"
    env = {**os.environ, "PERSONALIZATION_DB": str(db), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    server = warm_dbt.socket_path(tmp_path)
    out = (tmp_path / "dbt.out").open("w")

    def batch(as_of: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
        args = ["build", "--project-dir", str(project), "--profiles-dir", str(project),
                "--target-path", str(tmp_path / "target"),
                "--vars", json.dumps({"as_of": as_of})]  # fmt: skip
        answer = warm_dbt.run_on_server(server, args, env, project, (out.fileno(), out.fileno()))
        assert answer["returncode"] == 0, (tmp_path / "dbt.out").read_text()[-2000:]
        with duckdb.connect(str(db), read_only=True) as con:
            row = con.execute("select cast(as_of as varchar), threshold, label from probe")
            found = row.fetchone()
        assert found is not None
        return answer, tuple(found)

    answers: list[dict[str, Any]] = []
    try:
        first, row = batch("2026-01-01 00:00:00")
        assert (first["manifest"], first["parsed"], row) == (
            True,
            1,
            ("2026-01-01 00:00:00", 1, "one"),
        )
        second, row = batch("2026-02-01 12:00:00")
        assert (second["parsed"], row) == (1, ("2026-02-01 12:00:00", 1, "one"))
        schema = project / "models" / "schema.yml"
        schema.write_text(schema.read_text().replace("threshold: 1", "threshold: 2"))
        third, row = batch("2026-02-01 12:00:00")
        assert (third["parsed"], row) == (2, ("2026-02-01 12:00:00", 2, "one"))
        model = project / "models" / "probe.sql"
        model.write_text(model.read_text().replace("'one'", "'two'"))
        fourth, row = batch("2026-02-02 00:00:00")
        assert (fourth["parsed"], row) == (3, ("2026-02-02 00:00:00", 2, "two"))
        # a command without a cached manifest parses in its child, after the server parsed:
        # it must not wait on a thread pool the server's own parse started (a fork copies none)
        parse = ["parse", "--project-dir", str(project), "--profiles-dir", str(project),
                 "--target-path", str(tmp_path / "target-parse")]  # fmt: skip
        child = threading.Thread(
            target=lambda: answers.append(
                warm_dbt.run_on_server(server, parse, env, project, (out.fileno(), out.fileno()))
            ),
            daemon=True,
        )
        child.start()
        child.join(timeout=120)
        assert answers and answers[0]["returncode"] == 0 and not answers[0]["manifest"], answers
    finally:
        out.close()
        if answers:  # a child stuck in its parse would keep the server from stopping
            assert warm_dbt.stop_server(server)


def test_a_stale_manifest_is_told_apart(tmp_path: Path) -> None:
    """A model file the manifest does not know (parsed before it was added) is named: the jobs
    select from the manifest and would leave it out. The checkout's own manifest is fresh."""
    assert (
        dbt_assets.models_missing_from_manifest(DBT_MANIFEST, dbt_assets.DBT_PROJECT.project_dir)
        == []
    )
    (tmp_path / "models" / "marts").mkdir(parents=True)
    (tmp_path / "python_models").mkdir()
    for name in ("models/marts/a.sql", "models/marts/b.sql", "python_models/c.py", "models/x.yml"):
        (tmp_path / name).write_text("")
    manifest = {
        "nodes": {
            "model.p.a": {"resource_type": "model", "original_file_path": "models/marts/a.sql"}
        },
        "disabled": {
            "model.p.c": [{"resource_type": "model", "original_file_path": "python_models/c.py"}]
        },
    }
    assert dbt_assets.models_missing_from_manifest(manifest, tmp_path) == ["models/marts/b.sql"]
