"""Pieces the benchmarks share: generated events, the sensor-then-job step of a micro-batch, the
users a run touched, the machine's speed, and the output."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb


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


def machine_speed() -> float:
    """How fast this machine is right now, beside the load average (which does not show a shared
    host's slow hours): the wall seconds of a fixed single-threaded job, 200,000 chained SHA-256
    rounds (about 0.07 s on the quiet 2-core bench machine; 0.10-0.23 s in its slow hours)."""
    started = time.perf_counter()
    digest = b"personalization"
    for _ in range(200_000):
        digest = hashlib.sha256(digest).digest()
    return round(time.perf_counter() - started, 3)


def emit(figures: dict[str, Any], out: Path | None) -> int:
    """Print the figures as JSON (and write them to `out` when given); the exit code."""
    text = json.dumps(figures, indent=2)
    print(text)
    if out:
        out.write_text(text)
    return 0


def generate(out: Path, events: int, users: int, days: int, seed: int, start: str) -> dict:
    """Generated events (the project's generator) in out; its manifest."""
    from personalization import cli

    code = cli.main(
        ["generate", "--quiet", f"--events={events}", f"--users={users}", f"--days={days}",
         f"--seed={seed}", f"--start={start}", f"--out={out}"]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    return json.loads((out / "manifest.json").read_text())


def touched_users(db: Path) -> dict:
    """How many users the last run recomputed, out of how many, and why."""
    with duckdb.connect(str(db), read_only=True) as con:
        touched, reason = con.sql(
            "select count(*), any_value(touched_reason) from intermediate.int_touched_users"
        ).fetchone()
        users = con.sql("select count(*) from intermediate.int_user_consent").fetchone()[0]
    return {"touched_users": touched, "users": users, "touched_reason": reason}
