"""Right answers on real-shaped data (issue 11): a hand-written fixture in the shape of real
exports (tests/fixtures/real_shaped: numeric ids, country names, address traits, context.traits,
custom traits, refunds and cancellations, `total` without `revenue`, currencies, naive and
implausible timestamps, a quarantined-then-corrected resend), built at several as_of values and
compared with an independent computation from the raw lines."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from conftest import FIXTURES, make_warehouse, query, user_key

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import PROJECT_ROOT, TRACKING_PLAN_PATH

REAL_SHAPED = FIXTURES / "real_shaped"
DAYS = sorted(path.name for path in REAL_SHAPED.iterdir())
AFTER = "2026-03-04T00:00:00Z"  # after the data
INSIDE = "2026-03-02T10:30:00Z"  # between a refund and the events after it
BEFORE = "2026-02-28T00:00:00Z"  # before the data: no profiles
EARLY = "2026-03-01T12:07:00Z"  # inside the first day: part of the day is after as_of

# custom traits declared for these tests (the shipped plan declares none)
DECLARED_TRAITS = {
    "income_band": {"type": "string", "accepted": ["low", "middle", "high"]},
    "household_size": {"type": "integer", "min": 1, "max": 20},
    "company": {"type": "string", "pii": True},
}
PROFILE_SELECTION = [
    "build",
    "--select",
    "+dim_user_profiles",
    "+quarantined_traits",
    "+rpt_data_quality",
    "--exclude-resource-type",
    "test",
    "unit_test",
]
# everything the profile reads after staging, rebuilt in full at another as_of
DOWNSTREAM_FULL = [
    "run",
    "--full-refresh",
    "--select",
    "+dim_user_profiles",
    "--exclude",
    "+stg_events",
]


def real_plan() -> dict[str, Any]:
    document = yaml.safe_load(TRACKING_PLAN_PATH.read_text())
    model = next(m for m in document["models"] if m["name"] == "stg_tracking_plan")
    plan = model["config"]["meta"]["tracking_plan"]
    return {**plan, "traits": DECLARED_TRAITS}


def build(
    root: Path,
    as_of: str,
    days: list[str],
    command: list[str] = PROFILE_SELECTION,
    extra_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Warehouse:
    """Copy the given landing days into root/landing (adding to what is there) and run dbt."""
    landing = root / "landing"
    for day in days:
        if not (landing / day).exists():
            shutil.copytree(REAL_SHAPED / day, landing / day)
    warehouse = make_warehouse(root, landing, as_of=as_of)
    run_dbt(
        command, warehouse, dbt_vars={"tracking_plan": real_plan(), **(extra_vars or {})}, env=env
    )
    return warehouse


@pytest.fixture(scope="module")
def after(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """All days at an as_of after the data, built under a non-UTC TZ."""
    root = tmp_path_factory.mktemp("real_after")
    return build(root, AFTER, DAYS, env={"TZ": "Asia/Kolkata"})


def at_as_of(source: Warehouse, root: Path, as_of: str) -> Warehouse:
    """The staged events of `source`, with everything after staging rebuilt in full at as_of."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, source.landing_path, as_of=as_of)
    run_dbt(DOWNSTREAM_FULL, warehouse, dbt_vars={"tracking_plan": real_plan()})
    return warehouse


# --- the independent computation -------------------------------------------------------------


def parse_time(text: str) -> datetime | None:
    """ISO 8601; no zone means UTC (the project's rule)."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def seed(name: str) -> list[dict[str, str]]:
    with (PROJECT_ROOT / "seeds" / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def country_lookup() -> dict[str, str]:
    lookup = {row["alias"].upper(): row["country_code"] for row in seed("ref_country_aliases")}
    for row in seed("ref_countries"):
        lookup[row["country_code"].upper()] = row["country_code"]
        lookup[row["country_name"].upper()] = row["country_code"]
    return lookup


def staged_events(days: list[str]) -> list[dict[str, Any]]:
    """The lines the rules stage: parseable, plausible time, orders with an id and an amount;
    the first valid copy of a messageId wins (a quarantined copy never hides a later one)."""
    staged: dict[str, dict[str, Any]] = {}
    for day in days:
        for line in (REAL_SHAPED / day / "part-0000.jsonl").read_text().splitlines():
            event = json.loads(line)
            at = parse_time(str(event.get("timestamp")))
            if at is None or not datetime(1990, 1, 1) <= at < datetime(2100, 1, 1):
                continue
            props = event.get("properties") or {}
            if event.get("event") == "Order Completed" and (
                "order_id" not in props or ("revenue" not in props and "total" not in props)
            ):
                continue
            if event["messageId"] not in staged:
                staged[event["messageId"]] = {**event, "at": at, "user": str(event["userId"])}
    return list(staged.values())


def expected_profiles(days: list[str], as_of: str) -> dict[str, dict[str, Any]]:
    cut = parse_time(as_of)
    events = sorted(
        (e for e in staged_events(days) if e["at"] <= cut), key=lambda e: (e["at"], e["messageId"])
    )
    rates = {
        row["currency_code"]: float(row["units_per_eur"]) for row in seed("ref_currency_rates")
    }
    countries = country_lookup()

    def in_eur(amount: float | None, currency: str) -> float | None:
        if amount is None or currency not in rates:
            return None
        return round(amount / rates[currency] * rates["EUR"], 2)

    orders = {}
    for e in events:
        if e.get("event") == "Order Completed":
            p = e["properties"]
            orders.setdefault(
                str(p["order_id"]), (p.get("revenue", p.get("total")), p.get("currency", "EUR"))
            )
    profiles: dict[str, dict[str, Any]] = defaultdict(
        lambda: (
            dict.fromkeys(["orders", "refunds", "cancellations", "orders_unconverted", "events"], 0)
            | {"revenue": 0.0, "refunded_amount": 0.0, "country": None}
        )
    )
    for e in events:
        profile = profiles[e["user"]]
        profile["events"] += 1
        profile.setdefault("first_seen_at", e["at"])
        profile["last_seen_at"] = e["at"]
        traits = (
            e.get("traits") if e["type"] == "identify" else (e.get("context") or {}).get("traits")
        )
        if traits:
            stated = traits.get("country") or (traits.get("address") or {}).get("country")
            # an unknown country is nulled in staging: an earlier valid one stays
            if stated is not None and stated.strip().upper() in countries:
                profile["country"] = countries[stated.strip().upper()]
        name, p = e.get("event"), e.get("properties") or {}
        if name == "Order Completed":
            profile["orders"] += 1
            amount = in_eur(p.get("revenue", p.get("total")), p.get("currency", "EUR"))
            if amount is None:
                profile["orders_unconverted"] += 1
            else:
                profile["revenue"] += amount
        elif name in ("Order Refunded", "Order Cancelled"):
            profile["refunds" if name == "Order Refunded" else "cancellations"] += 1
            order_amount, order_currency = orders.get(str(p["order_id"]), (None, "EUR"))
            amount = p.get("revenue", p.get("total", order_amount))
            profile["refunded_amount"] += in_eur(amount, p.get("currency", order_currency)) or 0
    for profile in profiles.values():
        profile["revenue"] = round(profile["revenue"], 2)
        profile["refunded_amount"] = round(profile["refunded_amount"], 2)
        profile["net_revenue"] = round(profile["revenue"] - profile["refunded_amount"], 2)
        profile["days_since_last_seen"] = (cut.date() - profile["last_seen_at"].date()).days
    return dict(profiles)


COMPARED = [
    "events",
    "orders",
    "refunds",
    "cancellations",
    "orders_unconverted",
    "revenue",
    "refunded_amount",
    "net_revenue",
    "first_seen_at",
    "last_seen_at",
    "days_since_last_seen",
    "country",
]


def keyed(rows: list[tuple]) -> list[tuple]:
    """Expected rows whose first value is a raw user id, keyed as the marts key them, sorted."""
    return sorted((user_key(row[0]), *row[1:]) for row in rows)


def actual_profiles(warehouse: Warehouse) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        frame = con.sql(
            f"select canonical_user_id, {', '.join(COMPARED)} from marts.dim_user_profiles"
        )
        rows = frame.fetchall()
    return {
        row[0]: {
            column: float(value) if column.endswith(("revenue", "amount")) else value
            for column, value in zip(COMPARED, row[1:], strict=True)
        }
        for row in rows
    }


def assert_profiles_match(warehouse: Warehouse, days: list[str], as_of: str) -> None:
    expected = {
        user_key(user): {column: profile[column] for column in COMPARED}
        for user, profile in expected_profiles(days, as_of).items()
    }
    assert actual_profiles(warehouse) == expected


# --- item 1: as_of is a cut ------------------------------------------------------------------


def test_profiles_after_the_data_equal_the_independent_computation(after):
    assert_profiles_match(after, DAYS, AFTER)


@pytest.mark.parametrize("as_of", [BEFORE, INSIDE])  # EARLY: the incremental test
def test_profiles_at_an_earlier_as_of_count_nothing_after_it(after, tmp_path, as_of):
    warehouse = at_as_of(after, tmp_path / "sweep", as_of)
    assert_profiles_match(warehouse, DAYS, as_of)
    negative = query(
        warehouse, "select count(*) from marts.dim_user_profiles where days_since_last_seen < 0"
    )
    assert negative == [(0,)]


def test_incremental_builds_with_a_moving_as_of_equal_the_full_build(after, tmp_path):
    """Day one at an as_of inside it, then every day at the end, at the tightest lookback: the
    second run picks up day one's events stamped after the first as_of (loaded by the first run,
    so no lookback brings them back), the late-stamped order of day three, and the corrected
    resend of a line the first run quarantined."""
    root = tmp_path / "incremental"
    tight = {"lookback_hours": 0}
    step = build(root, EARLY, DAYS[:1], extra_vars=tight)
    assert_profiles_match(step, DAYS[:1], EARLY)
    step = build(root, AFTER, DAYS, extra_vars=tight)
    assert_profiles_match(step, DAYS, AFTER)
    assert actual_profiles(step) == actual_profiles(after)
    resend = query(
        step,
        "select line_number, status from staging.stg_landing__events_checked "
        "where message_id = 'r-014' order by file_path, line_number",
    )
    assert resend == [(14, "quarantined"), (1, "staged"), (2, "duplicate")]


# --- items 2 and 3: Segment's trait locations, country names ---------------------------------


def test_address_and_context_traits_and_country_names_reach_the_profile(after):
    rows = query(
        after,
        "select canonical_user_id, country, country_source, city, state, postal_code "
        "from marts.dim_user_profiles",
    )
    assert sorted(rows) == keyed(
        [
            # traits.address.* on identify; "United Kingdom"
            ("17850", "GB", "declared", "London", "England", "SW1A 1AA"),
            # "USA" then a later traits.address.country "gb"
            ("u2", "GB", "declared", None, None, None),
            ("u3", "IE", "declared", None, None, None),  # "EIRE"
            ("u4", "DE", "declared", None, None, None),  # "Deutschland"
            ("u5", None, None, None, None, None),  # "Atlantis": quarantined below
            (
                "u6",
                "FR",
                "declared",
                "Paris",
                None,
                None,
            ),  # context.traits.address on a track call, "FRA"
        ]
    )


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
        "length(company) from marts.dim_user_profiles where canonical_user_id in "
        f"('{user_key('17850')}', '{user_key('u4')}')",
    )
    assert sorted(rows) == keyed(
        [
            ("17850", "high", "declared", "2026-03-01 09:00", 3, 64),  # company: a keyed hash
            ("u4", None, None, None, None, None),  # both values broke their rule
        ]
    )


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
    assert sorted(
        tuple(float(v) if i in (1, 2, 3) else v for i, v in enumerate(r)) for r in rows
    ) == keyed(
        [
            # 120.50 GBP total (no revenue) = 141.76 EUR + 100 + 50; the GBP order refunded whole
            ("17850", 291.76, 141.76, 150.0, 1, 0),
            # 500 USD = 462.96 EUR + 20 EUR (a late event); 200 USD cancelled = 185.19 EUR;
            # the XYZ order has no rate: counted (orders_unconverted), not summed
            ("u2", 482.96, 185.19, 297.77, 0, 1),
            # the corrected resend (80, no currency = default EUR), 30 refunded
            ("u3", 80.0, 30.0, 50.0, 1, 0),
        ]
    )


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
