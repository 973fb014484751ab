"""The dbt Python models' steps on Spark (dbt-spark runs no Python model outside Databricks).

On DuckDB, `python_models/` are dbt Python models. On the `spark` target the Dagster engine
switch (orchestration/engine.py) runs these steps instead, as assets with the same keys:

- `age_knn`: int_user_age_knn, the same `impute_age` on the imputation features collected to the
  driver (one row per user, a few numeric columns);
- `clusters`: fct_user_clusters from Spark's fit (MLlib KMeans; Ward on the seeded sample with a
  distributed assignment: personalization.spark.clustering.spark_assign_clusters), then
  dim_clusters and rpt_cluster_quality by the DuckDB path's own pandas code on those labels.

The settings are the dbt vars the Python models read (dbt_project.yml, overridden by --vars).
Each step writes full tables (Parquet, overwrite), as the models are tables on DuckDB.

    python -m personalization.spark.python_steps {age_knn,clusters} [--vars JSON] [--warehouse DIR]

Run in a process of its own: the embedded metastore is open in one JVM at a time.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from personalization.tracking_plan import PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STEPS = ("age_knn", "clusters")
# the tables each step writes (schema.table), as the dbt Python models they replace
STEP_TABLES = {
    "age_knn": ("intermediate.int_user_age_knn",),
    "clusters": ("marts.fct_user_clusters", "marts.dim_clusters", "marts.rpt_cluster_quality"),
}


def project_vars(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dbt vars of dbt_project.yml with `overrides` on top (what the Python models read)."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())
    return {**(project.get("vars") or {}), **(overrides or {})}


def read_table(spark: SparkSession, table: str) -> pd.DataFrame | None:
    """A Spark table as pandas, or None when it does not exist (a first build)."""
    if not spark.catalog.tableExists(table):
        return None
    return spark.table(table).toPandas()


def _plain_objects(column: pd.Series) -> pd.Series:
    """An object or nullable (pandas extension: boolean, Int64) column as plain Python values,
    missing values as None: Spark infers a numpy scalar or pandas.NA as an empty struct."""
    if pd.api.types.is_extension_array_dtype(column.dtype):
        column = column.astype(object)
    if column.dtype != object:
        return column
    return column.map(
        lambda value: (
            None
            if value is None or (np.ndim(value) == 0 and pd.isna(value))
            else value.item()
            if isinstance(value, np.generic)
            else value
        )
    ).astype(object)


def _null_type(column: pd.Series) -> str:
    """The Spark type of a column with no value to infer one from, by its pandas dtype."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(column.dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(column.dtype):
        return "double"
    return "string"


def write_table(spark: SparkSession, table: str, frame: pd.DataFrame) -> None:
    """Replace `table` with `frame`; NaN becomes null, as DuckDB reads a pandas NaN."""
    from pyspark.sql import functions as F

    schema = table.split(".", 1)[0]
    spark.sql(f"create database if not exists {schema}")
    empty = [name for name in frame.columns if frame[name].isna().all()]
    written = spark.createDataFrame(frame.drop(columns=empty).apply(_plain_objects))
    for name, kind in written.dtypes:
        if kind in ("double", "float"):
            written = written.withColumn(name, F.nanvl(F.col(name), F.lit(None).cast(kind)))
    for name in empty:  # no value to infer a type from: the pandas dtype's
        written = written.withColumn(name, F.lit(None).cast(_null_type(frame[name])))
    written.select(*frame.columns).write.mode("overwrite").saveAsTable(table)
    log.info("wrote %s: %d rows", table, len(frame))


def run_step(spark: SparkSession, step: str, dbt_vars: dict[str, Any]) -> dict[str, int]:
    """Run one step on the session; returns the rows written per table."""
    written: dict[str, pd.DataFrame] = {}
    if step == "age_knn":
        from personalization.imputation import impute_age

        features = read_table(spark, "intermediate.int_user_imputation_features")
        if features is None:
            raise ValueError("intermediate.int_user_imputation_features is not built yet")
        margin = float(dbt_vars.get("imputation_margin") or 0.05)
        written["intermediate.int_user_age_knn"] = impute_age(features, margin=margin)
    elif step == "clusters":
        from personalization.clustering.config import ClusteringConfig
        from personalization.clustering.pipeline import describe_clusters, quality_report
        from personalization.clustering.warehouse import fitted_at
        from personalization.spark.clustering import spark_assign_clusters

        settings = ("k_min", "k_max", "random_state", "memory_budget_mb", "weak_silhouette")
        config = ClusteringConfig.from_settings(
            **{name: dbt_vars.get(f"clustering_{name}") for name in settings}
        )
        vectors = read_table(spark, "intermediate.int_user_behaviour_vectors")
        if vectors is None:
            raise ValueError("intermediate.int_user_behaviour_vectors is not built yet")
        clusters = spark_assign_clusters(
            spark, vectors, config, read_table(spark, "marts.fct_user_clusters")
        )
        described = describe_clusters(
            vectors, clusters, config, read_table(spark, "marts.dim_clusters")
        )
        written["marts.fct_user_clusters"] = clusters
        written["marts.dim_clusters"] = described
        written["marts.rpt_cluster_quality"] = quality_report(
            vectors, clusters, described, config, fitted_at=fitted_at(dbt_vars.get("as_of"))
        )
    else:
        raise ValueError(f"unknown step {step!r}; known: {', '.join(STEPS)}")
    for table, frame in written.items():
        write_table(spark, table, frame)
    return {table: len(frame) for table, frame in written.items()}


def main(argv: list[str] | None = None) -> int:
    """Run one Python-model step on the local Spark session of the `spark` target."""
    import argparse

    from personalization.spark.session import spark_session

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--vars", default="{}", help="dbt vars as JSON (as_of, clustering_*)")
    parser.add_argument("--warehouse", default=None, help="the Spark warehouse folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spark = spark_session(args.warehouse)
    try:
        counts = run_step(spark, args.step, project_vars(json.loads(args.vars)))
    finally:
        spark.stop()
    log.info("%s: %s", args.step, counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
