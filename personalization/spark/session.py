"""The local SparkSession of the `spark` dbt target (profiles.yml), for the PySpark steps.

dbt-spark's `session` method builds its session from the target's server_side_parameters; the
PySpark raw load builds the same one here, so both see one warehouse folder and one metastore.
tests/spark checks that the two parameter lists stay equal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

WAREHOUSE_ENV = "PERSONALIZATION_SPARK_WAREHOUSE"
DEFAULT_WAREHOUSE = "target/spark-warehouse"


def warehouse_dir() -> str:
    """The local warehouse folder: PERSONALIZATION_SPARK_WAREHOUSE, else target/spark-warehouse."""
    return os.environ.get(WAREHOUSE_ENV, DEFAULT_WAREHOUSE)


def spark_conf(warehouse: str | Path | None = None) -> dict[str, str]:
    """The session parameters of the `spark` target for a warehouse folder (Parquet tables, an
    embedded Derby metastore and its log inside the folder, UTC session time zone)."""
    root = str(warehouse if warehouse is not None else warehouse_dir())
    return {
        "spark.master": "local[2]",
        "spark.sql.warehouse.dir": root,
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={root}/metastore_db;create=true"
        ),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root}",
        "spark.sql.sources.default": "parquet",
        "spark.sql.legacy.createHiveTableByDefault": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.sql.parser.quotedRegexColumnNames": "true",
    }


def spark_session(warehouse: str | Path | None = None) -> SparkSession:
    """A Hive-enabled local SparkSession with the `spark` target's parameters (as dbt-spark's
    session method builds it). Its Python workers run this interpreter (PYSPARK_PYTHON, unless
    set): the UDFs need the project's environment (pandas and pyarrow for scrub_pii)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    builder = SparkSession.builder.appName("personalization").enableHiveSupport()
    for key, value in spark_conf(warehouse).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
