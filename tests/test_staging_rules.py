"""Every validation rule, triggered by a hand-written fixture line (tests/fixtures/landing)."""

from __future__ import annotations

import pytest
from conftest import query

from personalization.dbt_runner import Warehouse

DAY_ONE = "dt=2026-01-01/part-0000.jsonl"

# (line number in DAY_ONE, expected status, expected reasons)
LINE_VERDICTS = [
    (1, "staged", []),  # ok-page
    (2, "staged", []),  # unicode in properties
    (3, "staged", []),  # extra, nested properties
    (4, "staged", []),  # optional properties missing
    (5, "staged", []),  # anonymous only
    (6, "staged", []),  # identify with every trait
    (7, "staged", []),  # identify with a birthday
    (8, "staged", []),  # timestamp with a +02:00 offset
    (9, "staged", []),  # late: happened two days before it was received
    (10, "staged", []),  # integer price where the plan says number
    (11, "staged", []),  # implausible age: event kept, trait nulled
    (12, "staged", []),  # implausible age from a birthday
    (13, "staged", []),  # invalid country
    (14, "staged", []),  # city in another country
    (15, "staged", []),  # gender outside the accepted list
    (16, "quarantined", ["invalid_json"]),
    (17, "quarantined", ["missing_message_id"]),
    (18, "quarantined", ["missing_identity"]),
    (19, "quarantined", ["bad_timestamp"]),
    (20, "quarantined", ["future_timestamp"]),
    (21, "quarantined", ["unknown_event"]),
    (22, "quarantined", ["missing_required_property"]),
    (23, "quarantined", ["wrong_property_type"]),
    (24, "quarantined", ["negative_amount"]),
    (25, "quarantined", ["unknown_type"]),
    (26, "quarantined", ["below_minimum"]),
    (27, "quarantined", ["missing_required_property", "negative_amount"]),
    (28, "duplicate", []),  # a client retry of line 1
    (29, "quarantined", ["wrong_property_type"]),  # a required property present as null
    (30, "staged", []),  # an optional property present as null
]


@pytest.fixture(scope="module")
def verdicts(fixture_warehouse: Warehouse) -> dict[int, tuple[str, list[str]]]:
    rows = query(
        fixture_warehouse,
        "select line_number, status, reasons from staging.stg_landing__events_checked "
        f"where file_path = '{DAY_ONE}'",
    )
    return {line: (status, sorted(reasons)) for line, status, reasons in rows}


@pytest.mark.parametrize(("line", "status", "reasons"), LINE_VERDICTS)
def test_each_line_gets_its_verdict(verdicts, line, status, reasons):
    assert verdicts[line] == (status, sorted(reasons))


def test_every_fixture_line_is_judged(verdicts):
    assert sorted(verdicts) == [line for line, _, _ in LINE_VERDICTS]


def test_quarantine_keeps_the_raw_text(fixture_warehouse):
    rows = query(
        fixture_warehouse,
        f"select raw_line from staging.quarantined_events where file_path = '{DAY_ONE}' "
        "and line_number = 16",
    )
    assert rows == [
        (
            '{"messageId": "q-invalid_json", "type": "track", "event": "Product Viewed", '
            '"properties": {"price": 1',
        )
    ]


@pytest.mark.parametrize(
    ("message_id", "reason", "trait", "rejected"),
    [
        ("trait-implausible_age", "implausible_age", "age", "150"),
        ("trait-implausible_age-birthday", "implausible_age", "age", "2024-02-01"),
        ("trait-invalid_country", "invalid_country", "country", "ZZ"),
        ("trait-city_country_mismatch", "city_country_mismatch", "city_and_country", "Paris, DE"),
        ("trait-invalid_gender", "invalid_gender", "gender", "banana"),
    ],
)
def test_trait_problems_null_the_trait_and_are_quarantined(
    fixture_warehouse, message_id, reason, trait, rejected
):
    quarantined = query(
        fixture_warehouse,
        "select reason, trait_name, rejected_value from staging.quarantined_traits "
        f"where message_id = '{message_id}'",
    )
    assert quarantined == [(reason, trait, rejected)]
    nulled = ["city", "country"] if trait == "city_and_country" else [trait]
    staged = query(
        fixture_warehouse,
        f"select {', '.join(f'trait_{t}' for t in nulled)} from staging.stg_events "
        f"where message_id = '{message_id}'",
    )
    assert staged == [tuple(None for _ in nulled)]


def test_valid_traits_are_typed_and_kept(fixture_warehouse):
    rows = query(
        fixture_warehouse,
        "select message_id, trait_age, trait_country, trait_city, trait_gender "
        "from staging.stg_events where message_id in ('ok-identify', 'ok-identify-birthday', "
        "'trait-invalid_country', 'trait-city_country_mismatch') order by message_id",
    )
    assert rows == [
        ("ok-identify", 36, "DE", "Berlin", "female"),
        # born 1990-06-15, event on 2026-01-01: 35 whole years
        ("ok-identify-birthday", 35, "FR", "Paris", None),
        # a city in another country: either could be wrong, so both are nulled
        ("trait-city_country_mismatch", None, None, None, None),
        # an invalid country is nulled, the valid age kept
        ("trait-invalid_country", 30, None, None, None),
    ]


def test_timestamps_are_utc_and_lateness_is_flagged(fixture_warehouse):
    rows = query(
        fixture_warehouse,
        "select message_id, strftime(event_at, '%Y-%m-%d %H:%M:%S'), is_late, "
        "arrival_delay_seconds "
        "from staging.stg_events where message_id in ('ok-offset-timestamp', 'ok-late') "
        "order by message_id",
    )
    assert rows == [
        ("ok-late", "2025-12-30 09:00:00", True, 2 * 24 * 3600),
        ("ok-offset-timestamp", "2026-01-01 10:00:00", False, 5),
    ]


def test_conservation_holds(fixture_warehouse):
    ((raw, staged, quarantined, duplicates),) = query(
        fixture_warehouse,
        "select (select count(*) from raw.raw_landing_events), "
        "(select count(*) from staging.stg_events), "
        "(select count(*) from staging.quarantined_events), "
        "(select count(*) from staging.stg_duplicate_events)",
    )
    # 30 lines on day one, 11 on day two (one of them a retry of a day-one event)
    assert (raw, staged, quarantined, duplicates) == (41, 26, 13, 2)


def test_load_manifest_records_each_file(fixture_warehouse):
    rows = query(
        fixture_warehouse,
        "select file_path, row_count, length(file_hash), file_size > 0 "
        "from raw.raw_landing_files order by file_path",
    )
    assert rows == [
        ("dt=2026-01-01/part-0000.jsonl", 30, 64, True),
        ("dt=2026-01-02/part-0000.jsonl.gz", 11, 64, True),
    ]
