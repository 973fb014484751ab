"""Pieces the benchmarks share: the sensor-then-job step of a micro-batch, and the output."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg


def run_next_microbatch(
    instance: dg.DagsterInstance, cursor: str | None, job: Any, resources: dict[str, Any]
) -> tuple[str | None, float, Any]:
    """One tick of the landing sensor (it must see exactly one batch), then the micro-batch job
    with the run request's tags: returns the new cursor, when the batch was detected and the
    job's result."""
    from orchestration import sensors

    result = sensors.landing_microbatch_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=cursor)
    )
    assert len(result.run_requests) == 1, result.skip_message
    detected = time.perf_counter()
    outcome = job.execute_in_process(
        instance=instance,
        resources=resources,
        raise_on_error=False,
        tags=result.run_requests[0].tags,
    )
    return result.cursor, detected, outcome


def emit(figures: dict[str, Any], out: Path | None) -> int:
    """Print the figures as JSON (and write them to `out` when given); the exit code."""
    text = json.dumps(figures, indent=2)
    print(text)
    if out:
        out.write_text(text)
    return 0
