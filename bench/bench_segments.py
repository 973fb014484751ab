"""Segment evaluation benchmark: the shipped segments (models/marts/segments/segments.yml) on N
generated events.

A full `dbt build` of everything up to the profiles prepares the warehouse (not timed); then
`dbt run --select fct_segment_membership+` (membership, catalogue, history, events, overlap,
bias audit, activation) is timed, in a child process, together with dbt's own execution time of
fct_segment_membership (the rule evaluation itself).

    python bench/bench_segments.py --events 10000000
    python bench/run.py segments --events 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt

log = logging.getLogger(__name__)

# no clustering in the timed part (benchmarked on its own): segments without the cluster edge
DBT_VARS = {"segment_clusters_enabled": False}
Timer = Callable[[list[str]], tuple[float, float]]


def prepare(root: Path, events: int) -> Warehouse:
    """Generate events (users = events / 100, 30 days) and build everything the segments read."""
    landing = root / "landing"
    code = cli.main(
        ["generate", "--quiet", f"--events={events}", f"--users={max(1, events // 100)}",
         "--days=30", f"--out={landing}"]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    as_of = json.loads((landing / "manifest.json").read_text())["as_of"]
    warehouse = Warehouse(root / "warehouse.duckdb", landing, root / "target", as_of)
    run_dbt(["seed"], warehouse)
    run_dbt(["run", "--select", "+dim_user_profiles", "+int_user_consent"], warehouse, DBT_VARS)
    return warehouse


def evaluate_command(warehouse: Warehouse) -> list[str]:
    """The timed step, as a child-process command line."""
    return [
        sys.executable, str(Path(__file__).resolve()), "--evaluate",
        "--db", str(warehouse.db_path), "--landing", str(warehouse.landing_path),
        "--target", str(warehouse.target_path), "--as-of", str(warehouse.as_of),
    ]  # fmt: skip


def model_seconds(target: Path, model: str) -> float:
    results = json.loads((target / "run_results.json").read_text())["results"]
    return next(r["execution_time"] for r in results if r["unique_id"].endswith(f".{model}"))


def run_benchmark(events: int, timer: Timer) -> list[tuple[str, int, float, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        warehouse = prepare(Path(tmp), events)
        seconds, peak = timer(evaluate_command(warehouse))
        rule_seconds = model_seconds(Path(tmp) / "target", "fct_segment_membership")
        manifest = json.loads((warehouse.landing_path / "manifest.json").read_text())
        lines = int(manifest["lines_total"])
    return [
        ("segments (dbt run)", lines, seconds, peak),
        ("segments (rules)", lines, rule_seconds, peak),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--evaluate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--landing", type=Path)
    parser.add_argument("--target", type=Path)
    parser.add_argument("--as-of")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.evaluate:
        warehouse = Warehouse(args.db, args.landing, args.target, args.as_of)
        run_dbt(["run", "--select", "fct_segment_membership+"], warehouse, DBT_VARS)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import run_child

    for name, lines, seconds, peak in run_benchmark(args.events, run_child):
        log.info("%s: %d events, %.1f s, %.0f events/s, peak %.0f MB",
                 name, lines, seconds, lines / seconds, peak)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
