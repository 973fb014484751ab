"""Segment evaluation benchmark: the shipped segments (models/marts/segments/segments.yml) on N
generated events.

A full `dbt build` of everything up to the profiles prepares the warehouse (not timed); then
`dbt run --select fct_segment_membership+` (membership, catalogue, history, events, overlap,
bias audit, activation) is timed, in a child process, together with dbt's own execution time of
fct_segment_membership (the rule evaluation itself).

    python bench/bench_segments.py --events 10000000
    python bench/bench_segments.py --events 10000000 --workdir /tmp/bench-10m   # keep, reuse
    python bench/run.py segments --events 10000000

With --workdir the prepared warehouse is kept there and reused by the next run with the same
folder (preparing 10M events takes several minutes; the timed step is then repeatable).

Before and after a change of the compiler: --before TREE (a checkout of the project before it,
e.g. `git archive <commit> macros models dbt_project.yml | tar -x -C TREE`) times the rule SQL of
both compilers directly in DuckDB on the prepared warehouse, best of --runs, for the segments the
old tree ships (both compilers, same definitions) and for every segment shipped now:

    python bench/bench_segments.py --events 10000000 --workdir /tmp/bench-10m --before /tmp/old
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import yaml

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.segments import preview, render

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


def prepared(root: Path, events: int) -> Warehouse:
    """The warehouse prepared in `root` by an earlier run with the same --events, else a new one."""
    done = root / "prepared.json"
    if done.is_file() and json.loads(done.read_text())["events"] == events:
        as_of = json.loads((root / "landing" / "manifest.json").read_text())["as_of"]
        log.info("reusing the warehouse prepared in %s", root)
        return Warehouse(root / "warehouse.duckdb", root / "landing", root / "target", as_of)
    warehouse = prepare(root, events)
    done.write_text(json.dumps({"events": events}))
    return warehouse


def run_benchmark(
    events: int, timer: Timer, workdir: Path | None = None
) -> list[tuple[str, int, float, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        root = workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        warehouse = prepared(root, events)
        seconds, peak = timer(evaluate_command(warehouse))
        rule_seconds = model_seconds(root / "target", "fct_segment_membership")
        manifest = json.loads((warehouse.landing_path / "manifest.json").read_text())
        lines = int(manifest["lines_total"])
    return [
        ("segments (dbt run)", lines, seconds, peak),
        ("segments (rules)", lines, rule_seconds, peak),
    ]


def _shipped(root: Path) -> list[dict[str, Any]]:
    """The segments shipped in a checkout (meta of dim_segments before issue 14, of
    fct_segment_membership after)."""
    document = yaml.safe_load((root / "models" / "marts" / "segments" / "segments.yml").read_text())
    for model in document.get("models") or []:
        segments = ((model.get("config") or {}).get("meta") or {}).get("segments")
        if segments:
            return list(segments)
    raise SystemExit(f"no segments in {root}")


def _best_seconds(
    con: duckdb.DuckDBPyConnection, sql: str, runs: int, table: str
) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        con.execute(f"create or replace temp table {table} as {sql}")
        times.append(time.perf_counter() - started)
        (rows,) = con.execute(f"select count(*) from {table}").fetchone()
    return min(times), int(rows)


def compare_compilers(
    warehouse: Warehouse, before: Path, runs: int = 3
) -> list[tuple[str, int, float, int]]:
    """(what, segments, best seconds, membership rows) for the old compiler on its shipped
    segments, the new one on the same definitions, and the new one on every shipped segment.
    The SQL is rendered from each tree's own macros (personalization.segments.render)."""
    old_model = before / "models" / "intermediate" / "segments" / "int_segment_membership.sql"
    old_segments = _shipped(before)
    new_segments = _shipped(render.PROJECT_ROOT)
    as_of = {"as_of": warehouse.as_of, "segment_clusters_enabled": False}
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        relation = preview.relation_resolver(con, warehouse.db_path)
        old = render.Renderer(relation, before, old_model)
        new = render.Renderer(relation)
        cases = [
            ("before (int_segment_membership)", old_segments, old),
            ("after (fct_segment_membership)", old_segments, new),
            ("after, every shipped segment", new_segments, new),
        ]
        results = []
        for index, (what, segments, renderer) in enumerate(cases):
            sql = renderer.render(segments, as_of)
            seconds, rows = _best_seconds(con, sql, runs, f"timed_{index}")
            log.info("%s: %d segments, %.2f s (best of %d), %d rows",
                     what, len(segments), seconds, runs, rows)  # fmt: skip
            results.append((what, len(segments), seconds, rows))
        # both compilers, same definitions: the same memberships, both ways
        key = "segment_name, canonical_user_id, status"
        (differ,) = con.execute(
            f"select count(*) from ((select {key} from timed_0 except select {key} from timed_1)"
            f" union all (select {key} from timed_1 except select {key} from timed_0))"
        ).fetchone()
        log.info("memberships differing between the compilers: %d", differ)
        if differ:
            raise SystemExit("the compilers disagree on the same definitions")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, help="keep the prepared warehouse here, reuse it")
    parser.add_argument("--before", type=Path, help="a checkout before a compiler change")
    parser.add_argument("--runs", type=int, default=3, help="with --before: best of this many")
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
    if args.before is not None:
        if args.workdir is None:
            parser.error("--before needs --workdir (the prepared warehouse)")
        args.workdir.mkdir(parents=True, exist_ok=True)
        compare_compilers(prepared(args.workdir, args.events), args.before, args.runs)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import run_child

    for name, lines, seconds, peak in run_benchmark(args.events, run_child, args.workdir):
        log.info("%s: %d events, %.1f s, %.0f events/s, peak %.0f MB",
                 name, lines, seconds, lines / seconds, peak)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
