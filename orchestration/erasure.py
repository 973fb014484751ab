"""erasure_job: `personalization forget` as a Dagster job (erase, then rebuild), launched with
run config naming the person: {"ops": {"forget_person": {"config": {"user_ids": [...]}}}}.

The run config holds the raw ids the request names (Dagster keeps run configs in its run
storage): clear old erasure runs from the instance where that matters (docs/privacy.md).
"""

import dagster as dg

from orchestration.resources import DUCKDB_POOL, WarehouseResource
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.erasure import forget
from personalization.privacy import resolve_key


class ForgetConfig(dg.Config):
    user_ids: list[str] = []
    anonymous_ids: list[str] = []


@dg.op(pool=DUCKDB_POOL, description="Erase a person and every identity stitched to them.")
def forget_person(
    context: dg.OpExecutionContext, config: ForgetConfig, warehouse: WarehouseResource
) -> str:
    key = resolve_key(require_key=not warehouse.development_key)
    report = forget(
        warehouse.db(),
        warehouse.landing(),
        key,
        config.user_ids,
        config.anonymous_ids,
        [warehouse.published()],
    )
    context.add_output_metadata(
        {
            "request_id": report.request_id,
            "identities": report.identities,
            "landing_lines_removed": report.landing_lines_removed,
            "published_rows_removed": report.published_rows_removed,
        }
    )
    return report.request_id


@dg.op(pool=DUCKDB_POOL, description="dbt build, so that shared tables are recomputed.")
def rebuild_after_erasure(
    context: dg.OpExecutionContext, request_id: str, warehouse: WarehouseResource
) -> None:
    run_dbt(
        ["build"],
        Warehouse(warehouse.db(), warehouse.landing(), as_of=warehouse.reference_time()),
        target=warehouse.dbt_target(),
    )
    context.log.info("rebuilt after erasure request %s", request_id)


@dg.job(
    description="Erasure: forget a person everywhere (warehouse, landing, published versions), "
    "suppress them, then rebuild. Run config: ops.forget_person.config.user_ids / anonymous_ids.",
    tags={"personalization/kind": "erasure"},
)
def erasure_job() -> None:
    rebuild_after_erasure(forget_person())
