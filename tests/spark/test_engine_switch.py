"""The Dagster engine switch (orchestration/engine.py): the Spark definitions load without a
JVM and keep the DuckDB graph's asset keys, with the dbt Python models computed by PySpark
steps. Cheap (no Spark, no dbt run): part of make test, not marked `spark`."""

from __future__ import annotations

import dagster as dg
import pytest

from orchestration import engine
from orchestration.definitions import defs as duckdb_defs


@pytest.fixture(scope="module")
def spark_defs() -> dg.Definitions:
    return engine.definitions_for("spark")


def _computed_by(defs: dg.Definitions) -> dict[dg.AssetKey, str]:
    """asset key -> the name of the (multi-)asset that computes it."""
    graph = defs.resolve_asset_graph()
    return {key: graph.get(key).assets_def.node_def.name for key in graph.materializable_asset_keys}


def test_spark_definitions_keep_the_graph_and_run_python_models_as_pyspark_steps(
    spark_defs: dg.Definitions,
) -> None:
    spark = _computed_by(spark_defs)
    duck = _computed_by(duckdb_defs)
    dbt_keys = {key for key, node in duck.items() if node == "dbt_models"}
    assert dbt_keys and dbt_keys <= set(spark), sorted(map(str, dbt_keys - set(spark)))
    pyspark = {
        engine.model_key(model): f"spark_{step}" for model, step in engine.PYSPARK_STEPS.items()
    }
    assert {key: spark[key] for key in pyspark} == pyspark
    assert {spark[key] for key in dbt_keys - set(pyspark)} == {"spark_dbt_models"}
    # the same upstreams: clustering reads the behaviour vectors dbt builds on Spark
    graph = spark_defs.resolve_asset_graph()
    vectors = engine.model_key("int_user_behaviour_vectors")
    assert vectors in graph.get(engine.model_key("fct_user_clusters")).parent_keys
    assert engine.LANDING_KEY in graph.get(engine.model_key("raw_landing_events")).parent_keys
    # the same dbt tests as asset checks (those of the Python models' own columns aside)
    spark_checks = {check.name for check in graph.asset_check_keys}
    duck_checks = {
        check.name
        for check in duckdb_defs.resolve_asset_graph().asset_check_keys
        if check.asset_key not in pyspark
    }
    # lost on Spark: the check of staging against the raw load's lines, a dbt test with a
    # parent (raw_landing_events) that is no dbt model there (docs/scale-out.md)
    assert duck_checks - spark_checks == {"assert_raw_lines_conserved"}
    assert len(duck_checks) > 100


def test_spark_full_build_job_runs_pyspark_steps_between_dbt_steps(
    spark_defs: dg.Definitions,
) -> None:
    """One job: Dagster splits the dbt multi-asset around the PySpark steps: the raw load
    first, dbt (staging to the features), the age kNN and the clustering, then dbt again for
    the models that read them."""
    job = spark_defs.resolve_job_def("spark_full_build_job")
    deps = job.graph.dependency_structure
    upstream = {
        node.name: {out.node.name for out in deps.all_upstream_outputs_from_node(node.name)}
        for node in job.graph.nodes
    }
    assert upstream["spark_raw_load"] == set()
    dbt_nodes = {name for name in upstream if name.startswith("spark_dbt_models")}
    assert any("spark_raw_load" in upstream[name] for name in dbt_nodes), upstream
    for step in ("spark_age_knn", "spark_clusters"):
        assert upstream[step] and upstream[step] <= dbt_nodes, upstream
        assert any(step in upstream[name] for name in dbt_nodes), upstream
    resources = spark_defs.resolve_all_job_defs()[0].resource_defs
    assert "spark" in resources and "dbt" in resources


def test_spark_dbt_resource_runs_the_spark_target_through_the_hmac_entry_point() -> None:
    resource = engine.spark_dbt_resource()
    assert resource.target == "spark"
    assert resource.dbt_executable.endswith(engine.SPARK_DBT_SCRIPT)


def test_engine_name_rejects_an_unknown_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.ENGINE_ENV, "spark")
    assert engine.engine_name() == "spark"
    monkeypatch.setenv(engine.ENGINE_ENV, "snowflake")
    with pytest.raises(ValueError, match="expected one of duckdb, spark"):
        engine.engine_name()
    monkeypatch.delenv(engine.ENGINE_ENV)
    assert engine.engine_name() == "duckdb"


def test_spark_dbt_builds_leave_out_the_duckdb_only_unit_tests() -> None:
    """The unit tests whose given rows are DuckDB SQL join the run's own --exclude on Spark."""
    names = " ".join(engine.DUCKDB_ONLY_UNIT_TESTS)
    assert len(engine.DUCKDB_ONLY_UNIT_TESTS) == 2
    assert engine.without_duckdb_only_unit_tests(["build", "--vars", "{}"]) == [
        "build", "--vars", "{}", "--exclude", names,
    ]  # fmt: skip
    assert engine.without_duckdb_only_unit_tests(["build", "--exclude", "tag:x", "--quiet"]) == [
        "build", "--exclude", f"tag:x {names}", "--quiet",
    ]  # fmt: skip
