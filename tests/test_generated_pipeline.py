"""dbt build on generated events: what the pipeline finds equals what the generator injected."""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pytest
from conftest import ground_truth, query, user_key

from personalization.dbt_runner import run_dbt
from personalization.publish import publish


@pytest.fixture(scope="module")
def manifest(generated_warehouse) -> dict:
    return json.loads((generated_warehouse.landing_path / "manifest.json").read_text())


@pytest.fixture(scope="module")
def truth(generated_warehouse) -> dict[str, dict]:
    """The users the shipped analytics policy profiles (who refused analytics are in no mart)."""
    return ground_truth(generated_warehouse)


def test_every_generated_line_is_loaded(generated_warehouse, manifest):
    rows = query(generated_warehouse, "select file_path, row_count from raw.raw_landing_files")
    assert dict(rows) == {f["path"]: f["lines"] for f in manifest["files"]}


def test_quarantine_reasons_equal_the_injected_defects(generated_warehouse, manifest):
    event_reasons = query(
        generated_warehouse,
        "select reason, count(*) from (select unnest(reasons) as reason "
        "from staging.quarantined_events) group by reason",
    )
    trait_reasons = query(
        generated_warehouse,
        "select reason, count(*) from staging.quarantined_traits group by reason",
    )
    found = dict(event_reasons) | dict(trait_reasons)
    injected = {reason: count for reason, count in manifest["defects"].items() if count}
    assert found == injected
    # each injected defect line carries exactly one defect
    assert query(
        generated_warehouse, "select max(reason_count) from staging.quarantined_events"
    ) == [(1,)]


def test_duplicates_and_late_events_are_counted(generated_warehouse, manifest):
    [(duplicates,)] = query(
        generated_warehouse, "select count(*) from staging.stg_duplicate_events"
    )
    assert duplicates == manifest["duplicates"]
    [(staged,)] = query(generated_warehouse, "select count(*) from staging.stg_events")
    trait_defects = sum(
        manifest["defects"][r]
        for r in ("implausible_age", "invalid_country", "city_country_mismatch")
    )
    # clean events plus the identify lines whose bad trait was nulled (the event itself is kept)
    assert staged == manifest["clean_events"] + trait_defects


def test_shared_devices_match_the_generator(generated_warehouse, manifest):
    rows = query(generated_warehouse, "select anonymous_id from marts.rpt_identity_audit")
    assert sorted(r[0] for r in rows) == sorted(map(user_key, manifest["shared_anonymous_ids"]))


@pytest.mark.parametrize(
    "column", ["orders", "cart_adds", "product_views", "page_views", "feature_uses"]
)
def test_profile_counts_equal_the_ground_truth(generated_warehouse, truth, column):
    rows = query(
        generated_warehouse, f"select canonical_user_id, {column} from marts.dim_user_profiles"
    )
    actual = {user: count for user, count in rows}
    expected = {
        user: int(row[column]) for user, row in truth.items() if int(row[column]) or user in actual
    }
    assert {user: actual.get(user, 0) for user in expected} == expected
    assert sum(actual.values()) == sum(int(row[column]) for row in truth.values())


def test_profile_revenue_equals_the_ground_truth(generated_warehouse, truth):
    rows = query(
        generated_warehouse, "select canonical_user_id, revenue from marts.dim_user_profiles"
    )
    actual = {user: Decimal(str(revenue)) for user, revenue in rows}
    mismatches = {
        user: (actual.get(user), row["revenue"])
        for user, row in truth.items()
        if actual.get(user, Decimal("0")) != Decimal(row["revenue"])
    }
    assert mismatches == {}
    assert len(actual) == len(truth)


def test_users_who_refused_analytics_are_in_no_mart_and_no_published_file(
    generated_warehouse, tmp_path
):
    """The shipped analytics_consent_policy (exclude) on generated users who refused analytics
    (from their first event, or withdrawn halfway through their sessions): their keys are in no
    table or view of the marts schema and in no published file, while the same scan finds every
    profiled user; the quality report counts them as not profiled."""
    refused = ground_truth(generated_warehouse, profiled=False)
    profiled = ground_truth(generated_warehouse)
    everyone = ground_truth(generated_warehouse, profiled=None)
    withdrawn = set(refused) & granted_once(generated_warehouse)
    # both kinds are there: refused from the first event, and withdrawn after granting
    assert 0 < len(withdrawn) < len(refused) < 0.15 * len(everyone)
    published = publish(generated_warehouse.db_path, tmp_path / "published")
    # attached under its own catalog name: dbt's views (dim_user_profiles) name it
    w = generated_warehouse.db_path.stem
    with duckdb.connect() as con:
        con.execute(f"attach '{generated_warehouse.db_path}' as {w} (read_only)")
        relations = [
            f'{w}.marts."{name}"'
            for (name,) in con.execute(
                f"select table_name from duckdb_tables() where database_name = '{w}' and "
                "schema_name = 'marts' union all select view_name from duckdb_views() where "
                f"database_name = '{w}' and schema_name = 'marts'"
            ).fetchall()
        ]
        files = [f"read_parquet('{path}')" for path in sorted(published.rglob("*.parquet"))]
        assert f'{w}.marts."dim_user_profiles"' in relations and len(files) >= len(relations) - 5

        def found(keys: dict[str, dict], sources: list[str]) -> dict[str, int]:
            """source -> how many of `keys` appear in some column of some row."""
            con.execute("create or replace temp table needles as select unnest($k) as k",
                        {"k": sorted(keys)})  # fmt: skip
            counts = {}
            for source in sources:
                [(hits,)] = con.execute(
                    f"select count(distinct needles.k) from {source} as t join needles "
                    "on contains(cast(t as varchar), needles.k)"
                ).fetchall()
                counts[source] = hits
            return counts

        leaks = {source: n for source, n in found(refused, relations + files).items() if n}
        assert leaks == {}
        # the scan can fail: every profiled user is found in the profiles and their file
        profile_file = next(f for f in files if "dim_user_profiles" in f)
        assert set(found(profiled, [f'{w}.marts."dim_user_profiles"', profile_file]).values()) == {
            len(profiled)
        }
    [(not_profiled,)] = query(
        generated_warehouse,
        "select metric_value from marts.rpt_data_quality "
        "where metric_name = 'users_not_profiled_by_policy'",
    )
    assert not_profiled == len(refused)


def granted_once(warehouse) -> set[str]:
    """Mart keys of the users (stitched) who granted analytics consent on some staged line: the
    refusers among them withdrew it later."""
    rows = query(
        warehouse,
        "select distinct coalesce(events.user_id, map.user_id, events.anonymous_id) "
        "from staging.stg_events as events left join intermediate.int_identity_map as map "
        "on events.anonymous_id = map.anonymous_id where events.consent_analytics",
    )
    return {user_key(raw) for (raw,) in rows}


def test_source_freshness_reports_on_the_landing_files(generated_warehouse):
    result = run_dbt(["source", "freshness"], generated_warehouse, check=False)
    output = result.stdout + result.stderr
    # generated files are written now, so they are fresh; the point is that dbt measured them
    assert "freshness of landing.events" in output
    assert result.returncode == 0, output
