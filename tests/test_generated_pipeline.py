"""dbt build on generated events: what the pipeline finds equals what the generator injected."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from conftest import query, user_key

from personalization.dbt_runner import run_dbt


@pytest.fixture(scope="module")
def manifest(generated_warehouse) -> dict:
    return json.loads((generated_warehouse.landing_path / "manifest.json").read_text())


@pytest.fixture(scope="module")
def truth(generated_warehouse) -> dict[str, dict]:
    with (generated_warehouse.landing_path / "ground_truth" / "users.csv").open() as handle:
        # keyed as the marts key a user: by the pseudonym of the generator's canonical id
        return {user_key(row["canonical_id"]): row for row in csv.DictReader(handle)}


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


def test_source_freshness_reports_on_the_landing_files(generated_warehouse):
    result = run_dbt(["source", "freshness"], generated_warehouse, check=False)
    output = result.stdout + result.stderr
    # generated files are written now, so they are fresh; the point is that dbt measured them
    assert "freshness of landing.events" in output
    assert result.returncode == 0, output
