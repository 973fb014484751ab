"""A stop-gap (docs/scale-out.md): seed a Spark warehouse with tables DuckDB built.

The Python models (age imputation, clustering) are not dbt models dbt-spark can run. So the Spark
lane builds the fixture on DuckDB, exports the
tables Spark cannot build yet as Parquet (`export_tables`) and registers them as the Spark tables
dbt's refs resolve to (`register_tables`, same schema and name); `dbt build --target spark` then
builds intermediate and marts on top (`--exclude` the seeded models).

Types: DuckDB writes a TIMESTAMP (no zone) as a Parquet timestamp not adjusted to UTC, which Spark
reads as TIMESTAMP_NTZ (and a nanosecond one, as pandas makes, not at all): both are exported as
microsecond TIMESTAMPs and registered as Spark TIMESTAMPs (the session is in UTC, so the values
are unchanged), because the `spark` target's models compare and join them with TIMESTAMPs. Run
in a process of its own: the embedded metastore is open in one JVM at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# The tables the lane does not build on Spark, as schema.table: the Python models' outputs (the
# PySpark steps compute them: personalization.spark.python_steps; the fixture has too few users
# to compare clusters, which test_mllib_clusters_agree_with_duckdb compares on generated data).
SEEDED_TABLES = (
    "intermediate.int_user_age_knn",
    "marts.fct_user_clusters",
    "marts.dim_clusters",
    "marts.rpt_cluster_quality",
)


def seeded_models(tables: tuple[str, ...] = SEEDED_TABLES) -> list[str]:
    """The dbt model names of the seeded tables (for `dbt build --exclude`)."""
    return [table.split(".", 1)[1] for table in tables]


def export_tables(
    db_path: Path, out_dir: Path, tables: tuple[str, ...] = SEEDED_TABLES
) -> dict[str, Path]:
    """Write each table of a DuckDB warehouse as one Parquet file; returns table -> file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        for table in tables:
            path = out_dir / f"{table}.parquet"
            columns = [
                f'cast("{name}" as timestamp) as "{name}"'
                if kind.startswith("TIMESTAMP_")
                else f'"{name}"'
                for name, kind, *_ in con.execute(f"describe {table}").fetchall()
            ]
            con.execute(
                f"copy (select {', '.join(columns)} from {table}) to '{path}' (format parquet)"
            )
            files[table] = path
    log.info("exported %d DuckDB tables to %s", len(files), out_dir)
    return files


def as_spark_types(frame: DataFrame) -> DataFrame:
    """TIMESTAMP_NTZ columns (DuckDB's zone-less TIMESTAMP in Parquet) as Spark TIMESTAMPs."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType

    return frame.select(
        *(
            F.col(field.name).cast("timestamp").alias(field.name)
            if isinstance(field.dataType, TimestampNTZType)
            else F.col(field.name)
            for field in frame.schema.fields
        )
    )


def register_tables(spark: SparkSession, files: dict[str, Path]) -> None:
    """Each Parquet file as a managed table of the same schema.table in the Spark warehouse."""
    for table, path in files.items():
        schema = table.split(".", 1)[0]
        spark.sql(f"create database if not exists {schema}")
        frame = as_spark_types(spark.read.parquet(str(path)))
        frame.write.mode("overwrite").format("parquet").saveAsTable(table)
        log.info("seeded %s (%d rows) from DuckDB", table, frame.count())


def main(argv: list[str] | None = None) -> int:
    """Seed a Spark warehouse with the tables a DuckDB warehouse built that Spark cannot build."""
    import argparse

    from personalization.spark.session import spark_session

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--duckdb", type=Path, required=True, help="the DuckDB warehouse file")
    parser.add_argument("--warehouse", type=Path, required=True, help="the Spark warehouse folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    files = export_tables(args.duckdb, args.warehouse.parent / "seeded-from-duckdb")
    spark = spark_session(args.warehouse)
    try:
        register_tables(spark, files)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
