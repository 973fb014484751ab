"""The Spark Dagster definitions end to end (make test-spark; marked `spark`): the job
`spark_full_build_job` of orchestration/engine.py (PERSONALIZATION_ENGINE=spark) run in process
on tests/fixtures/landing - the PySpark raw load, dbt on the spark target split around the age
kNN and the clustering PySpark steps - with the dbt tests as asset checks. Its marts hold
DuckDB's row counts for the same fixture (the session's fixture_warehouse)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING

from personalization.dbt_runner import Warehouse

pytestmark = pytest.mark.spark
log = logging.getLogger(__name__)

# marts whose row counts the job must share with DuckDB's build of the fixture
COMPARED_MARTS = (
    "marts.dim_user_profiles", "marts.fct_sessions", "marts.fct_user_activity_daily",
    "marts.fct_segment_membership", "marts.audience_memberships", "marts.people",
    "marts.rpt_event_volume_daily", "marts.rpt_data_quality", "marts.fct_user_clusters",
    "marts.dim_clusters", "intermediate.int_user_age_knn", "staging.stg_events",
    "staging.quarantined_events", "restricted.restricted_identity_keys",
)  # fmt: skip


def test_spark_full_build_job_builds_the_fixture_like_duckdb(
    fixture_warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration import dbt_assets, engine
    from orchestration.resources import WarehouseResource
    from personalization.spark.session import spark_session

    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)  # copy2: the files keep their mtimes
    spark_dir = tmp_path / "spark-warehouse"
    monkeypatch.setenv("PERSONALIZATION_LANDING_SETTLE_SECONDS", "0")
    defs = dg.Definitions(
        assets=engine.SPARK_ASSETS,
        jobs=[engine.spark_full_build_job],
        resources={
            "dbt": engine.spark_dbt_resource(),
            "warehouse": WarehouseResource(
                db_path=str(tmp_path / "unused.duckdb"),
                landing_path=str(landing),
                as_of=FIXTURE_AS_OF,
                target_root=str(tmp_path / "dbt_runs"),
                development_key=True,
            ),
            "spark": engine.SparkEngineResource(warehouse_path=str(spark_dir)),
        },
    )
    job = defs.resolve_job_def("spark_full_build_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    failures = [event.message for event in result.get_step_failure_events()]
    graph = defs.resolve_asset_graph()
    # the folded key guards run on sensor-started micro-batches only (a full build runs dbt's own
    # key tests on whole tables): every other check must be evaluated
    guards = set(dbt_assets.folded_guard_tests(dbt_assets.DBT_MANIFEST))
    checks = {key for key in graph.asset_check_keys if key.name not in guards}
    materialized = {event.asset_key for event in result.get_asset_materialization_events()}
    evaluations = result.get_asset_check_evaluations()
    evaluated = {evaluation.asset_check_key for evaluation in evaluations}
    not_passed = sorted(
        (evaluation.asset_check_key.name, evaluation.severity.value)
        for evaluation in evaluations
        if not evaluation.passed
    )
    log.info(
        "spark_full_build_job: success %s, steps failed %s; %d of %d assets materialised, "
        "%d of %d asset checks evaluated, not passed: %s; not evaluated: %s",
        result.success, failures, len(materialized), len(graph.materializable_asset_keys),
        len(evaluated), len(checks), not_passed, sorted(key.name for key in checks - evaluated),
    )  # fmt: skip
    assert result.success, failures
    assert materialized == set(graph.materializable_asset_keys), sorted(
        map(str, set(graph.materializable_asset_keys) ^ materialized)
    )
    assert guards and evaluated == checks, sorted(map(str, checks ^ evaluated))
    # the fixture's segments are small: segment_min_size warns, as on DuckDB; nothing else fails
    assert [name for name, severity in not_passed if severity != "WARN"] == [], not_passed

    with duckdb.connect(str(fixture_warehouse.db_path), read_only=True) as con:
        duck = {t: con.sql(f"select count(*) from {t}").fetchone()[0] for t in COMPARED_MARTS}
    spark = spark_session(spark_dir)
    try:
        counts = {t: spark.table(t).count() for t in COMPARED_MARTS}
    finally:
        spark.stop()
    log.info("row counts, Spark job vs DuckDB: %s", {t: (counts[t], duck[t]) for t in counts})
    assert all(duck[t] > 0 for t in COMPARED_MARTS), duck
    assert counts == duck
