"""Generate sample events, build everything on the embedded DuckDB and print a summary.

The first line of `make demo`: it shows what the project produces on realistic data in a few
minutes, with the figures read back from the warehouse (nothing here is hard-coded).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import duckdb

from personalization import cli
from personalization.clustering import write_cluster_pictures
from personalization.dagster_record import record_dbt_build
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.publish import publish
from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)
DATA_DIR = PROJECT_ROOT / "data"


def pictures_dir(data_dir: Path) -> Path:
    """Where the demo writes cluster pictures: data/reports, ignored by git like all of data/
    (the pictures the README shows are kept in docs/images/)."""
    return data_dir / "reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=6_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)


def _generate(args: argparse.Namespace, landing: Path) -> tuple[dict, bool]:
    """The generator's manifest, and whether the sample data is new (not reused)."""
    manifest_path = landing / "manifest.json"
    wanted = {"seed": args.seed, "events_requested": args.events}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(key) == value for key, value in wanted.items()):
            log.info("sample data already in %s (same seed and size): reusing it", landing)
            return manifest, False
    code = cli.main(
        [
            "generate",
            f"--events={args.events}",
            f"--users={args.users}",
            f"--days={args.days}",
            f"--seed={args.seed}",
            f"--out={landing}",
        ]
    )
    if code != 0:
        raise SystemExit(code)
    return json.loads(manifest_path.read_text()), True


def summarise(db_path: Path, manifest: dict, published: Path) -> str:
    """A short report read back from the warehouse, compared with what the generator injected."""
    with duckdb.connect(str(db_path), read_only=True) as con:

        def scalar(sql: str) -> int | float:
            return con.sql(sql).fetchone()[0]

        raw = scalar("select count(*) from raw.raw_landing_events")
        staged = scalar("select count(*) from staging.stg_events")
        quarantined = scalar("select count(*) from staging.quarantined_events")
        duplicates = scalar("select count(*) from staging.stg_duplicate_events")
        by_reason = dict(
            con.sql(
                "select reason, count(*) from (select unnest(reasons) as reason "
                "from staging.quarantined_events) group by reason order by reason"
            ).fetchall()
        )
        traits = dict(
            con.sql(
                "select reason, count(*) from staging.quarantined_traits group by reason"
            ).fetchall()
        )
        profiles = con.sql(
            "select count(*), count(*) filter (where is_identified), "
            "count(*) filter (where has_personalization_consent), sum(orders), sum(revenue) "
            "from marts.dim_user_profiles"
        ).fetchone()
        not_profiled = scalar(
            "select coalesce(sum(metric_value), 0)::bigint from marts.rpt_data_quality "
            "where metric_name = 'users_not_profiled_by_policy'"
        )
        shared = scalar("select count(*) from marts.rpt_identity_audit")
        lifecycle = con.sql(
            "select lifecycle_stage, count(*) from marts.dim_user_profiles group by all order by 1"
        ).fetchall()
        imputation = dict(
            con.sql(
                "select metric_name, metric_value from marts.rpt_data_quality "
                "where metric_group = 'imputation' and dimension = 'age'"
            ).fetchall()
        )
        refresh = scalar("select count(*) from marts.users_needing_refresh")
        anomalies = scalar("select count(*) from marts.rpt_event_volume_daily where is_anomaly")
        segments = con.sql(
            "select segment_name, size, pending_users, min_size from marts.dim_segments order by 1"
        ).fetchall()
        flagged = scalar(
            "select count(distinct group_name) from marts.rpt_segment_composition_audit "
            "where is_four_fifths_flag"
        )
        activatable = scalar("select count(*) from marts.audience_memberships")
        clusters = con.sql(
            "select q.method, q.k, q.silhouette, q.davies_bouldin, q.stability_ari, "
            "string_agg(c.cluster_name || ' (' || c.size || ')', '; ' order by c.size desc) "
            "from marts.rpt_cluster_quality as q join marts.dim_clusters as c using (method) "
            "where c.cluster_id >= 0 group by all order by 1"
        ).fetchall()
    injected = manifest.get("defects", {})
    observed = {**by_reason, **traits}
    matching = sum(1 for reason, count in injected.items() if observed.get(reason, 0) == count)
    lines = [
        "",
        "== personalization demo ==",
        f"reference time    {manifest.get('as_of')} (as_of: the end of the sample data)",
        f"landing lines     {raw:>10,}  (generator wrote {manifest.get('lines_total', 0):,})",
        f"staged events     {staged:>10,}",
        f"quarantined       {quarantined:>10,}  "
        + ", ".join(f"{reason} {count}" for reason, count in by_reason.items()),
        f"trait values nulled {sum(traits.values()):>8,}  "
        + ", ".join(f"{reason} {count}" for reason, count in sorted(traits.items())),
        f"duplicates        {duplicates:>10,}  "
        f"(generator injected {manifest.get('duplicates', 0):,})",
        f"conservation      raw {raw:,} = staged {staged:,} + quarantined {quarantined:,} "
        f"+ duplicates {duplicates:,}: "
        f"{'ok' if raw == staged + quarantined + duplicates else 'BROKEN'}",
        f"defect reasons matching the generator's manifest exactly: {matching}/{len(injected)}",
        f"profiles          {profiles[0]:>10,}  ({profiles[1]:,} identified, "
        f"{profiles[2]:,} with personalisation consent; {not_profiled:,} not profiled: "
        "no analytics consent, analytics_consent_policy)",
        f"orders / revenue  {profiles[3]:>10,}  / {profiles[4]:,.2f}",
        f"shared devices    {shared:>10,}  (not merged; see marts.rpt_identity_audit)",
        "lifecycle         " + ", ".join(f"{stage} {count:,}" for stage, count in lifecycle),
        f"age imputation    kNN error {imputation.get('knn_mae_years', 0):.1f} years vs global "
        f"median {imputation.get('global_median_mae_years', 0):.1f} (out-of-fold, "
        f"{imputation.get('users_with_known_age', 0):,.0f} known ages)",
        "",
        f"segments ({len(segments)}; {activatable:,} activatable memberships, "
        f"{flagged} with a four-fifths bias flag - see marts.rpt_segment_composition_audit)",
        *(
            f"  {name:<28} {size:>7,} members"
            + (f", {pending:,} pending" if pending else "")
            + (" (below its minimum size)" if min_size and size < min_size else "")
            for name, size, pending, min_size in segments
        ),
        "",
        "clusters",
        *(
            f"  {method:<12} k={k}, silhouette {sil or 0:.2f}, Davies-Bouldin {db or 0:.2f}, "
            f"stability ARI {ari or 0:.2f}: {names}"
            for method, k, sil, db, ari, names in clusters
        ),
        "",
        f"quality           {refresh:,} users to prompt for a profile refresh, "
        f"{anomalies} anomalous volume days (marts.rpt_data_quality)",
        "",
        f"warehouse (build database): {db_path}",
        f"published for BI (read-only, PII-free): {published}/published.duckdb and Parquet files",
        "next: `make ui` for the Dagster UI; point a BI tool or notebook at the published file,",
        f"      e.g. duckdb -readonly {published}/published.duckdb "
        '"select * from marts.dim_user_profiles limit 5"',
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    data_dir: Path = args.data_dir.resolve()
    landing = data_dir / "landing"
    manifest, regenerated = _generate(args, landing)
    generated = time.perf_counter()
    # the sample data is historical: windows ("last 24 hours") are relative to its end, not to
    # now. The build pins this as_of in the warehouse (raw.dbt_builds), so later builds from
    # Dagster or the CLI without an as_of of their own keep it (personalization.reference_time).
    warehouse = Warehouse(
        db_path=data_dir / "warehouse.duckdb", landing_path=landing, as_of=manifest["as_of"]
    )
    # new sample data replaces the old files: rebuild from scratch (history included) rather
    # than report every rewritten file as changed after loading
    rebuild = regenerated and warehouse.db_path.exists()
    command = ["build", "--full-refresh"] if rebuild else ["build"]
    log.info("dbt %s into %s at as_of %s", " ".join(command), warehouse.db_path, warehouse.as_of)
    run_dbt(command, warehouse, stream=True)
    built = time.perf_counter()
    # `make ui` opens the instance in data/dagster: show this build there, not "never materialized"
    recorded = record_dbt_build(
        PROJECT_ROOT / "target", data_dir / "dagster", warehouse.db_path, str(warehouse.as_of)
    )
    version = publish(warehouse.db_path, data_dir / "published")
    log.info("published marts for BI readers: %s", version)
    pictures = write_cluster_pictures(warehouse.db_path, pictures_dir(data_dir))
    log.info("cluster pictures: %s", ", ".join(str(p) for p in pictures))
    sys.stdout.write(
        summarise(warehouse.db_path, manifest, data_dir / "published" / "current") + "\n"
        f"dagster           this build recorded for `make ui`: {recorded.materialisations} assets "
        f"materialised, {recorded.check_results} check results\n"
    )
    log.info(
        "timings: generate %.1f s, dbt build %.1f s, total %.1f s",
        generated - started,
        built - generated,
        built - started,
    )
    return 0
