"""Staging benchmark: our raw load + staging against DuckDB's own `read_json` of the same files.

    python bench/bench_staging.py --events 1000000

On N generated events (gzipped JSON lines, as the collector and the generator write them), in one
process and side by side:

1. DuckDB's `read_json` of the landing files into a table (the floor: one typed parse per line);
2. the project's raw load and staging as dbt runs them (`raw_landing_events` ->
   `stg_landing__events_checked` and the views over it), timed per model from dbt's results.

Prints the ratio (2) / (1) as dbt runs the models (its per-model times), and again for the same
two steps run in this process without dbt around them (the raw load's reader into a table, the
staging model's compiled SQL), in wall and in CPU seconds, the medians of --repeat side-by-side
runs (default 3; each run's CPU ratio is printed too): on a shared machine the CPU ratio is the
steadier one. Also the load average before and after, and with --profile the operators of
the staging SQL that take the most time (EXPLAIN ANALYZE) and the raw load's CPU step by step
(inflating, splitting lines into Arrow, record batches, DuckDB storing them).
The goal (issue 16): a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.duckdb_plugin import Plugin
from personalization.privacy import resolve_key
from personalization.raw_load import (
    load_files,
    plan_load,
    raw_blocks,
    read_line_arrays,
    scan_landing,
)
from personalization.table_storage import STORAGE_VERSION, create_table

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


class Clock:
    """Wall and CPU seconds of a block: CPU of this process (DuckDB's threads included) and of
    its finished children. On a shared machine the CPU time is the steadier measure."""

    def __enter__(self) -> Clock:
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = _cpu_seconds() - self._cpu


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_read_json(landing: Path) -> tuple[Clock, int]:
    """DuckDB's read_json of every landing file into a table: (clock, rows)."""
    with duckdb.connect() as con:
        with Clock() as clock:
            con.execute(
                "create table events as select * from read_json(?, format = "
                "'newline_delimited', ignore_errors = true)",
                [str(landing / "**" / "*.jsonl.gz")],
            )
        rows = con.execute("select count(*) from events").fetchone()[0]
    return clock, rows


def raw_compression(warehouse: Warehouse) -> dict[str, str]:
    """raw_landing_events' column_compression config, as dbt parsed it (target/manifest.json)."""
    nodes = json.loads((warehouse.target_path / "manifest.json").read_text())["nodes"]
    return nodes["model.personalization.raw_landing_events"]["config"]["column_compression"]


def time_in_process(warehouse: Warehouse, work: Path) -> dict[str, Clock]:
    """The same two steps without dbt around them, in this process: the raw load's reader into a
    table of a new database file, and the staging model's compiled SQL (a full build) into a
    table of the built warehouse."""
    listing = scan_landing(warehouse.landing_path)
    to_read, _ = plan_load(warehouse.landing_path, listing.candidates, {})
    scratch = work / "raw_load.duckdb"
    scratch.unlink(missing_ok=True)
    with _new_database(scratch) as con, Clock() as raw_clock:
        _store_raw_lines(
            con,
            load_files(warehouse.landing_path, to_read, datetime(2026, 1, 1)),
            raw_compression(warehouse),
        )
    scratch.unlink(missing_ok=True)
    compiled = next(
        (warehouse.target_path / "compiled").rglob("stg_landing__events_checked.sql")
    ).read_text()
    with duckdb.connect(str(warehouse.db_path)) as con:
        _register_project_functions(con)
        with Clock() as staging_clock:
            con.execute(f"create temp table checked as {compiled}")
    return {"raw_load": raw_clock, "staging": staging_clock}


def _new_database(path: Path) -> duckdb.DuckDBPyConnection:
    """A database file in the storage format the dbt plugin creates warehouses in."""
    return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})


def _store_raw_lines(con: duckdb.DuckDBPyConnection, stream, compression: dict) -> None:
    """As dbt runs the raw load: the stream straight into the model's table, its raw text with
    the model's compression (raw_compression), checkpointed."""
    create_table(con, stream, "raw_landing_events", con.execute(
        "select current_database()").fetchone()[0], compression)  # fmt: skip
    con.execute("checkpoint")


def _register_project_functions(con: duckdb.DuckDBPyConnection) -> None:
    """pseudonymise and scrub_pii, as the dbt-duckdb plugin registers them (development key)."""
    plugin = Plugin.__new__(Plugin)
    plugin.key = resolve_key(require_key=False)
    plugin.configure_connection(con)
    plugin.configure_cursor(con)


def time_staging(warehouse: Warehouse) -> tuple[Clock, dict[str, float]]:
    """dbt run of the raw load and staging (seeds built first, not timed): (clock, per model)."""
    run_dbt(["seed"], warehouse)
    # the staging model's small parents (suppression list, tracking plan) are built too, and not
    # counted in the per-model sum
    with Clock() as clock:
        run_dbt(["run", "--select", "+stg_landing__events_checked", *STAGING_MODELS], warehouse)
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    return clock, {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}


def profile_raw_load(landing: Path, work: Path, compression: dict) -> dict[str, float]:
    """Where the raw load's CPU goes, each step run over every landing file and timed with the
    steps before it (subtract the previous figure): inflating the gzip files; plus splitting the
    lines into Arrow arrays (UTF-8 checked); plus the record batches (file columns, line
    numbers, read ahead by a thread); plus DuckDB storing them into a table of a database file
    (compressed on write) with a checkpoint, as dbt-duckdb stores the Python model's stream."""
    listing = scan_landing(landing)
    to_read, _ = plan_load(landing, listing.candidates, {})
    paths = [landing / item.file.path for item in to_read]
    parts: dict[str, float] = {}
    with Clock() as clock:
        for path in paths:
            for _ in raw_blocks(path):
                pass
    parts["inflate_cpu_seconds"] = round(clock.cpu, 2)
    with Clock() as clock:
        for path in paths:
            for _ in read_line_arrays(path):
                pass
    parts["inflate_and_split_lines_cpu_seconds"] = round(clock.cpu, 2)
    with Clock() as clock:
        for _ in load_files(landing, to_read, datetime(2026, 1, 1)):
            pass
    parts["record_batches_cpu_seconds"] = round(clock.cpu, 2)
    scratch = work / "raw_parts.duckdb"
    scratch.unlink(missing_ok=True)
    with _new_database(scratch) as con, Clock() as clock:
        _store_raw_lines(con, load_files(landing, to_read, datetime(2026, 1, 1)), compression)
    parts["batches_into_stored_table_cpu_seconds"] = round(clock.cpu, 2)
    scratch.unlink(missing_ok=True)
    return parts


def profile_staging(warehouse: Warehouse, work: Path, top: int = 10) -> list[str]:
    """The operators of stg_landing__events_checked's compiled SQL (a full build) that take the
    most time, from DuckDB's JSON profile: seconds, operator, what it computes (cut short)."""
    compiled = next(
        (warehouse.target_path / "compiled").rglob("stg_landing__events_checked.sql")
    ).read_text()
    output = work / "staging_profile.json"
    with duckdb.connect(str(warehouse.db_path)) as con:
        _register_project_functions(con)
        con.execute("pragma enable_profiling = 'json'")
        con.execute(f"pragma profiling_output = '{output}'")
        con.execute(f"create temp table profiled as {compiled}")
        con.execute("pragma disable_profiling")
    found: list[tuple[float, str]] = []

    def walk(node: dict) -> None:
        info = json.dumps(node.get("extra_info") or {})[:160]
        found.append((node.get("operator_timing") or 0.0, f"{node.get('operator_name')} {info}"))
        for child in node.get("children") or []:
            walk(child)

    walk(json.loads(output.read_text()))
    found.sort(key=lambda item: -item[0])
    return [f"{seconds:.2f}s {what}" for seconds, what in found[:top]]


def run(events: int, keep: Path | None = None, profile: bool = False, repeat: int = 3) -> dict:
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
    dbt_clock, per_model = time_staging(warehouse)
    # read_json and ours side by side, `repeat` times: medians (a shared machine's neighbours
    # move single runs by a third), and each run's CPU ratio for the spread
    runs = []
    for _ in range(repeat):
        read_json_clock, read_json_rows = time_read_json(landing)
        runs.append({"read_json": read_json_clock, **time_in_process(warehouse, work)})
    load_after = os.getloadavg()

    def median(step: str, measure: str) -> float:
        return statistics.median(getattr(one[step], measure) for one in runs)

    read_json = Measured(median("read_json", "wall"), median("read_json", "cpu"))
    in_process = {
        step: Measured(median(step, "wall"), median(step, "cpu"))
        for step in ("raw_load", "staging")
    }
    staging_seconds = sum(per_model.get(name, 0.0) for name in STAGING_MODELS)
    ours_wall = in_process["raw_load"].wall + in_process["staging"].wall
    ours_cpu = in_process["raw_load"].cpu + in_process["staging"].cpu
    with duckdb.connect(str(db_path), read_only=True) as con:
        raw_rows = con.execute("select count(*) from raw.raw_landing_events").fetchone()[0]
        statuses = dict(
            con.execute(
                "select status, count(*) from staging.stg_landing__events_checked group by 1"
            ).fetchall()
        )
    result = {
        "events": manifest["lines_total"],
        "read_json_seconds": round(read_json.wall, 2),
        "read_json_cpu_seconds": round(read_json.cpu, 2),
        "read_json_rows": read_json_rows,
        "dbt_raw_load_seconds": round(per_model.get("raw_landing_events", 0.0), 2),
        "dbt_staging_model_seconds": round(per_model.get("stg_landing__events_checked", 0.0), 2),
        "dbt_raw_load_plus_staging_seconds": round(staging_seconds, 2),
        "dbt_ratio_to_read_json": round(staging_seconds / read_json.wall, 2),
        "dbt_run_wall_seconds": round(dbt_clock.wall, 2),
        "dbt_run_cpu_seconds": round(dbt_clock.cpu, 2),
        "raw_load_seconds": round(in_process["raw_load"].wall, 2),
        "raw_load_cpu_seconds": round(in_process["raw_load"].cpu, 2),
        "staging_sql_seconds": round(in_process["staging"].wall, 2),
        "staging_sql_cpu_seconds": round(in_process["staging"].cpu, 2),
        "ratio_to_read_json": round(ours_wall / read_json.wall, 2),
        "cpu_ratio_to_read_json": round(ours_cpu / read_json.cpu, 2),
        "repeats": repeat,
        "cpu_ratio_per_repeat": [
            round((one["raw_load"].cpu + one["staging"].cpu) / one["read_json"].cpu, 2)
            for one in runs
        ],
        "goal_ratio": GOAL_RATIO,
        "raw_rows": raw_rows,
        "statuses": statuses,
        "per_model_seconds": {k: round(v, 2) for k, v in per_model.items()},
        "peak_rss_mb": round(
            max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            )
            / 1024
        ),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    if profile:
        result["raw_load_parts"] = profile_raw_load(landing, work, raw_compression(warehouse))
        result["staging_profile"] = profile_staging(warehouse, work)
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (reused)")
    parser.add_argument("--profile", action="store_true", help="EXPLAIN ANALYZE the staging")
    parser.add_argument(
        "--repeat", type=int, default=3, help="side-by-side runs (medians are reported)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("personalization.raw_load").setLevel(logging.WARNING)  # a line per file
    result = run(args.events, args.keep, args.profile, args.repeat)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
