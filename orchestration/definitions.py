"""The Dagster code location: `dagster dev -m orchestration.definitions` (or `make ui`)."""

from __future__ import annotations

import dagster as dg

from orchestration.dbt_assets import dbt_models
from orchestration.erasure import erasure_job
from orchestration.jobs import daily_full_build_job, microbatch_job
from orchestration.landing import landing_events
from orchestration.publish import published_marts
from orchestration.resources import WarehouseResource, dbt_resource
from orchestration.schedules import daily_full_build_schedule, hourly_incremental_schedule
from orchestration.sensors import landing_microbatch_sensor, run_failure_alert

RESOURCES = {"dbt": dbt_resource(), "warehouse": WarehouseResource()}

defs = dg.Definitions(
    assets=[landing_events, dbt_models, published_marts],
    jobs=[microbatch_job, daily_full_build_job, erasure_job],
    schedules=[daily_full_build_schedule, hourly_incremental_schedule],
    sensors=[landing_microbatch_sensor, run_failure_alert],
    resources=RESOURCES,
)
