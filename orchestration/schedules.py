"""Schedules: the daily full build and the hourly incremental (both stopped until switched on)."""

from __future__ import annotations

import dagster as dg

from orchestration.jobs import daily_full_build_job, microbatch_job

daily_full_build_schedule = dg.ScheduleDefinition(
    name="daily_full_build_schedule",
    job=daily_full_build_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    description="02:00 UTC: every model, test, clustering refit and audit, then publish.",
)

hourly_incremental_schedule = dg.ScheduleDefinition(
    name="hourly_incremental_schedule",
    job=microbatch_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    description=(
        "Every hour at :15: the incremental staging -> profiles -> segments build (a safety net "
        "behind the landing sensor; incremental models only process what is new)."
    ),
)
