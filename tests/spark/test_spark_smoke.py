"""The smallest meaningful Spark comparison, a candidate for make test (the full one is make
test-spark): one JVM in this worker, no dbt on Spark. The PySpark raw load of the fixture equals
DuckDB's raw table row for row; the pseudonym UDF registered on Spark gives DuckDB's user keys;
Spark orders the tie-break key (macros/arrays.sql `spark__ordering_key`: a struct) as DuckDB
does.

Marked `spark_smoke`: make test-spark runs it, and CI after make test (`make test-spark-ci`,
.ci/run, when Java 17 is there); make test deselects it (pyproject addopts: make test does not
install the spark extra). docs/scale-out.md, "The CI lane"."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING

from personalization.dbt_runner import Warehouse
from personalization.spark.compare import compare_frames, report

pytestmark = pytest.mark.spark_smoke


def test_spark_raw_load_pseudonyms_and_tie_break_equal_duckdb(
    fixture_warehouse: Warehouse, tmp_path: Path
) -> None:
    from personalization.privacy import resolve_key
    from personalization.spark.dbt_spark import register_functions
    from personalization.spark.raw_load import load_landing
    from personalization.spark.session import spark_session

    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)
    with duckdb.connect(str(fixture_warehouse.db_path), read_only=True) as con:
        duck_raw = con.sql("select * from raw.raw_landing_events").df()
        keys = con.sql(
            "select raw_identity, user_key from restricted.restricted_identity_keys"
        ).fetchall()
    loaded_at = datetime.fromisoformat(FIXTURE_AS_OF.replace("Z", "")).replace(tzinfo=None)
    spark = spark_session(tmp_path / "warehouse")
    try:
        load_landing(spark, landing, loaded_at, settle_seconds=0)
        spark_raw = spark.table("raw.raw_landing_events").toPandas()
        raw = compare_frames("raw.raw_landing_events", duck_raw, spark_raw, ignore=("loaded_at",))
        # a planted difference: one raw line changed by a character on the Spark side
        planted = spark_raw.copy()
        planted.loc[0, "raw_line"] = str(planted.loc[0, "raw_line"]) + " "
        planted_raw = compare_frames(
            "raw.raw_landing_events", duck_raw, planted, ignore=("loaded_at",)
        )
        register_functions(spark, resolve_key(require_key=False))
        identities = spark.createDataFrame([(raw_id,) for raw_id, _ in keys], "raw_identity string")
        spark_keys = dict(
            identities.selectExpr("raw_identity", "user_pseudonym(raw_identity) as user_key")
            .toPandas()
            .itertuples(index=False, name=None)
        )
        # two events at one instant: last takes the greatest message_id, first the smallest
        tie = spark.sql(
            "select max_by(v, struct(t, m)) as last_v, min_by(v, struct(t, m)) as first_v "
            "from values ('a', timestamp'2026-01-01 10:00:00', 'm2'), "
            "('b', timestamp'2026-01-01 10:00:00', 'm1'), "
            "('c', timestamp'2025-12-31 10:00:00', 'm9') as t(v, t, m)"
        ).first()
    finally:
        spark.stop()
    assert raw.duckdb_rows == 41 and raw.equal, report([raw])
    assert not planted_raw.equal and planted_raw.differences[0].startswith("raw_line:"), report(
        [planted_raw]
    )
    assert len(keys) > 10 and spark_keys == dict(keys)
    assert (tie.last_v, tie.first_v) == ("a", "c")
