"""Benchmark harness: a registry of named benchmarks, each returning result rows.

    python bench/run.py                      # every registered benchmark, default sizes
    python bench/run.py generator --events 1000000

Each benchmark runs its workload in a child process so that the peak memory
(resource.getrusage(RUSAGE_CHILDREN).ru_maxrss) belongs to the workload alone.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    benchmark: str
    events: int
    seconds: float
    peak_mb: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


Benchmark = Callable[[argparse.Namespace], list[Row]]
REGISTRY: dict[str, Benchmark] = {}


def register(name: str) -> Callable[[Benchmark], Benchmark]:
    def wrap(fn: Benchmark) -> Benchmark:
        REGISTRY[name] = fn
        return fn

    return wrap


def run_child(argv: list[str]) -> tuple[float, float]:
    """Run a command in a child process; (wall seconds, peak RSS in MB of the largest child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:  # ru_maxrss is a maximum over all children so far
        peak_kb = before
    return seconds, peak_kb / 1024  # Linux reports KiB


@register("generator")
def bench_generator(args: argparse.Namespace) -> list[Row]:
    """`personalization generate` for --events lines (users = events / 100, 30 days)."""
    events = args.events or 10_000_000
    users = max(1, events // 100)
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        argv = [
            sys.executable, "-m", "personalization.cli", "generate", "--events", str(events),
            "--users", str(users), "--days", "30", "--out", str(Path(tmp) / "raw"), "--quiet",
        ]  # fmt: skip
        if args.workers:
            argv += ["--workers", str(args.workers)]
        seconds, peak = run_child(argv)
        import json

        lines = json.loads((Path(tmp) / "raw" / "manifest.json").read_text())["lines_total"]
    return [Row("generator", lines, seconds, peak)]


@register("clustering")
def bench_clustering(args: argparse.Namespace) -> list[Row]:
    """Clustering fit + assignment for --events users (default 1M): bench/bench_clustering.py."""
    from bench_clustering import run_benchmark

    return [Row(*r) for r in run_benchmark(args.events or 1_000_000, run_child)]


@register("segments")
def bench_segments(args: argparse.Namespace) -> list[Row]:
    """Shipped segments evaluated on --events events (default 10M): bench/bench_segments.py."""
    from bench_segments import run_benchmark

    return [Row(*r) for r in run_benchmark(args.events or 10_000_000, run_child)]


@register("microbatch")
def bench_microbatch(args: argparse.Namespace) -> list[Row]:
    """Landing file -> segment membership latency on a --events history (default 1M)."""
    from bench_microbatch import run_benchmark

    return [Row(*r) for r in run_benchmark(args.events or 1_000_000, run_child)]


@register("profiles")
def write_report(name: str, result: dict) -> None:
    """The whole result of a benchmark as reports/NAME (JSON), beside the summary table."""
    import json

    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / "reports" / name).write_text(json.dumps(result, indent=2))


def bench_profiles(args: argparse.Namespace) -> list[Row]:
    """Full dbt build on --events events (default 10M), profile models vs a hand-written query,
    and an incremental build after 1% new events: bench/bench_profiles.py."""

    from bench_profiles import run

    result = run(args.events or 10_000_000)
    write_report("bench_profiles.json", result)
    events, peak = result["events"], result["peak_child_rss_mb"]
    return [
        Row("profiles: full build", events, result["full_build_seconds"], peak),
        Row(
            f"profile models ({result['profile_to_hand_ratio']}x hand query)",
            events,
            result["profile_models_seconds"],
            peak,
        ),
        Row("hand-written query", events, result["hand_query_seconds"], peak),
        Row(
            f"everything build +1% ({result['incremental_to_full_ratio']:.0%} of full)",
            result["increment_events"],
            result["incremental_build_seconds"],
            peak,
        ),
        Row(
            f"hourly selection +1% ({result['hourly_to_full_ratio']:.0%} of full)",
            result["increment_events"],
            result["hourly_build_seconds"],
            peak,
        ),
    ]


@register("staging")
def bench_staging(args: argparse.Namespace) -> list[Row]:
    """Raw load + staging of --events events (default 1M) against DuckDB's read_json of the same
    files, side by side: bench/bench_staging.py (goal: at most 1.5x)."""

    from bench_staging import run

    result = run(args.events or 1_000_000)
    write_report("bench_staging.json", result)
    events, peak = result["events"], result["peak_rss_mb"]
    return [
        Row("read_json (DuckDB)", events, result["read_json_seconds"], peak),
        Row(
            f"raw load + staging, dbt ({result['dbt_ratio_to_read_json']}x)",
            events,
            result["dbt_raw_load_plus_staging_seconds"],
            peak,
        ),
        Row(
            f"same without dbt ({result['ratio_to_read_json']}x, "
            f"CPU {result['cpu_ratio_to_read_json']}x)",
            events,
            result["raw_load_seconds"] + result["staging_sql_seconds"],
            peak,
        ),
    ]


@register("collector")
def bench_collector(args: argparse.Namespace) -> list[Row]:
    """Collector on loopback: 5,000 events/s open loop, then the sustained maximum (closed loop,
    --events at most, default 300k): bench/bench_collector.py."""
    from bench_collector import run_benchmark

    return [Row(*r) for r in run_benchmark(args.events or 300_000, run_child)]


@register("api")
def bench_api(args: argparse.Namespace) -> list[Row]:
    """Profile API latency at 200 requests/s on --events published users (default 100k), and
    the SDK -> collector -> micro-batch -> publish -> API latency: bench/bench_api.py."""
    from bench_api import run_benchmark

    rows = run_benchmark("latency", args.events or 100_000, run_child)
    rows += run_benchmark("e2e", 20_000, run_child)
    return [Row(*r) for r in rows]


def print_table(rows: list[Row]) -> None:
    header = f"{'benchmark':<42} {'events':>12} {'seconds':>9} {'events/s':>12} {'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.benchmark:<42} {r.events:>12,} {r.seconds:>9.1f} {r.events_per_s:>12,.0f} "
            f"{r.peak_mb:>9.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(REGISTRY)}")
    parser.add_argument("--events", type=int, default=None, help="workload size")
    parser.add_argument("--workers", type=int, default=None, help="worker processes")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    rows: list[Row] = []
    for name in args.names or list(REGISTRY):
        rows.extend(REGISTRY[name](args))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
