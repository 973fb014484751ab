"""The engine switch: the same asset graph on DuckDB (the default) or on Apache Spark.

PERSONALIZATION_ENGINE=duckdb|spark (default duckdb) picks the definitions
(`definitions_for`). On DuckDB they are orchestration.definitions' own. On Spark
(docs/scale-out.md) the graph keeps every asset key and every dbt test as an asset check, but:

- dbt runs on the `spark` target through `personalization-dbt-spark` (the console script of
  personalization.spark.dbt_spark: the HMAC functions registered on the session first);
- the dbt Python models, which dbt-spark cannot run outside Databricks, are PySpark steps with
  the same asset keys and upstreams (`PYSPARK_STEPS`): the raw load (personalization.spark.
  raw_load), the age kNN and the clustering (personalization.spark.python_steps: MLlib KMeans and
  the Ward sample-fit with a Spark assignment, the cluster tables written from Spark's labels);
- every Spark step shares one pool, SPARK_POOL: the local warehouse's embedded metastore is open
  in one JVM at a time (on a cluster with a shared metastore the pool can be widened);
- publishing (a DuckDB file for BI) is left out: on a cluster the marts are the warehouse's
  tables.

Dagster splits the dbt multi-asset around the PySpark steps (it is subsettable), so one job runs
raw load -> dbt -> age kNN -> dbt -> clustering -> dbt in dependency order.

    PERSONALIZATION_ENGINE=spark .venv/bin/dagster dev -m orchestration.engine
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.dbt_assets import (
    DBT_MANIFEST,
    LANDING_KEY,
    SENSOR_BATCH_TAG,
    TRANSLATOR,
    dbt_build_args,
)
from orchestration.landing import landing_events
from orchestration.resources import (
    DBT_PROJECT,
    WarehouseResource,
    env_path,
    landing_settle_seconds,
)
from personalization.spark.lane import DUCKDB_ONLY_UNIT_TESTS
from personalization.tracking_plan import PROJECT_ROOT

ENGINE_ENV = "PERSONALIZATION_ENGINE"
ENGINES = ("duckdb", "spark")
SPARK_POOL = "spark_metastore"
# the dbt executable of the spark target: a console script (pyproject.toml) next to this Python
SPARK_DBT_SCRIPT = "personalization-dbt-spark"
# dbt Python model -> the PySpark step that computes it on Spark
PYSPARK_STEPS = {
    "raw_landing_events": "raw_load",
    "int_user_age_knn": "age_knn",
    "fct_user_clusters": "clusters",
    "dim_clusters": "clusters",
    "rpt_cluster_quality": "clusters",
}


def engine_name() -> str:
    """PERSONALIZATION_ENGINE, else duckdb; anything else is an error naming the choices."""
    engine = os.environ.get(ENGINE_ENV) or "duckdb"
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


class SparkEngineResource(dg.ConfigurableResource):
    """The local Spark warehouse (Parquet tables and the embedded metastore): warehouse_path,
    else PERSONALIZATION_SPARK_WAREHOUSE, else target/spark-warehouse. PySpark steps run as
    child processes of this Python (one JVM each, never two at once: SPARK_POOL)."""

    warehouse_path: str | None = None

    def warehouse(self) -> Path:
        if self.warehouse_path:
            return Path(self.warehouse_path)
        return env_path("PERSONALIZATION_SPARK_WAREHOUSE", "target/spark-warehouse")

    @contextmanager
    def env(self) -> Iterator[None]:
        """The environment of a dbt run in the block: the spark target reads the warehouse."""
        saved = os.environ.get("PERSONALIZATION_SPARK_WAREHOUSE")
        os.environ["PERSONALIZATION_SPARK_WAREHOUSE"] = str(self.warehouse())
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("PERSONALIZATION_SPARK_WAREHOUSE", None)
            else:
                os.environ["PERSONALIZATION_SPARK_WAREHOUSE"] = saved

    def run_module(self, module: str, args: list[str]) -> None:
        """`python -m module args` on the warehouse; raise with its output tail on failure."""
        env = {**os.environ, "PERSONALIZATION_SPARK_WAREHOUSE": str(self.warehouse())}
        argv = [sys.executable, "-m", module, *args, "--warehouse", str(self.warehouse())]
        result = subprocess.run(
            argv, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise dg.Failure(description=f"{module} failed:\n{result.stderr[-3000:]}")


def spark_dbt_resource() -> DbtCliResource:
    """dagster-dbt's CLI resource on the spark target, through personalization-dbt-spark."""
    return DbtCliResource(
        project_dir=DBT_PROJECT,
        profiles_dir=str(PROJECT_ROOT),
        dbt_executable=str(Path(sys.executable).parent / SPARK_DBT_SCRIPT),
        target="spark",
    )


def _node(model: str) -> Mapping[str, Any]:
    return DBT_MANIFEST["nodes"][f"model.personalization.{model}"]


def model_key(model: str) -> dg.AssetKey:
    """The asset key dbt's translator gives a model (the same on both engines)."""
    return TRANSLATOR.get_asset_key(_node(model))


def model_spec(model: str) -> dg.AssetSpec:
    """The asset spec of a Python model computed by a PySpark step: its dbt key, group,
    description and upstreams (the raw load: the landing folder)."""
    props = _node(model)
    parents = [
        TRANSLATOR.get_asset_key(DBT_MANIFEST["nodes"][uid])
        for uid in props["depends_on"]["nodes"]
        if uid in DBT_MANIFEST["nodes"]
    ]
    if model == "raw_landing_events":
        parents.append(LANDING_KEY)
    return dg.AssetSpec(
        key=model_key(model),
        deps=parents,
        group_name=TRANSLATOR.get_group_name(props),
        description=TRANSLATOR.get_description(props),
        kinds={"spark"},
    )


def pyspark_step(step: str) -> dg.AssetsDefinition:
    """The multi-asset of one PySpark step (every Python model it computes)."""
    models = [model for model, name in PYSPARK_STEPS.items() if name == step]

    @dg.multi_asset(name=f"spark_{step}", specs=[model_spec(m) for m in models], pool=SPARK_POOL)
    def compute(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        spark: SparkEngineResource,
    ) -> Iterator[dg.MaterializeResult]:
        if step == "raw_load":
            loaded_at = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
            spark.run_module(
                "personalization.spark.raw_load",
                ["--landing", str(warehouse.landing()), "--loaded-at", loaded_at,
                 "--settle-seconds", str(landing_settle_seconds())],
            )  # fmt: skip
        else:
            vars_json = json_vars(warehouse.dbt_vars())
            spark.run_module("personalization.spark.python_steps", [step, "--vars", vars_json])
        for model in models:
            yield dg.MaterializeResult(asset_key=model_key(model))

    return compute


def json_vars(values: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(values))


@dbt_assets(
    manifest=DBT_MANIFEST,
    project=DBT_PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    exclude=" ".join(PYSPARK_STEPS),
    name="spark_dbt_models",
    pool=SPARK_POOL,
)
def spark_dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    spark: SparkEngineResource,
) -> Iterator[Any]:
    """`dbt build` of the selected models and their tests on the spark target (the same
    arguments as the DuckDB assets: orchestration.dbt_assets.dbt_build_args)."""
    args = without_duckdb_only_unit_tests(
        dbt_build_args(
            DBT_MANIFEST,
            context.selected_asset_keys,
            warehouse.dbt_vars(),
            sensor_batch=SENSOR_BATCH_TAG in context.run.tags,
        )
    )
    # dbt's artefacts in the warehouse's targets folder (as the DuckDB assets), one per step
    target = warehouse.targets() / f"spark-{context.run.run_id[:8]}-{uuid.uuid4().hex[:6]}"
    with spark.env():
        yield from dbt.cli(args, context=context, target_path=target).stream()


def without_duckdb_only_unit_tests(args: list[str]) -> list[str]:
    """`dbt build` arguments with the unit tests whose given rows are DuckDB SQL left out
    (personalization.spark.lane.DUCKDB_ONLY_UNIT_TESTS), added to the run's own --exclude."""
    args = list(args)
    if "--exclude" in args:
        at = args.index("--exclude") + 1
        args[at] = " ".join([args[at], *DUCKDB_ONLY_UNIT_TESTS])
        return args
    return [*args, "--exclude", " ".join(DUCKDB_ONLY_UNIT_TESTS)]


SPARK_ASSETS = [
    landing_events,
    pyspark_step("raw_load"),
    spark_dbt_models,
    pyspark_step("age_knn"),
    pyspark_step("clusters"),
]

spark_full_build_job = dg.define_asset_job(
    name="spark_full_build_job",
    selection=dg.AssetSelection.all(),
    description=(
        "Full build on Spark: the PySpark raw load, every dbt model and test on the spark "
        "target, the age kNN and the clustering (MLlib) as PySpark steps."
    ),
    tags={"personalization/kind": "full", "personalization/engine": "spark"},
)


def definitions_for(engine: str) -> dg.Definitions:
    """The code location of an engine (see the module docstring)."""
    if engine == "duckdb":
        from orchestration.definitions import defs as duckdb_defs

        return duckdb_defs
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    return dg.Definitions(
        assets=SPARK_ASSETS,
        jobs=[spark_full_build_job],
        resources={
            "dbt": spark_dbt_resource(),
            "warehouse": WarehouseResource(),
            "spark": SparkEngineResource(),
        },
    )


defs = definitions_for(engine_name())
