"""Profile build benchmark: a full `dbt build` on N generated events, the profile models against
one hand-written DuckDB query computing the same core columns, and an incremental build after 1%
new events.

    python bench/bench_profiles.py --events 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt

log = logging.getLogger(__name__)

# the models between stg_events and dim_user_profiles that the hand-written query replaces
PROFILE_PATH_MODELS = (
    "restricted_identity_keys",
    "int_identity_links",
    "int_identity_map",
    "int_events_stitched",
    "int_identity_activity_daily",
    "fct_user_activity_daily",
    "dim_user_profiles",
)

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

CORE = (
    "canonical_user_id, first_seen_at, last_seen_at, events, page_views, product_views, "
    "cart_adds, orders, revenue"
)


def _generate(out: Path, events: int, users: int, days: int, seed: int, start: str) -> dict:
    code = cli.main(
        ["generate", "--quiet", f"--events={events}", f"--users={users}", f"--days={days}",
         f"--seed={seed}", f"--start={start}", f"--out={out}"]
    )  # fmt: skip
    if code:
        raise SystemExit(code)
    return json.loads((out / "manifest.json").read_text())


def _timed_build(warehouse: Warehouse) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    run_dbt(["build"], warehouse)
    seconds = time.perf_counter() - started
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results}
    return seconds, per_model


def run(events: int, days: int = 30, keep: Path | None = None) -> dict:
    work = Path(keep or tempfile.mkdtemp(prefix="bench-profiles-"))
    history = _generate(work / "history", events, max(1, events // 100), days, 1, "2026-01-01")
    increment_events = max(100, events // 100)
    increment = _generate(
        work / "increment", increment_events, max(1, increment_events // 20), 1, 2, "2026-01-31"
    )
    landing = work / "landing"
    for day in sorted((work / "history").glob("dt=*")):
        shutil.copytree(day, landing / day.name)
    warehouse = Warehouse(work / "warehouse.duckdb", landing, work / "target", increment["as_of"])
    full_seconds, per_model = _timed_build(warehouse)
    profile_seconds = sum(per_model.get(name, 0.0) for name in PROFILE_PATH_MODELS)

    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        started = time.perf_counter()
        con.sql(f"create temp table hand as {HAND_WRITTEN}")
        hand_seconds = time.perf_counter() - started
        disagreements = con.sql(
            f"select count(*) from ((select {CORE} from hand except select {CORE} "
            f"from marts.dim_user_profiles) union all (select {CORE} from marts.dim_user_profiles "
            f"except select {CORE} from hand))"
        ).fetchone()[0]
        profiles = con.sql("select count(*) from marts.dim_user_profiles").fetchone()[0]

    for day in sorted((work / "increment").glob("dt=*")):
        shutil.copytree(day, landing / f"{day.name}-increment")
    incremental_seconds, incremental_models = _timed_build(warehouse)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "events": history["lines_total"],
        "increment_events": increment["lines_total"],
        "profiles": profiles,
        "full_build_seconds": round(full_seconds, 1),
        "profile_models_seconds": round(profile_seconds, 2),
        "hand_query_seconds": round(hand_seconds, 2),
        "profile_to_hand_ratio": round(profile_seconds / hand_seconds, 2),
        "core_rows_disagreeing": disagreements,
        "incremental_build_seconds": round(incremental_seconds, 1),
        "incremental_to_full_ratio": round(incremental_seconds / full_seconds, 3),
        "slowest_models_full": sorted(per_model.items(), key=lambda kv: -kv[1])[:8],
        "slowest_models_incremental": sorted(incremental_models.items(), key=lambda kv: -kv[1])[:5],
        "peak_child_rss_mb": round(peak_mb),
    }
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(args.events, args.days, args.keep), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
