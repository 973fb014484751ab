"""The Spark lane (make test-spark; marked `spark`, which make test deselects): the hand-written
fixture built on DuckDB (the session's fixture_warehouse) and on local Spark (PySpark raw load,
then dbt build --target spark), compared table by table. The equality report is logged.

Only the tables Spark builds today are compared (docs/scale-out.md lists what is left)."""

from __future__ import annotations

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

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.spark.compare import TableComparison, compare_frames, report
from personalization.spark.session import WAREHOUSE_ENV, spark_conf
from personalization.tracking_plan import PROJECT_ROOT

pytestmark = pytest.mark.spark
log = logging.getLogger(__name__)

# The models Spark builds today: the staging layer up to the raw load manifest and the tracking
# plan, with their seeds and the privacy tables staging reads. The raw load itself is the PySpark
# job (dbt-spark runs no Python model), so it is excluded from the dbt selection.
SPARK_SELECTION = [
    "--select", "resource_type:seed", "+raw_landing_files", "+stg_tracking_plan",
    "+privacy_suppression_list",
    "--exclude", "raw_landing_events",
]  # fmt: skip
# (table, columns that hold each run's own time or id: never equal across two runs)
COMPARED_TABLES = [
    ("raw.raw_landing_events", ("loaded_at",)),
    ("raw.landing_file_log", ("load_id", "logged_at")),
    ("raw.raw_landing_files", ("loaded_at",)),
    ("staging.stg_tracking_plan", ()),
    ("reference.ref_countries", ()),
    ("reference.ref_cities", ()),
    ("reference.ref_country_aliases", ()),
    ("reference.ref_currency_rates", ()),
    ("privacy.privacy_suppression_list", ()),
]


@pytest.fixture(scope="module")
def spark_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/landing loaded by the PySpark raw load and built by dbt on the spark
    target, in a warehouse folder of its own; returns the folder."""
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
    warehouse = make_warehouse(root, landing)
    run_dbt(
        ["build", *SPARK_SELECTION],
        warehouse,
        target="spark",
        env={WAREHOUSE_ENV: str(warehouse_dir)},
    )
    return warehouse_dir


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


def test_fixture_tables_equal_on_duckdb_and_spark(
    fixture_warehouse: Warehouse, spark_warehouse: Path
) -> None:
    """Every table Spark builds has the same rows and values as DuckDB's build of the fixture."""
    from personalization.spark.session import spark_session

    spark = spark_session(spark_warehouse)
    try:
        comparisons: list[TableComparison] = [
            compare_frames(
                table,
                _duckdb_frame(fixture_warehouse, table),
                spark.table(table).toPandas(),
                ignore=ignore,
            )
            for table, ignore in COMPARED_TABLES
        ]
    finally:
        spark.stop()
    text = report(comparisons)
    log.info("DuckDB vs Spark, tests/fixtures/landing:\n%s", text)
    assert all(c.duckdb_rows > 0 for c in comparisons if "privacy" not in c.table), text
    assert all(c.equal for c in comparisons), text
