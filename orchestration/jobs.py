"""Jobs: the daily full build and the incremental micro-batch (raw load -> staging -> marts)."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import build_dbt_asset_selection

from orchestration.dbt_assets import INCREMENTAL_KIND, RUN_KIND_TAG, dbt_models
from orchestration.publish import published_marts

# The dbt selector (selectors.yml) of what a micro-batch rebuilds: one definition for the
# Dagster job, plain `dbt build --selector microbatch` and the equivalence test.
MICROBATCH_SELECTOR = "microbatch"


def microbatch_selection() -> dg.AssetSelection:
    """The micro-batch job's assets: dagster-dbt resolves the dbt selector against the manifest
    (raw load -> staging -> profiles -> segments; no reports, seeds or daily-only fits)."""
    return build_dbt_asset_selection([dbt_models], dbt_selector=MICROBATCH_SELECTOR)


MICROBATCH_TAGS = {RUN_KIND_TAG: INCREMENTAL_KIND}  # its runs leave unit tests to the daily

microbatch_job = dg.define_asset_job(
    name="microbatch_job",
    selection=microbatch_selection(),
    description=(
        "Incremental micro-batch: raw load of new landing files -> staging -> profiles -> "
        "segments, with their dbt tests as (blocking) checks. Started by the landing sensor and "
        "the hourly schedule."
    ),
    tags=MICROBATCH_TAGS,
)

daily_full_build_job = dg.define_asset_job(
    name="daily_full_build_job",
    selection=dg.AssetSelection.assets(dbt_models, published_marts),
    description=(
        "Full build: every dbt model and test (seeds, clustering refit, audits), the volume "
        "check, then publish the marts."
    ),
    tags={RUN_KIND_TAG: "full"},
)
