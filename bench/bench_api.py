"""Profile API latency on loopback, and the end-to-end latency of the real-time edge.

    python bench/bench_api.py latency [--users 100000] [--rate 200] [--seconds 30]
    python bench/bench_api.py e2e [--events 20000] [--trials 3]

latency: synthetic marts of --users users (40 trait columns, 10 segments, clusters) are
published; the API (`python -m personalization.api`, own process group) answers
GET /v1/profiles/{id} for random users (5% unknown) started at --rate requests/s for --seconds
(open loop, bounded); p50/p99 per request.

e2e: a --events history is generated, built (dbt build) and published; the collector and the API
run on loopback. Per trial a new user's events go through the Segment SDK -> collector -> landing
file (rotated every second) -> the landing sensor's tick (at a random moment within its
interval) -> the micro-batch job (in process) -> publish -> the API, which is polled until it
lists the user in the segment viewed_top_product_24h. Every stage is timed.
Prints one JSON object (also --out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import emit, run_next_microbatch  # noqa: E402
from personalization import warm_dbt  # noqa: E402
from personalization.api.keys import mart_key  # noqa: E402
from personalization.collector.loopback import (  # noqa: E402
    READ_KEY,
    WRITE_KEY,
    LoopbackHttp,
    free_port,
    open_loop,
    peak_rss_mb,
    start_collector,
    start_server,
    stop,
)
from personalization.privacy import KEY_ENV_VAR  # noqa: E402
from personalization.publish import publish  # noqa: E402

log = logging.getLogger("bench_api")

SEGMENT = "viewed_top_product_24h"


def start_api(published: Path, port: int, log_path: Path) -> Any:
    command = ["personalization.api", "--published", str(published), "--poll-seconds", "0.2"]
    if not os.environ.get(KEY_ENV_VAR):  # the benchmark's own marts, keyed like the demo's
        command.append("--development-key")
    return start_server(command, port, log_path, {"PERSONALIZATION_API_KEYS": READ_KEY})


# -- latency ------------------------------------------------------------------------------------


def synthetic_marts(db: Path, users: int) -> None:
    """Marts with the columns the API reads, `users` rows, ~2.5 segments per user."""
    traits = ", ".join(f"hash(i, {c}) % 1000 / 10.0 as trait_{c:02d}" for c in range(40))
    # the marts key users by the pseudonym of their raw id, as the API computes it (mart_key)
    keys = pyarrow.table(
        {"i": range(users), "canonical_user_id": [mart_key(f"user-{i}") for i in range(users)]}
    )
    with duckdb.connect(str(db)) as con:
        con.execute("create schema marts")
        con.register("user_keys", keys)
        con.execute(
            f"create table marts.dim_user_profiles as select canonical_user_id,"
            f" {traits}, timestamp '2026-01-02' - to_minutes(i % 10000) as last_seen_at,"
            " i % 10 <> 0 as has_personalization_consent, i % 3 = 0 as has_advertising_consent"
            " from user_keys"
        )
        con.execute(
            "create table marts.fct_segment_membership as select 'segment_' || s as segment_name,"
            " canonical_user_id, 'member' as status, has_personalization_consent as is_activatable,"
            " timestamp '2026-01-02' as computed_at from marts.dim_user_profiles, range(10) as r(s)"
            " where hash(canonical_user_id, s) % 4 = 0"
        )
        con.execute(
            "create table marts.dim_segments as select segment_name, '' as description,"
            " 'bench' as owner, count(*) as size, count(*) filter (where is_activatable)"
            " as activatable_size, 'personalization' as requires_consent,"
            " max(computed_at) as computed_at from marts.fct_segment_membership group by all"
        )
        con.execute(
            "create table marts.fct_user_clusters as select canonical_user_id, 'kmeans' as method,"
            " hash(canonical_user_id) % 6 as cluster_id, 'persona' as cluster_name"
            " from marts.dim_user_profiles"
        )


def run_latency(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    synthetic_marts(work / "build.duckdb", args.users)
    t0 = time.perf_counter()
    publish(work / "build.duckdb", work / "published")
    publish_s = time.perf_counter() - t0
    port = free_port()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    process = start_api(work / "published", port, work / "api.log")
    start_s = time.perf_counter() - t0
    rng = random.Random(7)
    count = int(args.rate * args.seconds)
    ids = [
        f"user-{rng.randrange(args.users)}" if rng.random() > 0.05 else f"unknown-{n}"
        for n in range(count)
    ]

    async def drive() -> Any:
        client = LoopbackHttp(port, {"Authorization": f"Bearer {READ_KEY}"})

        async def send(number: int) -> int:
            return (await client.request("GET", f"/v1/profiles/{ids[number]}"))[0]

        try:
            await send(0)  # one warm-up request
            return await open_loop(send, count, args.rate, args.seconds)
        finally:
            await client.close()

    try:
        result = asyncio.run(drive())
        server_peak = peak_rss_mb(process.pid)
    finally:
        stop(process)
    summary = result.summary()
    unknown = sum(1 for i in ids[: summary["requests"]] if i.startswith("unknown-"))
    return {
        "users": args.users,
        "publish_s": round(publish_s, 2),
        "api_start_s": round(start_s, 2),
        "target_rate": args.rate,
        **summary,
        "not_found_expected": unknown,
        "not_found": sum(1 for s in result.statuses if s == 404),
        "api_peak_rss_mb": server_peak,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


# -- end to end ---------------------------------------------------------------------------------


def send_new_user(port: int, user: str, as_of: datetime) -> None:
    """The bench_microbatch new user, through the Segment SDK (sync mode: sent when it returns)."""
    from segment.analytics import Client

    errors: list[Any] = []
    client = Client(
        WRITE_KEY, host=f"http://127.0.0.1:{port}", sync_mode=True,
        on_error=lambda error, _: errors.append(error),
    )  # fmt: skip
    at = as_of - timedelta(minutes=30)
    consent = {"consent": {"categoryPreferences": {"personalization": True, "advertising": True}}}
    common = {"timestamp": at, "context": consent, "anonymous_id": f"anon-{user}"}
    client.identify(user, {"country": "DE", "age": 30}, message_id=f"{user}-0", **common)
    client.page(user, name="Home", properties={"path": "/"}, message_id=f"{user}-1", **common)
    client.track(
        user, "Product Viewed",
        {"product_id": "P00133", "category": "furniture", "price": 120.0},
        message_id=f"{user}-2", **common,
    )  # fmt: skip
    # sync mode: each call returned after the collector's answer (its shutdown() fails there)
    if errors:
        raise RuntimeError(f"the SDK reported errors: {errors}")


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.perf_counter()


def api_lists(port: int, user: str) -> bool:
    response = httpx.get(
        f"http://127.0.0.1:{port}/v1/profiles/{user}",
        headers={"Authorization": f"Bearer {READ_KEY}"},
    )
    return response.status_code == 200 and SEGMENT in response.json()["segments"]


def run_e2e(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import dagster as dg

    from orchestration import sensors
    from orchestration.definitions import defs
    from orchestration.resources import WarehouseResource, dbt_resource
    from personalization import cli
    from personalization.dbt_runner import Warehouse, run_dbt

    landing = work / "landing"
    users = max(1, args.events // 100)
    code = cli.main(["generate", "--quiet", f"--out={landing}", f"--events={args.events}",
                     f"--users={users}", "--days=30", "--seed=11"])  # fmt: skip
    assert code == 0
    as_of_text = json.loads((landing / "manifest.json").read_text())["as_of"]
    as_of = datetime.fromisoformat(as_of_text.replace("Z", "+00:00"))
    warehouse = Warehouse(work / "warehouse.duckdb", landing, work / "target", as_of_text)
    t0 = time.perf_counter()
    run_dbt(["build"], warehouse, check=False)
    full_build_s = time.perf_counter() - t0
    published = work / "published"
    publish(warehouse.db_path, published)

    os.environ["PERSONALIZATION_LANDING"] = str(landing)
    resource = WarehouseResource(
        db_path=str(warehouse.db_path), landing_path=str(landing), as_of=as_of_text,
        publish_root=str(published), target_root=str(work / "dbt_runs"),
    )  # fmt: skip
    resources = {"dbt": dbt_resource(), "warehouse": resource}
    job = defs.resolve_job_def("microbatch_job")
    instance = dg.DagsterInstance.ephemeral()
    cursor = sensors.landing_microbatch_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance)
    ).cursor

    collector_port, api_port = free_port(), free_port()
    collector = start_collector(
        landing / "collector", collector_port, work / "collector.log", rotate_seconds=1.0
    )
    api = start_api(published, api_port, work / "api.log")
    rng = random.Random(7)
    interval = sensors.MICROBATCH_INTERVAL_SECONDS
    trials = []
    try:
        for trial in range(args.trials):
            user = f"edge-user-{trial}"
            started = time.perf_counter()
            send_new_user(collector_port, user, as_of)
            acked = time.perf_counter()
            landed = wait_for(
                lambda u=user: any(u in p.read_text() for p in landing.glob("collector/*.jsonl")),
                "the landing file",
            )
            time.sleep(rng.uniform(0, interval))  # the sensor's next tick comes at a random moment
            cursor, detected, outcome = run_next_microbatch(instance, cursor, job, resources)
            built = time.perf_counter()
            publish(warehouse.db_path, published)
            published_at = time.perf_counter()
            seen = wait_for(lambda u=user: api_lists(api_port, u), "the API", timeout=60)
            trials.append({
                "trial": trial, "microbatch_success": outcome.success,
                "sdk_ack_s": round(acked - started, 2), "landing_s": round(landed - acked, 2),
                "sensor_s": round(detected - landed, 2), "microbatch_s": round(built - detected, 2),
                "publish_s": round(published_at - built, 2),
                "api_switch_s": round(seen - published_at, 2),
                "end_to_end_s": round(seen - started, 2),
            })  # fmt: skip
            log.info("trial %s", trials[-1])
    finally:
        stop(collector)
        stop(api)
        warm_dbt.stop_server(warm_dbt.socket_path(work / "dbt_runs"))  # the sensor batches' dbt
    totals = [t["end_to_end_s"] for t in trials]
    return {
        "events": args.events, "full_build_s": round(full_build_s, 1),
        "sensor_interval_s": interval, "collector_rotate_s": 1.0, "api_poll_s": 0.2,
        "trials": trials, "median_end_to_end_s": round(statistics.median(totals), 2),
        "max_end_to_end_s": round(max(totals), 2), "cpus": os.cpu_count(),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def run_benchmark(
    mode: str, size: int, timer: Callable[[list[str]], tuple[float, float]]
) -> list[tuple[str, int, float, float]]:
    """For bench/run.py: one mode in a child process; rows for the table."""
    with tempfile.TemporaryDirectory(prefix="bench-api-out-") as tmp:
        out = Path(tmp) / "figures.json"
        size_flag = "--users" if mode == "latency" else "--events"
        _, peak = timer([sys.executable, __file__, mode, f"{size_flag}={size}", f"--out={out}"])
        figures = json.loads(out.read_text())
    if mode == "latency":
        label = f"profile API at {figures['target_rate']:g}/s (p99 {figures['p99_ms']} ms)"
        return [(label, figures["requests"], figures["seconds"], peak)]
    return [
        ("edge end to end (median)", 3, figures["median_end_to_end_s"], peak),
        ("edge end to end (max)", 3, figures["max_end_to_end_s"], peak),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["latency", "e2e"])
    parser.add_argument("--users", type=int, default=100_000, help="latency: users published")
    parser.add_argument("--rate", type=float, default=200.0, help="latency: requests/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="latency: time bound")
    parser.add_argument("--events", type=int, default=20_000, help="e2e: history size")
    parser.add_argument("--trials", type=int, default=3, help="e2e: new users sent")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (in /tmp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "dagster", "segment"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix=f"bench-api-{args.mode}-"))
    try:
        figures = (run_latency if args.mode == "latency" else run_e2e)(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return emit(figures, args.out)


if __name__ == "__main__":
    sys.exit(main())
