"""published_marts: the marts exported atomically for BI readers (personalization.publish)."""

import dagster as dg

from orchestration.dbt_assets import TRANSLATOR, layer
from orchestration.resources import DBT_PROJECT, DUCKDB_POOL, WarehouseResource

PUBLISH_KEEP = 3


def mart_keys() -> list[dg.AssetKey]:
    """Every dbt model under models/marts (segments and clusters included once they exist)."""
    manifest = DBT_PROJECT.manifest_path
    import json

    nodes = json.loads(manifest.read_text())["nodes"]
    return sorted(
        (TRANSLATOR.get_asset_key(props) for props in nodes.values()
         if props["resource_type"] == "model" and layer(props) == "marts"),
        key=lambda key: key.to_user_string(),
    )  # fmt: skip


@dg.asset(
    name="published_marts",
    deps=mart_keys(),
    group_name="publish",
    owners=["team:analytics-engineering"],
    kinds={"duckdb", "parquet"},
    pool=DUCKDB_POOL,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
    description=(
        "The marts exported atomically for BI readers: Parquet plus a read-only DuckDB file of "
        "views, as a new version under PERSONALIZATION_PUBLISH (default data/published); the "
        f"last {PUBLISH_KEEP} versions are kept."
    ),
)
def published_marts(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    # imported here so the definitions load even where the publish module is absent
    from personalization.publish import publish

    version = publish(warehouse.db(), warehouse.published(), keep=PUBLISH_KEEP)
    context.log.info("published %s", version)
    return dg.MaterializeResult(metadata={"version_path": dg.MetadataValue.path(str(version))})
