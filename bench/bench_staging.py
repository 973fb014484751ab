"""Staging benchmark: our raw load + staging against DuckDB's own `read_json` of the same files.

    python bench/bench_staging.py --events 1000000

On N generated events (gzipped JSON lines, as the collector and the generator write them), in one
process and side by side:

1. DuckDB's `read_json` of the landing files into a table (the floor: one typed parse per line);
2. the project's raw load and staging as dbt runs them (`raw_landing_events` ->
   `stg_landing__events_checked` and the views over it), timed per model from dbt's results.

Prints the ratio (2) / (1), the load average before and after, and an EXPLAIN ANALYZE of the
staging model's compiled SQL (where its time goes) when --profile is given. The goal (issue 16):
a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.duckdb_plugin import Plugin
from personalization.privacy import resolve_key

log = logging.getLogger(__name__)

# the models of the raw load and staging, in build order (the views cost nothing to create)
STAGING_MODELS = (
    "raw_landing_events",
    "raw_landing_files",
    "stg_landing__events_checked",
    "stg_events",
    "quarantined_events",
    "quarantined_traits",
    "stg_duplicate_events",
)
GOAL_RATIO = 1.5


def _generate(out: Path, events: int, seed: int = 1) -> dict:
    code = cli.main(
        ["generate", "--quiet", f"--events={events}", f"--users={max(1, events // 100)}",
         "--days=30", f"--seed={seed}", "--start=2026-01-01", f"--out={out}"]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    return json.loads((out / "manifest.json").read_text())


def time_read_json(landing: Path, threads: int | None = None) -> tuple[float, int]:
    """DuckDB's read_json of every landing file into a table: (seconds, rows)."""
    with duckdb.connect() as con:
        if threads:
            con.execute(f"set threads = {threads}")
        started = time.perf_counter()
        con.execute(
            "create table events as select * from read_json(?, format = 'newline_delimited', "
            "ignore_errors = true)",
            [str(landing / "**" / "*.jsonl.gz")],
        )
        seconds = time.perf_counter() - started
        rows = con.execute("select count(*) from events").fetchone()[0]
    return seconds, rows


def time_staging(warehouse: Warehouse) -> tuple[float, dict[str, float]]:
    """dbt run of the raw load and staging (seeds built first): (wall seconds, per model)."""
    run_dbt(["seed"], warehouse)
    started = time.perf_counter()
    # the staging model's small parents (suppression list, tracking plan) are built too, and not
    # counted
    run_dbt(["run", "--select", "+stg_landing__events_checked", *STAGING_MODELS], warehouse)
    seconds = time.perf_counter() - started
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    return seconds, {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}


def explain_staging(warehouse: Warehouse) -> str:
    """EXPLAIN ANALYZE of stg_landing__events_checked's compiled SQL (a full refresh) against
    the built warehouse: the operators and their time."""
    compiled = next(
        (warehouse.target_path / "compiled").rglob("stg_landing__events_checked.sql")
    ).read_text()
    with duckdb.connect(str(warehouse.db_path)) as con:
        plugin = Plugin.__new__(Plugin)
        plugin.key = resolve_key(require_key=False)  # the development key, as the build used
        plugin.configure_connection(con)
        plugin.configure_cursor(con)
        rows = con.execute(f"explain analyze {compiled}").fetchall()
    return rows[0][1]


def summarise_profile(plan: str, top: int = 12) -> list[str]:
    """The operators of an EXPLAIN ANALYZE text with the most time, slowest first."""
    lines = plan.splitlines()
    found: list[tuple[float, str]] = []
    for index, line in enumerate(lines):
        match = re.search(r"\(([0-9.]+)s\)", line)
        if match:
            name = next(
                (
                    re.sub(r"[│┌┐└┘─ ]+", " ", lines[back]).strip()
                    for back in range(index - 1, max(index - 40, 0), -1)
                    if re.search(r"[A-Z_]{4,}", lines[back]) and "─" not in lines[back]
                ),
                "?",
            )
            found.append((float(match.group(1)), name))
    found.sort(reverse=True)
    return [f"{seconds:.2f}s {name}" for seconds, name in found[:top]]


def run(events: int, keep: Path | None = None, profile: bool = False) -> dict:
    work = Path(keep or tempfile.mkdtemp(prefix="bench-staging-"))
    generated = work / "generated"
    if not (generated / "manifest.json").exists():
        manifest = _generate(generated, events)
    else:
        manifest = json.loads((generated / "manifest.json").read_text())
    landing = work / "landing"
    if landing.exists():
        shutil.rmtree(landing)
    for day in sorted(generated.glob("dt=*")):
        shutil.copytree(day, landing / day.name)
    target = work / "target"
    db_path = work / "warehouse.duckdb"
    for stale in (db_path, db_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    warehouse = Warehouse(db_path, landing, target, manifest["as_of"])

    load_before = os.getloadavg()
    read_json_seconds, read_json_rows = time_read_json(landing)
    staging_wall, per_model = time_staging(warehouse)
    load_after = os.getloadavg()
    staging_seconds = sum(per_model.get(name, 0.0) for name in STAGING_MODELS)
    with duckdb.connect(str(db_path), read_only=True) as con:
        raw_rows = con.execute("select count(*) from raw.raw_landing_events").fetchone()[0]
        statuses = dict(
            con.execute(
                "select status, count(*) from staging.stg_landing__events_checked group by 1"
            ).fetchall()
        )
    result = {
        "events": manifest["lines_total"],
        "read_json_seconds": round(read_json_seconds, 2),
        "read_json_rows": read_json_rows,
        "raw_load_seconds": round(per_model.get("raw_landing_events", 0.0), 2),
        "staging_model_seconds": round(per_model.get("stg_landing__events_checked", 0.0), 2),
        "raw_load_plus_staging_seconds": round(staging_seconds, 2),
        "dbt_run_wall_seconds": round(staging_wall, 2),
        "ratio_to_read_json": round(staging_seconds / read_json_seconds, 2),
        "goal_ratio": GOAL_RATIO,
        "raw_rows": raw_rows,
        "statuses": statuses,
        "per_model_seconds": {k: round(v, 2) for k, v in per_model.items()},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    if profile:
        result["staging_profile"] = summarise_profile(explain_staging(warehouse))
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (reused)")
    parser.add_argument("--profile", action="store_true", help="EXPLAIN ANALYZE the staging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(args.events, args.keep, args.profile), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
