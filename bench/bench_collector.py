"""Collector load on loopback: sustained events/s and latency per /v1/batch request.

    python bench/bench_collector.py [--events 300000] [--batch 100] [--seconds 30] \
        [--rate 5000] [--concurrency 8]

1. start the collector (`python -m personalization.collector`, own process group) on 127.0.0.1
   with a temporary landing folder;
2. open loop: batches of --batch Segment messages started at --rate events/s for --seconds
   (p50/p99 per request at the target rate);
3. closed loop: --concurrency clients send batches back to back, --events in all or --seconds at
   most (the sustained maximum, events/s);
4. stop the collector gracefully and count the landing lines: every acknowledged event is there.
Both phases stop by themselves (count and time bounded). Prints one JSON object (also --out).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from personalization.collector.loopback import (  # noqa: E402
    WRITE_KEY,
    LoopbackHttp,
    closed_loop,
    free_port,
    landing_message_ids,
    open_loop,
    peak_rss_mb,
    start_collector,
    stop,
)

log = logging.getLogger("bench_collector")


def batch_body(prefix: str, number: int, size: int) -> bytes:
    """A /v1/batch body of `size` realistic track messages with unique messageIds."""
    messages = [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": f"user-{(number * size + i) % 5000}",
            "anonymousId": f"anon-{(number * size + i) % 7000}",
            "messageId": f"{prefix}-{number}-{i}",
            "timestamp": "2026-01-02T12:00:00.000Z",
            "properties": {"product_id": f"P{i:05d}", "category": "books", "price": 12.5},
            "context": {"library": {"name": "bench", "version": "1"}, "locale": "de-DE"},
        }
        for i in range(size)
    ]
    return json.dumps({"batch": messages, "sentAt": "2026-01-02T12:00:00.000Z"}).encode()


def sender(client: LoopbackHttp, bodies: list[bytes]) -> Callable:
    async def send(number: int) -> int:
        status, _ = await client.request("POST", "/v1/batch", bodies[number])
        return status

    return send


async def drive(port: int, args: argparse.Namespace) -> dict[str, object]:
    open_count = int(args.rate * args.seconds / args.batch)
    closed_count = args.events // args.batch
    # bodies built before the clock starts: the client's JSON work is not the collector's
    open_bodies = [batch_body("open", n, args.batch) for n in range(open_count)]
    closed_bodies = [batch_body("closed", n, args.batch) for n in range(closed_count)]
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    client = LoopbackHttp(port, headers, connections=max(args.concurrency, 64))
    try:
        at_rate = await open_loop(
            sender(client, open_bodies), open_count, args.rate / args.batch, args.seconds
        )
        flat_out = await closed_loop(
            sender(client, closed_bodies), closed_count, args.concurrency, args.seconds
        )
    finally:
        await client.close()
    acked = sum(args.batch for s in at_rate.statuses + flat_out.statuses if s == 200)
    return {
        "at_rate": at_rate.summary() | {"target_events_per_s": args.rate},
        "sustained": flat_out.summary()
        | {
            "events": args.batch * len(flat_out.latencies),
            "events_per_s": round(args.batch * len(flat_out.latencies) / flat_out.seconds),
        },
        "acknowledged_events": acked,
    }


def run(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    landing = work / "landing"
    port = free_port()
    load_before = os.getloadavg()
    process = start_collector(landing, port, work / "collector.log", rotate_seconds=5)
    try:
        figures = asyncio.run(drive(port, args))
        figures["collector_peak_rss_mb"] = peak_rss_mb(process.pid)
    finally:
        stop(process)
    landed = len(landing_message_ids(landing))
    figures |= {
        "batch_size": args.batch,
        "landing_lines": landed,
        "conserved": landed == figures["acknowledged_events"],
        "landing_files": len(list(landing.glob("*.jsonl"))),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    shutil.rmtree(work, ignore_errors=True)
    return figures


def run_benchmark(
    events: int, timer: Callable[[list[str]], tuple[float, float]]
) -> list[tuple[str, int, float, float]]:
    """For bench/run.py: the benchmark in a child process; rows of events and seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-collector-out-") as tmp:
        out = Path(tmp) / "figures.json"
        _, peak = timer([sys.executable, __file__, f"--events={events}", f"--out={out}"])
        figures = json.loads(out.read_text())
    sustained, at_rate = figures["sustained"], figures["at_rate"]
    return [
        (
            f"collector sustained (p99 {sustained['p99_ms']} ms/batch)",
            sustained["events"],
            sustained["seconds"],
            peak,
        ),
        (
            f"collector at {at_rate['target_events_per_s']}/s (p99 {at_rate['p99_ms']} ms)",
            at_rate["requests"] * figures["batch_size"],
            at_rate["seconds"],
            peak,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="closed-loop events at most")
    parser.add_argument("--batch", type=int, default=100, help="messages per /v1/batch request")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound of each phase")
    parser.add_argument("--rate", type=float, default=5000.0, help="open-loop events/s")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    figures = run(args)
    return emit(figures, args.out)


if __name__ == "__main__":
    sys.exit(main())
