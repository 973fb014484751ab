"""Profile build benchmark: a full `dbt build` on N generated events, the profile models against
one hand-written DuckDB query computing the same core columns, and an incremental build after 1%
new events, twice from the same state: everything (`dbt build`, as the daily job) and the hourly
selection (`dbt build --selector hourly`, what the hourly schedule's job runs).

The profile models are timed twice: as the full build ran them (two dbt threads, beside other
models) and alone (`dbt run --full-refresh --threads 1` of the profile path, each model with
DuckDB's threads to itself, as the hand query has them), --repeat times each side by side with
the hand query; the medians give the ratio.

The touched set takes the lines loaded after the previous run's load high-water mark, with no
lookback (docs/architecture.md, "No lookback on the touched set"); `--lookback-hours` (0 unless
given) only widens `int_identity_activity_daily`'s (identity, day) pairs. Each incremental build
reports how many users it touched and why, and CPU seconds next to wall seconds.

    python bench/bench_profiles.py --events 10000000

`--crossover DIR` (a folder kept by `--keep`) measures instead the adaptive switch's crossover
(var touched_full_rebuild_share, docs/architecture.md "Touched users"): for each share, one new
line for that share of the users lands, and the hourly selection runs twice from the same state,
on the touched path (share 1) and on the plain full path (share 0); CPU seconds of the dbt
processes are the comparable figure on a shared machine.

    python bench/bench_profiles.py --crossover /tmp/bench --shares 0.01 0.1 0.3 0.6
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
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.common, run as a script

from bench.common import generate, touched_users  # noqa: E402
from personalization.dbt_runner import Warehouse, run_dbt  # noqa: E402

log = logging.getLogger(__name__)

# the models between stg_events and dim_user_profiles that the hand-written query replaces
# (int_user_consent: the hand query reads its decision, so its time counts on the model side)
PROFILE_PATH_MODELS = (
    "restricted_identity_keys",
    "int_identity_links",
    "int_identity_map",
    "int_events_stitched",
    "int_user_consent",
    "int_identity_activity_daily",
    "fct_user_activity_daily",
    "int_user_behaviour_totals",
    "int_user_scores",
    "dim_user_profiles",
)
# what the hourly schedule's job runs (selectors.yml: the microbatch selection with whole-table
# key tests, no folded guards, no unit tests)
HOURLY = ["build", "--selector", "hourly"]
# CPU seconds (user + system) of each timed dbt process, in order: on a shared machine the
# comparable figure
CPU_SECONDS: list[float] = []

HAND_WRITTEN = """
with identity_map as (
    select anonymous_id, any_value(user_id) as user_id
    from (
        select anonymous_id, user_id from (
            select coalesce(case when event_type = 'alias' then previous_id end, anonymous_id)
                as anonymous_id, user_id
            from staging.stg_events
            where user_id is not null and coalesce(previous_id, anonymous_id) is not null
        ) where anonymous_id != user_id
        group by all
    )
    group by anonymous_id
    having count(*) <= 1
)
select
    k.user_key as canonical_user_id,
    min(e.event_at) as first_seen_at,
    max(e.event_at) as last_seen_at,
    count(*) as events,
    count(*) filter (where e.event_type = 'page') as page_views,
    count(*) filter (where e.event_name = 'Product Viewed') as product_views,
    count(*) filter (where e.event_name = 'Product Added') as cart_adds,
    count(*) filter (where e.event_name = 'Order Completed') as orders,
    coalesce(sum(try_cast(json_extract_string(e.properties, '$.revenue') as decimal(18, 2)))
        filter (where e.event_name = 'Order Completed'), 0) as revenue
from staging.stg_events as e
left join identity_map as m on e.anonymous_id = m.anonymous_id
-- the marts key a user by the pseudonym of the raw id (the restricted key table)
left join restricted.restricted_identity_keys as k
    on coalesce(e.user_id, m.user_id, e.anonymous_id) = k.raw_identity
group by 1
"""

# the marts' rule (analytics_consent_policy 'exclude', the default): a user who refused analytics
# is not profiled. The consent order itself (server and client times, defaults) is taken from
# int_user_consent's decision rather than written again here.
HAND_PROFILED = """
select hand_all.*
from hand_all
inner join intermediate.int_user_consent as consent
    on hand_all.canonical_user_id = consent.canonical_user_id
where consent.is_profiling_allowed
"""

CORE = (
    "canonical_user_id, first_seen_at, last_seen_at, events, page_views, product_views, "
    "cart_adds, orders, revenue"
)


def _timed_build(
    warehouse: Warehouse, command: list[str] | None = None, dbt_vars: dict | None = None
) -> tuple[float, dict[str, float]]:
    started, cpu = time.perf_counter(), _cpu_seconds()
    run_dbt(command or ["build"], warehouse, dbt_vars)
    seconds = time.perf_counter() - started
    CPU_SECONDS.append(_cpu_seconds() - cpu)
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}
    return seconds, per_model


def _slowest(per_model: dict[str, float], count: int) -> list:
    return sorted(per_model.items(), key=lambda kv: -kv[1])[:count]


def _time_hand(db: Path) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        started = time.perf_counter()
        con.sql(f"create temp table hand_all as {HAND_WRITTEN}")
        con.sql(f"create temp table hand as {HAND_PROFILED}")
        return time.perf_counter() - started


def _time_view_read(db: Path) -> float:
    """dim_user_profiles is a view: the joins it leaves to its readers count on the model side,
    timed as one reader that writes every profile out."""
    with duckdb.connect(str(db), read_only=True) as con:
        started = time.perf_counter()
        con.sql("create temp table profiles_read as select * from marts.dim_user_profiles")
        return time.perf_counter() - started


def _time_profile_path_alone(warehouse: Warehouse) -> float:
    """The profile path rebuilt on its own (the same tables the full build made), one model at
    a time: the sum of dbt's model times and the view's read."""
    _, per_model = _timed_build(
        warehouse, ["run", "--full-refresh", "--threads", "1", "--select", *PROFILE_PATH_MODELS]
    )
    CPU_SECONDS.pop()  # not one of the builds the CPU figures report
    path = sum(per_model.get(name, 0.0) for name in PROFILE_PATH_MODELS)
    return path + _time_view_read(warehouse.db_path)


def _compare_alone(warehouse: Warehouse, repeat: int) -> dict:
    """The profile path alone and the hand query, side by side, `repeat` times each."""
    path, hand = [], []
    for _ in range(repeat):
        path.append(_time_profile_path_alone(warehouse))
        hand.append(_time_hand(warehouse.db_path))
    return {
        "profile_models_alone_seconds": [round(seconds, 2) for seconds in path],
        "hand_query_alone_seconds": [round(seconds, 2) for seconds in hand],
        "profile_alone_to_hand_ratio": round(statistics.median(path) / statistics.median(hand), 2),
    }


def _compare_hand(db: Path) -> dict:
    """The hand-written query timed against the marts, row for row, with and without the consent
    rule: the rows the rule removes must be exactly the users it leaves unprofiled."""
    core_diff = (
        "select count(*) from ((select {core} from {a} except select {core} from {b}) union all "
        "(select {core} from {b} except select {core} from {a}))"
    )
    hand_seconds = _time_hand(db)
    view_read_seconds = _time_view_read(db)
    with duckdb.connect(str(db), read_only=True) as con:
        con.sql(f"create temp table hand_all as {HAND_WRITTEN}")
        con.sql(f"create temp table hand as {HAND_PROFILED}")
        profiles_table = "marts.dim_user_profiles"
        return {
            "hand_seconds": hand_seconds,
            "view_read_seconds": round(view_read_seconds, 3),
            "profiles": con.sql(f"select count(*) from {profiles_table}").fetchone()[0],
            "hand_rows_without_consent_rule": len(con.sql("select 1 from hand_all").fetchall()),
            "unprofiled_by_consent_policy": con.sql(
                "select count(*) from hand_all inner join intermediate.int_user_consent as c "
                "on hand_all.canonical_user_id = c.canonical_user_id "
                "where not c.is_profiling_allowed"
            ).fetchone()[0],
            "core_rows_disagreeing": con.sql(
                core_diff.format(core=CORE, a="hand", b=profiles_table)
            ).fetchone()[0],
            "core_rows_disagreeing_without_consent_rule": con.sql(
                core_diff.format(core=CORE, a="hand_all", b=profiles_table)
            ).fetchone()[0],
        }


def run(
    events: int, days: int = 30, keep: Path | None = None, lookback_hours: int = 0, repeat: int = 3
) -> dict:
    work = Path(keep or tempfile.mkdtemp(prefix="bench-profiles-"))
    CPU_SECONDS.clear()
    history = generate(work / "history", events, max(1, events // 100), days, 1, "2026-01-01")
    increment_events = max(100, events // 100)
    increment = generate(
        work / "increment", increment_events, max(1, increment_events // 20), 1, 2, "2026-01-31"
    )
    landing = work / "landing"
    for day in sorted((work / "history").glob("dt=*")):
        shutil.copytree(day, landing / day.name)
    warehouse = Warehouse(work / "warehouse.duckdb", landing, work / "target", increment["as_of"])
    full_seconds, per_model = _timed_build(warehouse)
    compared = _compare_hand(warehouse.db_path)
    profile_seconds = sum(per_model.get(name, 0.0) for name in PROFILE_PATH_MODELS)
    profile_seconds += compared["view_read_seconds"]
    alone = _compare_alone(warehouse, repeat)

    # the hourly selection starts from the same state: a copy of the warehouse
    hourly = Warehouse(work / "hourly.duckdb", landing, work / "target-hourly", increment["as_of"])
    shutil.copyfile(warehouse.db_path, hourly.db_path)
    for day in sorted((work / "increment").glob("dt=*")):
        shutil.copytree(day, landing / f"{day.name}-increment")
    tightest = {"lookback_hours": lookback_hours}
    incremental_seconds, incremental_models = _timed_build(warehouse, dbt_vars=tightest)
    incremental_touched = touched_users(warehouse.db_path)
    hourly_seconds, hourly_models = _timed_build(hourly, HOURLY, tightest)
    hourly_touched = touched_users(hourly.db_path)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    hand_seconds = compared.pop("hand_seconds")
    result = {
        "events": history["lines_total"],
        "increment_events": increment["lines_total"],
        "lookback_hours": lookback_hours,
        **compared,
        "full_build_seconds": round(full_seconds, 1),
        "full_build_cpu_seconds": round(CPU_SECONDS[0], 1),
        "profile_models_seconds": round(profile_seconds, 2),
        "hand_query_seconds": round(hand_seconds, 2),
        "profile_to_hand_ratio": round(profile_seconds / hand_seconds, 2),
        **alone,
        "incremental_build_seconds": round(incremental_seconds, 1),
        "incremental_to_full_ratio": round(incremental_seconds / full_seconds, 3),
        "incremental_cpu_seconds": round(CPU_SECONDS[1], 1),
        "incremental_to_full_cpu_ratio": round(CPU_SECONDS[1] / CPU_SECONDS[0], 3),
        "incremental_touched": incremental_touched,
        "hourly_build_seconds": round(hourly_seconds, 1),
        "hourly_to_full_ratio": round(hourly_seconds / full_seconds, 3),
        "hourly_cpu_seconds": round(CPU_SECONDS[2], 1),
        "hourly_to_full_cpu_ratio": round(CPU_SECONDS[2] / CPU_SECONDS[0], 3),
        "hourly_touched": hourly_touched,
        "slowest_models_full": _slowest(per_model, 8),
        "slowest_models_incremental": _slowest(incremental_models, 8),
        "slowest_models_hourly": _slowest(hourly_models, 8),
        "peak_child_rss_mb": round(peak_mb),
        "load_average": os.getloadavg(),
    }
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed_cpu(warehouse: Warehouse, dbt_vars: dict) -> tuple[float, float]:
    started, cpu = time.perf_counter(), _cpu_seconds()
    run_dbt(["run", "--selector", "microbatch"], warehouse, dbt_vars)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def _land_share(db: Path, landing: Path, share: float, as_of: str) -> int:
    """One Product Viewed line an hour before as_of for `share` of the user ids (the first by a
    fixed hash order: the same choice every run): returns how many."""
    with duckdb.connect(str(db), read_only=True) as con:
        ids = [row[0] for row in con.sql(
            "select raw_identity from restricted.restricted_identity_keys"
            " where identity_type = 'user_id'"
            " order by hash(raw_identity || 'crossover'), raw_identity"
        ).fetchall()]  # fmt: skip
    chosen = ids[: max(1, round(share * len(ids)))]
    at = duckdb.sql(
        f"select strftime(timestamp '{as_of}' - interval 1 hour, '%Y-%m-%dT%H:%M:%S.000Z')"
    )
    stamp = at.fetchone()[0]
    folder = landing / "dt=crossover"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "crossover.jsonl").open("w") as out:
        for number, user_id in enumerate(chosen):
            line = {
                "messageId": f"crossover-{number}", "type": "track", "event": "Product Viewed",
                "userId": user_id, "timestamp": stamp, "sentAt": stamp, "receivedAt": stamp,
                "properties": {"product_id": "P00133", "category": "furniture", "price": 120.0},
            }  # fmt: skip
            out.write(json.dumps(line) + "\n")
    return len(chosen)


def crossover(kept: Path, shares: list[float]) -> dict:
    """The touched path against the plain full path as the touched share grows, from the state
    a `--keep` run left (its warehouse after the incremental builds)."""
    base = kept / "warehouse.duckdb"
    with duckdb.connect(str(base), read_only=True) as con:
        (as_of,) = con.sql(
            "select cast(max(as_of) as varchar) from raw.dbt_builds where status = 'success'"
        ).fetchone()
    rows = []
    for share in shares:
        work = kept / f"crossover-{share}"
        shutil.rmtree(work, ignore_errors=True)
        landing = work / "landing"
        shutil.copytree(kept / "landing", landing, copy_function=os.link)
        lines = _land_share(base, landing, share, as_of)
        row: dict = {"share_of_user_ids": share, "lines": lines}
        for path, switch in (("touched", 1), ("full", 0)):
            # named as the kept one: its views name the catalogue (the file's stem)
            warehouse = Warehouse(work / path / "warehouse.duckdb", landing, work / path, as_of)
            warehouse.db_path.parent.mkdir(parents=True)
            shutil.copyfile(base, warehouse.db_path)
            seconds, cpu = _timed_cpu(
                warehouse, {"lookback_hours": 0, "touched_full_rebuild_share": switch}
            )
            touched = touched_users(warehouse.db_path)
            with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
                keys = con.sql(
                    "select count(*) from restricted.restricted_identity_keys"
                ).fetchone()
            row[path] = {
                "seconds": round(seconds, 1),
                "cpu_seconds": round(cpu, 1),
                **touched,
                "touched_share_of_keys": round(touched["touched_users"] / keys[0], 3),
            }
            log.info("share %s %s: %s", share, path, row[path])
            warehouse.db_path.unlink()
        row["touched_to_full_cpu"] = round(
            row["touched"]["cpu_seconds"] / row["full"]["cpu_seconds"], 2
        )
        rows.append(row)
        shutil.rmtree(work, ignore_errors=True)
    return {"crossover": rows, "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument(
        "--lookback-hours", type=int, default=0, help="lookback_hours of the incremental builds"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="side-by-side runs of the profile path and hand query"
    )
    parser.add_argument(
        "--crossover",
        type=Path,
        default=None,
        help="a --keep folder: measure the touched/full crossover from it",
    )
    parser.add_argument(
        "--shares",
        type=float,
        nargs="+",
        default=[0.01, 0.1, 0.3, 0.6],
        help="shares of the user ids given a new line (--crossover)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.crossover is not None:
        print(json.dumps(crossover(args.crossover, args.shares), indent=2, default=str))
        return 0
    result = run(args.events, args.days, args.keep, args.lookback_hours, args.repeat)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
