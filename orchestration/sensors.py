"""Sensors: the landing micro-batch sensor and the run-failure alert."""

import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from orchestration.dbt_assets import LANDING_KEY, SENSOR_BATCH_TAG
from orchestration.jobs import microbatch_job
from orchestration.landing import landing_metadata
from orchestration.resources import WarehouseResource, landing_root, landing_settle_seconds
from personalization.raw_load import list_landing_files, settled
from personalization.worker import worker_holder

log = logging.getLogger(__name__)

MICROBATCH_INTERVAL_SECONDS = 5
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
WEBHOOK_ENV = "PERSONALIZATION_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 5.0


def read_cursor(cursor: str | None) -> set[str]:
    """Landing files (paths relative to the landing root) already handed to a run."""
    return set(json.loads(cursor)["seen"]) if cursor else set()


def write_cursor(seen: set[str]) -> str:
    return json.dumps({"seen": sorted(seen)}, separators=(",", ":"))


def batch_key(paths: list[str]) -> str:
    """One run key per batch of new files: the same batch never starts two runs."""
    digest = hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:16]
    return f"landing-{digest}"


def microbatch_in_progress(instance: dg.DagsterInstance) -> list[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=microbatch_job.name, statuses=IN_PROGRESS), limit=5
    )
    return [run.run_id for run in runs]


@dg.sensor(
    name="landing_microbatch_sensor",
    job=microbatch_job,
    minimum_interval_seconds=MICROBATCH_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Watches PERSONALIZATION_LANDING (default data/landing) for new JSON-lines files. "
        "Every new file is requested exactly once (the cursor lists the files handed to a run); "
        "files found on one tick form one batch and one run; while a micro-batch run is queued "
        "or running, the tick is skipped and the files wait for the next batch. Off while a "
        "micro-batch worker (`personalization worker`) holds the warehouse's lock."
    ),
)
def landing_microbatch_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    db = WarehouseResource().db()
    if holder := worker_holder(db):
        # the worker loads new files itself; the cursor stays, so the sensor takes over (one
        # batch of whatever it has not seen, the raw load skipping what is loaded) when it stops
        return dg.SkipReason(f"the micro-batch worker ({holder}) holds {db}: it loads new files")
    root = landing_root()
    files = list_landing_files(root)
    seen = read_cursor(context.cursor)
    # a file modified within the settle time is still being written: the raw load would skip it,
    # so it is not handed over (nor marked seen) until it has settled
    now = datetime.now(UTC).replace(tzinfo=None)
    ready = {f.path for f in settled(files, now, landing_settle_seconds())}
    new = [f.path for f in files if f.path not in seen and f.path in ready]
    if not new:
        waiting = sum(1 for f in files if f.path not in seen) - len(new)
        return dg.SkipReason(
            f"no new settled landing files under {root} ({len(files)} seen, {waiting} settling)"
        )
    running = microbatch_in_progress(context.instance)
    if running:
        # cursor not advanced: these files join the next batch once the run is over
        return dg.SkipReason(
            f"{len(new)} new file(s) wait: micro-batch run(s) in progress {', '.join(running)}"
        )
    key = batch_key(new)
    context.log.info("micro-batch %s: %d new file(s), first %s", key, len(new), new[0])
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=key,
                tags={
                    SENSOR_BATCH_TAG: key,
                    "personalization/batch_files": str(len(new)),
                    "personalization/batch_first_file": new[0],
                    "personalization/batch_last_file": new[-1],
                },
            )
        ],
        cursor=write_cursor(seen | set(new)),
        asset_events=[
            dg.AssetObservation(asset_key=LANDING_KEY, metadata=landing_metadata(files, root))
        ],
    )


def alert_payload(context: dg.RunFailureSensorContext) -> dict[str, Any]:
    run = context.dagster_run
    event = context.failure_event
    return {
        "alert": "dagster_run_failure",
        "run_id": run.run_id,
        "job_name": run.job_name,
        "status": run.status.value,
        "message": event.message or "",
        "tags": dict(run.tags),
    }


def post_json(
    url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS
) -> int:
    """POST a JSON payload; returns the HTTP status."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
        return int(response.status)


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Logs an alert for every failed run of this code location and POSTs a JSON payload to "
        f"{WEBHOOK_ENV} when that variable is set (timeout {WEBHOOK_TIMEOUT_SECONDS:g} s)."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    payload = alert_payload(context)
    log.error(
        "ALERT run %s of %s failed: %s", payload["run_id"], payload["job_name"], payload["message"]
    )
    url = os.environ.get(WEBHOOK_ENV)
    if not url:
        return
    try:
        status = post_json(url, payload)
        log.info("alert posted to webhook (HTTP %s)", status)
    except OSError as error:  # urllib.error.URLError is an OSError; the alert is logged anyway
        log.warning("alert webhook %s failed: %s", url, error)
