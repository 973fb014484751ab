"""Right answers on real-shaped data (issue 11): a hand-written fixture in the shape of real
exports (tests/fixtures/real_shaped: numeric ids, country names, address traits, context.traits,
custom traits, refunds and cancellations, `total` without `revenue`, currencies, naive and
implausible timestamps, a quarantined-then-corrected resend), built at several as_of values and
compared with an independent computation from the raw lines."""

from __future__ import annotations

import math
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from conftest import make_warehouse, query, user_key
from real_shaped_oracle import (
    DAYS,
    REAL_SHAPED,
    expected_memberships,
    expected_profiles,
    plan_declaring,
)

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.segments import validate
from personalization.tracking_plan import PROJECT_ROOT

# the as_of sweep: before the data, inside its first day (part of the day after as_of), exactly
# on the timestamp of two events (a refund sent in UTC and one sent at +02:00), after the data
BEFORE = "2026-02-28T00:00:00Z"
EARLY = "2026-03-01T12:07:00Z"
ON_EVENT = "2026-03-02T10:00:00Z"
AFTER = "2026-03-04T00:00:00Z"

# custom traits declared for these tests (the shipped plan declares none)
DECLARED_TRAITS = {
    "income_band": {"type": "string", "accepted": ["low", "middle", "high"]},
    "household_size": {"type": "integer", "min": 1, "max": 20},
    "company": {"type": "string", "pii": True},
}
# a segment on a declared trait, next to the shipped ones
HIGH_INCOME = {
    "name": "high_income",
    "description": "Declared income band high (a tracking-plan trait).",
    "owner": "tests",
    "min_size": 1,
    "rule": {"trait": {"name": "income_band", "op": "=", "value": "high"}},
}
SELECTION = [
    "build",
    "--select",
    "+dim_user_profiles",
    "+fct_segment_membership",
    "+quarantined_traits",
    "+rpt_data_quality",
    "--exclude-resource-type",
    "test",
    "unit_test",
]
# everything the profile and the segments read after staging, rebuilt in full at an as_of
DOWNSTREAM_FULL = [
    "run",
    "--full-refresh",
    "--select",
    "+dim_user_profiles",
    "+fct_segment_membership",
    "--exclude",
    "+stg_events",
]


def segments_with_high_income() -> list[dict[str, Any]]:
    path = PROJECT_ROOT / "models" / "marts" / "segments" / "segments.yml"
    document = yaml.safe_load(path.read_text())
    model = next(m for m in document["models"] if m["name"] == "fct_segment_membership")
    return [*model["config"]["meta"]["segments"], HIGH_INCOME]


def sweep_vars() -> dict[str, Any]:
    return {
        "tracking_plan": plan_declaring(DECLARED_TRAITS),
        "segment_definitions": segments_with_high_income(),
    }


def build(
    root: Path,
    as_of: str,
    days: list[str],
    extra_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Warehouse:
    """Copy the given landing days into root/landing (adding to what is there) and run dbt."""
    landing = root / "landing"
    for day in days:
        if not (landing / day).exists():
            shutil.copytree(REAL_SHAPED / day, landing / day)
    warehouse = make_warehouse(root, landing, as_of=as_of)
    run_dbt(SELECTION, warehouse, dbt_vars={**sweep_vars(), **(extra_vars or {})}, env=env)
    return warehouse


@pytest.fixture(scope="module")
def after(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """All days at an as_of after the data, built on a fresh warehouse under a non-UTC TZ."""
    root = tmp_path_factory.mktemp("real_after")
    return build(root, AFTER, DAYS, env={"TZ": "Asia/Kolkata"})


def at_as_of(source: Warehouse, root: Path, as_of: str) -> Warehouse:
    """The staged events of `source`, with everything after staging rebuilt in full at as_of."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, source.landing_path, as_of=as_of)
    run_dbt(DOWNSTREAM_FULL, warehouse, dbt_vars=sweep_vars())
    return warehouse


# --- what the marts hold ---------------------------------------------------------------------


def by_user(rows: list[tuple]) -> dict[str, tuple]:
    """Rows whose first column is the mart's user key, keyed by it."""
    return {row[0]: row[1:] for row in rows}


Marts = tuple[dict[str, dict[str, Any]], set[tuple[str, str, str]]]


def marts(warehouse: Warehouse) -> Marts:
    """Every column of every profile, and every segment membership."""
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        frame = con.sql("select * from marts.dim_user_profiles")
        columns, rows = frame.columns, frame.fetchall()
        members = con.sql(
            "select segment_name, canonical_user_id, status from marts.fct_segment_membership"
        ).fetchall()
    profiles = {
        row[0]: {
            column: float(value) if isinstance(value, Decimal) else value
            for column, value in zip(columns[1:], row[1:], strict=True)
        }
        for row in rows
    }
    return profiles, set(members)


def same(actual: Any, expected: Any) -> bool:
    """Money and ratios within 0.005 (types may differ); everything else exactly."""
    if isinstance(actual, float) or isinstance(expected, float):
        return (actual is None) == (expected is None) and (
            actual is None or math.isclose(actual, expected, abs_tol=0.005)
        )
    return actual == expected


def assert_marts_equal(actual: Marts, expected: Marts) -> None:
    actual_profiles, actual_members = actual
    expected_profiles_, expected_members = expected
    assert sorted(actual_profiles) == sorted(expected_profiles_)
    for user, profile in expected_profiles_.items():
        # every column of the mart is compared, and nothing the computation has is missing
        assert sorted(actual_profiles[user]) == sorted(profile), user
        wrong = {
            column: (actual_profiles[user][column], value)
            for column, value in profile.items()
            if not same(actual_profiles[user][column], value)
        }
        assert wrong == {}, user
    for name in sorted({row[0] for row in actual_members | expected_members}):
        mine = {row for row in actual_members if row[0] == name}
        theirs = {row for row in expected_members if row[0] == name}
        assert mine == theirs, name


def computed(days: list[str], as_of: str) -> Marts:
    """The independent computation: every profile column and every segment (the shipped ones
    and high_income, a trait condition on a declared trait)."""
    profiles = expected_profiles(days, as_of, DECLARED_TRAITS)
    members = expected_memberships(days, as_of) | {
        ("high_income", user, "member")
        for user, profile in profiles.items()
        if profile["income_band"] == "high"
    }
    return profiles, members


# --- item 1: as_of is a cut ------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_builds(after: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Marts]:
    """A full build (everything after staging rebuilt) at each as_of of the sweep."""
    root = tmp_path_factory.mktemp("real_sweep")
    built = {AFTER: marts(after)}
    for name, as_of in [("before", BEFORE), ("early", EARLY), ("on_event", ON_EVENT)]:
        built[as_of] = marts(at_as_of(after, root / name, as_of))
    return built


@pytest.mark.parametrize("as_of", [BEFORE, EARLY, ON_EVENT, AFTER])
def test_every_profile_column_and_segment_equal_the_independent_computation(
    full_builds: dict[str, Marts], as_of: str
) -> None:
    assert_marts_equal(full_builds[as_of], computed(DAYS, as_of))


def test_the_sweep_sees_the_data_change(full_builds: dict[str, Marts]) -> None:
    """The as_of values are far enough apart to matter: no profile before the data, and the
    refunds exactly at ON_EVENT count there (as_of is inclusive)."""
    assert full_builds[BEFORE] == ({}, set())
    early, on_event, after_ = (full_builds[t][0] for t in (EARLY, ON_EVENT, AFTER))
    assert len(early) < len(on_event)
    key = user_key("17850")
    assert (early[key]["refunds"], on_event[key]["refunds"], after_[key]["orders"]) == (0, 1, 3)
    assert on_event[key]["refunded_amount"] == pytest.approx(141.76, abs=0.005)
    assert all(p["days_since_last_seen"] >= 0 for p in early.values())


def test_incremental_builds_with_a_moving_as_of_equal_the_full_build(
    full_builds: dict[str, Marts], tmp_path: Path
) -> None:
    """One warehouse built incrementally at the tightest lookback: day one at an as_of inside
    it; then the other days at ON_EVENT (a late-stamped order of day three falls before it, the
    corrected resend of a line the first run quarantined is staged); then AFTER with nothing new
    landed (the events loaded earlier but stamped after ON_EVENT must be picked up). Each step
    equals the independent computation and the full build at its as_of."""
    root = tmp_path / "incremental"
    tight = {"lookback_hours": 0}
    for as_of, days in [(EARLY, DAYS[:1]), (ON_EVENT, DAYS), (AFTER, DAYS)]:
        step = marts(build(root, as_of, days, extra_vars=tight))
        assert_marts_equal(step, computed(days, as_of))
        assert step == full_builds[as_of], as_of
    resend = query(
        make_warehouse(root, root / "landing"),
        "select line_number, status from staging.stg_landing__events_checked "
        "where message_id = 'r-014' order by file_path, line_number",
    )
    assert resend == [(14, "quarantined"), (1, "staged"), (2, "duplicate")]


def test_a_segment_on_a_declared_trait_works_on_a_first_build(after: Warehouse) -> None:
    """`after` is a fresh warehouse: high_income compiled before dim_user_profiles existed."""
    rows = query(
        after,
        "select canonical_user_id, status from marts.fct_segment_membership "
        "where segment_name = 'high_income'",
    )
    assert rows == [(user_key("17850"), "member")]


def write_model_meta(path: Path, model: str, meta: dict[str, Any]) -> Path:
    """A dbt YAML file holding one model's config.meta (a plan or a catalogue to validate)."""
    document = {"version": 2, "models": [{"name": model, "config": {"meta": meta}}]}
    path.write_text(yaml.safe_dump(document))
    return path


def test_segments_validate_knows_declared_traits(tmp_path: Path) -> None:
    """`personalization segments validate` lists declared traits as profile columns, as the
    dbt compile does (segment_profile_columns)."""
    plan = write_model_meta(tmp_path / "tracking_plan.yml", "stg_tracking_plan", {
        "tracking_plan": plan_declaring(DECLARED_TRAITS)
    })  # fmt: skip
    declared = validate.profile_columns(plan_path=plan)
    assert {"income_band", "income_band_source", "income_band_observed_at"} <= declared
    assert validate.check_segments([HIGH_INCOME], columns=declared) == []
    # the shipped plan declares no trait: the same segment is refused there
    shipped = validate.profile_columns()
    assert "income_band" not in shipped
    assert validate.check_segments([HIGH_INCOME], columns=shipped) != []


def test_a_derived_catalogue_trait_may_name_a_declared_numeric_trait(tmp_path: Path) -> None:
    """segments validate: household_size (declared integer) is an operand; company (pii) is
    not; the shipped plan declares neither."""
    traits = [
        {
            "name": "spent",
            "type": "sum",
            "event": "Order Completed",
            "property": "reporting_amount",
        },
        {"name": "per_member", "type": "derived", "expression": "spent / household_size"},
    ]
    path = write_model_meta(
        tmp_path / "trait_catalogue.yml", "int_user_catalogue_traits", {"traits": traits}
    )
    assert validate.validate_catalogue_file(path, declared_numeric=["household_size"]) == []
    [problem] = validate.validate_catalogue_file(path)
    assert "unknown trait 'household_size'" in problem.message
    plan = write_model_meta(tmp_path / "tracking_plan.yml", "stg_tracking_plan", {
        "tracking_plan": plan_declaring(DECLARED_TRAITS)
    })  # fmt: skip
    assert validate.declared_numeric_traits(plan) == ["household_size"]


def test_catalogue_money_equals_the_profile_money_for_every_user(after: Warehouse) -> None:
    """Two currencies, `total` without `revenue`, an order in a currency with no rate: the
    catalogue's money (property reporting_amount) is the profile's. Every order of the fixture is
    within 30 days of as_of, so revenue_30d is all of the user's gross revenue."""
    rows = query(
        after,
        "select canonical_user_id, revenue, revenue_30d, max_order_revenue "
        "from marts.dim_user_profiles",
    )
    assert len(rows) == 6
    for user, revenue, revenue_30d, _ in rows:
        assert float(revenue) == pytest.approx(revenue_30d, abs=0.005), user
    gross = {row[0]: round(float(row[2]), 2) for row in rows if row[2]}
    assert gross[user_key("17850")] == 291.76 and gross[user_key("u2")] == 482.96
    # no catalogue copy of the profile's all-time money under another name
    columns = {name for (name,) in query(after, PROFILE_COLUMNS)}
    assert {"revenue", "refunded_amount", "net_revenue"} <= columns
    assert not columns & {"order_revenue_total", "refunded_revenue_total", "net_revenue_total"}


PROFILE_COLUMNS = (
    "select column_name from duckdb_columns() "
    "where schema_name = 'marts' and table_name = 'dim_user_profiles'"
)


# --- items 2 and 3: Segment's trait locations, country names ---------------------------------


def test_address_and_context_traits_and_country_names_reach_the_profile(after):
    rows = query(
        after,
        "select canonical_user_id, country, country_source, city, state, postal_code "
        "from marts.dim_user_profiles",
    )
    assert by_user(rows) == {
        # traits.address.* on identify; "United Kingdom"
        user_key("17850"): ("GB", "declared", "London", "England", "SW1A 1AA"),
        # "USA" then a later traits.address.country "gb"
        user_key("u2"): ("GB", "declared", None, None, None),
        user_key("u3"): ("IE", "declared", None, None, None),  # "EIRE"
        user_key("u4"): ("DE", "declared", None, None, None),  # "Deutschland"
        user_key("u5"): (None, None, None, None, None),  # "Atlantis": quarantined below
        # context.traits.address on a track call, "FRA"
        user_key("u6"): ("FR", "declared", "Paris", None, None),
    }


def test_an_unknown_country_is_quarantined_with_its_value(after):
    rows = query(
        after,
        "select message_id, reason, trait_name, rejected_value from staging.quarantined_traits "
        "where reason = 'invalid_country'",
    )
    assert rows == [("r-007", "invalid_country", "country", "Atlantis")]


def test_names_are_kept_only_as_a_keyed_hash(after):
    rows = query(
        after,
        "select message_id, length(name_hash) from staging.stg_events where name_hash is not null",
    )
    assert rows == [("r-001", 64)]


# --- item 4: custom traits -------------------------------------------------------------------


def test_declared_traits_are_profile_columns_with_provenance(after):
    rows = query(
        after,
        "select canonical_user_id, income_band, income_band_source, "
        "strftime(income_band_observed_at, '%Y-%m-%d %H:%M'), household_size, "
        "length(company) from marts.dim_user_profiles",
    )
    profiles = by_user(rows)
    assert profiles[user_key("17850")] == ("high", "declared", "2026-03-01 09:00", 3, 64)
    assert profiles[user_key("u4")] == (None, None, None, None, None)  # both broke their rule


def test_declared_traits_that_break_their_rule_are_quarantined(after):
    rows = query(
        after,
        "select trait_name, rejected_value from staging.quarantined_traits "
        "where reason = 'invalid_trait' order by 1",
    )
    assert rows == [("household_size", "0"), ("income_band", "rich")]


def test_undeclared_traits_are_kept_and_counted(after):
    kept = query(
        after,
        "select json_extract_string(custom_traits, '$.favourite_colour') from staging.stg_events "
        "where message_id = 'r-001'",
    )
    assert kept == [("blue",)]
    counted = query(
        after,
        "select dimension, metric_value from marts.rpt_data_quality "
        "where metric_name = 'undeclared_trait_events'",
    )
    assert counted == [("favourite_colour", 1.0)]


# --- items 5 and 6: refunds, currencies, ids, totals, time -----------------------------------


def test_refunds_and_cancellations_give_net_revenue(after):
    rows = query(
        after,
        "select canonical_user_id, revenue, refunded_amount, net_revenue, refunds, cancellations "
        "from marts.dim_user_profiles where orders > 0",
    )
    money = {
        user: (*(float(v) for v in values[:3]), *values[3:])
        for user, values in by_user(rows).items()
    }
    assert money == {
        # 120.50 GBP total (no revenue) = 141.76 EUR + 100 + 50; the GBP order refunded whole
        user_key("17850"): (291.76, 141.76, 150.0, 1, 0),
        # 500 USD = 462.96 EUR + 20 EUR (a late event); 200 USD cancelled = 185.19 EUR;
        # the XYZ order has no rate: counted (orders_unconverted), not summed
        user_key("u2"): (482.96, 185.19, 297.77, 0, 1),
        # the corrected resend (80, no currency = default EUR), 30 refunded
        user_key("u3"): (80.0, 30.0, 50.0, 1, 0),
    }


def test_numeric_ids_are_staged_as_text(after):
    rows = query(
        after,
        "select message_id, order_id, json_extract_string(properties, '$.product_id') "
        "from staging.stg_events where message_id in ('r-002', 'r-008') order by 1",
    )
    assert rows == [("r-002", "536365", None), ("r-008", None, "85123")]


def test_orders_in_a_currency_without_a_rate_are_reported(after):
    rows = query(
        after,
        "select dimension, metric_value from marts.rpt_data_quality "
        "where metric_name = 'orders_without_rate'",
    )
    assert rows == [("XYZ", 1.0)]


def test_naive_timestamps_are_utc_under_any_tz(after):
    """Built under TZ=Asia/Kolkata (+05:30): the naive 11:00 stays 11:00."""
    rows = query(
        after,
        "select message_id, strftime(event_at, '%Y-%m-%d %H:%M') from staging.stg_events "
        "where message_id in ('r-003', 'r-017') order by 1",
    )
    assert rows == [("r-003", "2026-03-01 11:00"), ("r-017", "2026-03-02 10:00")]


def test_implausible_timestamps_are_quarantined(after):
    rows = query(
        after,
        "select message_id, reasons from staging.quarantined_events order by line_number",
    )
    assert rows == [
        ("r-011", ["implausible_timestamp"]),  # 1970
        ("r-012", ["implausible_timestamp"]),  # year 0
        ("r-013", ["implausible_timestamp"]),  # 9999
        ("r-014", ["missing_required_property"]),  # no order_id: corrected on day 2
    ]


# --- item 8: a corrected resend --------------------------------------------------------------


def test_a_corrected_resend_is_staged_and_conservation_holds(after):
    rows = query(
        after,
        "select file_path, line_number, status from staging.stg_landing__events_checked "
        "where message_id = 'r-014' order by 1, 2",
    )
    assert rows == [
        ("dt=2026-03-01/part-0000.jsonl", 14, "quarantined"),
        ("dt=2026-03-02/part-0000.jsonl", 1, "staged"),  # the corrected resend
        ("dt=2026-03-02/part-0000.jsonl", 2, "duplicate"),  # a retry of the staged copy
    ]
    conserved = query(
        after,
        "select (select count(*) from raw.raw_landing_events), status, count(*) "
        "from staging.stg_landing__events_checked group by status order by status",
    )
    assert conserved == [(24, "duplicate", 1), (24, "quarantined", 4), (24, "staged", 19)]
