"""The Spark lane (make test-spark; marked `spark`, which make test deselects): the hand-written
fixture built on DuckDB (the session's fixture_warehouse) and on local Spark, compared table by
table; the equality report is logged. Clustering: MLlib on the generated data, compared with
DuckDB's by adjusted Rand index.

The Spark build: the PySpark raw load, then the Python models' tables seeded from DuckDB's build
(personalization/spark/seed_from_duckdb.py: the fixture has too few users to compare clusters),
then `dbt build --target spark` for the seeds, the privacy tables, staging from the raw load's
table, the restricted identity keys, intermediate and marts.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING, make_warehouse

from personalization.dbt_runner import Warehouse
from personalization.spark.compare import (
    TableComparison,
    compare_frames,
    decimal_scales,
    report,
)
from personalization.spark.dbt_spark import run_dbt_spark
from personalization.spark.lane import SPARK_SELECTION
from personalization.spark.session import spark_conf
from personalization.spark.tables import (
    EMPTY_ON_THE_FIXTURE,
    built_relations,
    compared_tables,
    relation_name,
)
from personalization.tracking_plan import PROJECT_ROOT

pytestmark = pytest.mark.spark
log = logging.getLogger(__name__)

# JSON text each engine's JSON writer produced (compare_frames: compared as JSON values)
JSON_COLUMNS = ("properties", "custom_traits")


@pytest.fixture(scope="module")
def spark_warehouse(tmp_path_factory: pytest.TempPathFactory, fixture_warehouse: Warehouse) -> Path:
    """tests/fixtures/landing loaded by the PySpark raw load, seeded with DuckDB's Python-model
    tables, and built by dbt on the spark target (staging included), in a warehouse folder of its
    own; returns the folder."""
    root = tmp_path_factory.mktemp("spark_warehouse")
    landing = root / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)  # copy2: the files keep their mtimes
    warehouse_dir = root / "warehouse"
    subprocess.run(
        [
            sys.executable, "-m", "personalization.spark.raw_load",
            "--landing", str(landing), "--loaded-at", FIXTURE_AS_OF,
            "--warehouse", str(warehouse_dir), "--settle-seconds", "0",
        ],
        check=True,
    )  # fmt: skip
    subprocess.run(
        [
            sys.executable, "-m", "personalization.spark.seed_from_duckdb",
            "--duckdb", str(fixture_warehouse.db_path), "--warehouse", str(warehouse_dir),
        ],
        check=True,
    )  # fmt: skip
    run_dbt_spark(["build", *SPARK_SELECTION], make_warehouse(root, landing), warehouse_dir)
    return warehouse_dir


def _spark_build_artifacts(spark_warehouse: Path) -> tuple[dict, dict]:
    """The manifest and run results of the fixture's dbt build on Spark (its target folder)."""
    target = spark_warehouse.parent / "target"
    return tuple(  # type: ignore[return-value]
        json.loads((target / name).read_text()) for name in ("manifest.json", "run_results.json")
    )


def _duckdb_frame(warehouse: Warehouse, table: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        return con.sql(f"select * from {table}").df()


def test_profiles_spark_target_matches_the_raw_load_session(tmp_path: Path) -> None:
    """The PySpark raw load and dbt's session must open the same warehouse and metastore."""
    profiles = yaml.safe_load((PROJECT_ROOT / "profiles.yml").read_text())
    target = profiles["personalization"]["outputs"]["spark"]
    assert (target["type"], target["method"]) == ("spark", "session")
    rendered = {
        key: str(value).replace(
            "{{ env_var('PERSONALIZATION_SPARK_WAREHOUSE', 'target/spark-warehouse') }}",
            str(tmp_path),
        )
        for key, value in target["server_side_parameters"].items()
    }
    assert rendered == spark_conf(tmp_path)


def test_compare_frames_finds_a_planted_difference() -> None:
    """The comparison can fail: one changed value, one missing row, a float within tolerance."""
    duck = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None], "x": [0.1, 0.2, 0.3]})
    same = duck.iloc[::-1].assign(x=[0.3 + 1e-12, 0.2, 0.1])
    assert compare_frames("t", duck, same).equal
    changed = duck.assign(name=["a", "B", None])
    result = compare_frames("t", duck, changed)
    assert result.differences == ["name: 2 rows differ (first: duckdb 'b', spark 'B')"] or (
        not result.equal and result.differences[0].startswith("name:")
    )
    assert compare_frames("t", duck, duck.iloc[:2]).differences == ["row counts 3 != 2"]


def test_compare_frames_rounds_only_at_sparks_decimal_scale() -> None:
    """A Spark DECIMAL of scale 5 equals DuckDB's double to half its last digit, no further;
    arrays compare element by element whatever their Python type."""
    from decimal import Decimal

    import numpy as np

    duck = pd.DataFrame({"share": [2 / 3], "reasons": [np.array(["a", "b"])]})
    spark = pd.DataFrame({"share": [Decimal("0.66667")], "reasons": [["a", "b"]]})
    assert compare_frames("t", duck, spark, decimal_scales={"share": 5}).equal
    assert not compare_frames("t", duck, spark).equal  # a double must agree to 1e-9
    off = spark.assign(share=[Decimal("0.66668")])
    assert not compare_frames("t", duck, off, decimal_scales={"share": 5}).equal
    assert not compare_frames("t", duck, spark.assign(reasons=[["b", "a"]])).equal


def test_compare_frames_reads_a_spark_struct_as_duckdbs() -> None:
    """A Spark struct (a Row, a tuple) equals DuckDB's struct (a dict) with the same fields and
    values, and differs when a value does (declared_trait_rejections is an array of them)."""
    from pyspark.sql import Row

    duck = pd.DataFrame({"r": [[{"trait_name": "plan", "rejected_value": "x"}]]})
    spark = pd.DataFrame({"r": [[Row(trait_name="plan", rejected_value="x")]]})
    assert compare_frames("t", duck, spark).equal
    other = pd.DataFrame({"r": [[Row(trait_name="plan", rejected_value="y")]]})
    assert not compare_frames("t", duck, other).equal


def test_compare_frames_reads_json_columns_as_values() -> None:
    """A JSON column equals when the two texts hold the same JSON value (Spark escapes an emoji,
    DuckDB writes it), and differs when the value does; other columns compare as text."""
    duck = pd.DataFrame({"properties": ['{"q":"café 🚀"}']})
    spark = pd.DataFrame({"properties": ['{"q":"café \\uD83D\\uDE80"}']})
    assert compare_frames("t", duck, spark, json_columns=("properties",)).equal
    assert not compare_frames("t", duck, spark).equal
    other = pd.DataFrame({"properties": ['{"q":"cafe \\uD83D\\uDE80"}']})
    assert not compare_frames("t", duck, other, json_columns=("properties",)).equal


def test_fixture_tables_equal_on_duckdb_and_spark(
    fixture_warehouse: Warehouse, spark_warehouse: Path
) -> None:
    """Every relation Spark builds (personalization/spark/tables.py: derived from the Spark
    build's manifest, and checked against the relations dbt ran) has the same rows and values as
    DuckDB's build of the fixture."""
    from personalization.spark.session import spark_session

    manifest, run_results = _spark_build_artifacts(spark_warehouse)
    ran = sorted(
        relation_name(manifest["nodes"][result["unique_id"]])
        for result in run_results["results"]
        if result["unique_id"].split(".")[0] in ("model", "seed")
        and manifest["nodes"][result["unique_id"]]["config"]["materialized"] != "ephemeral"
    )
    # the selection resolved on the manifest is what dbt itself built on Spark
    assert ran == built_relations(manifest)
    tables = compared_tables(manifest)
    spark = spark_session(spark_warehouse)
    comparisons: list[TableComparison] = []
    try:
        for table, ignore in tables:
            spark_table = spark.table(table)
            comparisons.append(
                compare_frames(
                    table,
                    _duckdb_frame(fixture_warehouse, table),
                    spark_table.toPandas(),
                    ignore=ignore,
                    decimal_scales=decimal_scales(spark_table.schema),
                    json_columns=JSON_COLUMNS,
                )
            )
    finally:
        spark.stop()
    text = report(comparisons)
    log.info("DuckDB vs Spark, tests/fixtures/landing:\n%s", text)
    # rows on both sides, but where the fixture has none (no privacy request, a full build)
    assert {c.table for c in comparisons if c.duckdb_rows == 0} == set(EMPTY_ON_THE_FIXTURE), text
    # every table equal: the fixture's tie (user 'ok' views P1 and P2 at the same instant) is
    # broken by message_id on both engines (macros/traits.sql tie_broken_time)
    assert all(c.equal for c in comparisons), text


# Measured on the generated data (GENERATED_ARGS: 20k events, 500 users; docs/scale-out.md):
# k-means ARI 0.995 (MLlib chose k = 7 as DuckDB did), hierarchical 1.0 (the same Ward sample).
MIN_CLUSTERING_ARI = 0.98


def test_mllib_clusters_agree_with_duckdb(generated_warehouse: Warehouse, tmp_path: Path) -> None:
    """The clustering step on Spark (personalization.spark.python_steps `clusters`: MLlib KMeans,
    Ward on the sample with a Spark assignment) writes fct_user_clusters, dim_clusters and
    rpt_cluster_quality from Spark's labels: every user once per method as on DuckDB, the same
    partition as DuckDB's scikit-learn clustering (adjusted Rand index), the same number of
    personas and quality rows."""
    from personalization.spark.clustering import adjusted_rand_by_method
    from personalization.spark.python_steps import project_vars, run_step, write_table
    from personalization.spark.session import spark_session

    vectors = _duckdb_frame(generated_warehouse, "intermediate.int_user_behaviour_vectors")
    duckdb_clusters = _duckdb_frame(generated_warehouse, "marts.fct_user_clusters")
    spark = spark_session(tmp_path / "warehouse")
    try:
        write_table(spark, "intermediate.int_user_behaviour_vectors", vectors)
        counts = run_step(spark, "clusters", project_vars(generated_warehouse.dbt_vars()))
        spark_clusters = spark.table("marts.fct_user_clusters").toPandas()
    finally:
        spark.stop()
    for table, rows in counts.items():
        assert rows == len(_duckdb_frame(generated_warehouse, table)), (table, counts)
    key = ["canonical_user_id", "method"]
    assert sorted(map(tuple, spark_clusters[key].to_numpy())) == sorted(
        map(tuple, duckdb_clusters[key].to_numpy())
    )
    clustered = spark_clusters[spark_clusters["cluster_id"] >= 0]
    scores = adjusted_rand_by_method(
        duckdb_clusters, clustered.rename(columns={"cluster_id": "label"})
    )
    ks = clustered.groupby("method")["cluster_id"].nunique()
    duckdb_ks = (
        duckdb_clusters[duckdb_clusters["cluster_id"] >= 0]
        .groupby("method")["cluster_id"]
        .nunique()
    )
    log.info(
        "MLlib vs DuckDB clustering: ARI %s, k spark %s, k duckdb %s; tables written %s",
        scores, ks.to_dict(), duckdb_ks.to_dict(), counts,
    )  # fmt: skip
    assert set(scores) == {"kmeans", "hierarchical"}
    assert all(score >= MIN_CLUSTERING_ARI for score in scores.values()), scores
