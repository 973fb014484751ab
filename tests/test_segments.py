"""Segments as code on built warehouses: the shipped segments against an independent Python
evaluation of the generated events, membership history across builds, activation and export."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import ground_truth, make_warehouse, query, user_key

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import load_tracking_plan

# ---------------------------------------------------------------------------------------------
# An independent evaluation of the shipped segments, straight from the landing files.
# It applies the documented contract itself (docs/generator.md, tracking plan): parse each line,
# drop what staging quarantines (bad JSON, missing ids, bad or future timestamps, unknown events,
# missing / mistyped / negative properties), keep one line per messageId, stitch by the
# documented rule, then evaluate each rule as written in docs/segments.md.
# ---------------------------------------------------------------------------------------------

TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
NON_TRACK = {"identify", "page", "screen", "alias", "group"}


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None) - (parsed.utcoffset() or timedelta(0))


@dataclass(frozen=True)
class Event:
    user: str
    name: str | None
    at: datetime
    properties: dict[str, Any]
    # an order's, refund's or cancellation's money in the reporting currency (the profile's
    # revenue and refunded_amount, the catalogue's reporting_amount); None when it has none
    amount: float | None = None


def violates_plan(rules: Any, props: dict[str, Any]) -> bool:
    """A required property absent or null, a value of the wrong JSON type, or below its min."""
    for rule in rules:
        value = props.get(rule.name)
        if value is None:
            if rule.required:
                return True
            continue
        if not TYPES[rule.type](value):
            return True
        if rule.min is not None and value < rule.min:
            return True
    return False


def valid_lines(landing: Path) -> Iterator[dict[str, Any]]:
    plan = load_tracking_plan()
    seen: set[str] = set()
    for path in sorted(landing.glob("dt=*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    continue
                message_id = doc.get("messageId")
                if not message_id or not (doc.get("userId") or doc.get("anonymousId")):
                    continue
                kind = doc.get("type")
                at, received = parse_time(doc.get("timestamp")), parse_time(doc.get("receivedAt"))
                if kind not in NON_TRACK | {"track"} or at is None or received is None:
                    continue
                if at > received + timedelta(minutes=60):
                    continue
                if kind == "track":
                    rules = plan.events.get(doc.get("event"))
                    if rules is None:
                        continue
                    if violates_plan(rules, doc.get("properties") or {}):
                        continue
                if message_id in seen:
                    continue
                seen.add(message_id)
                doc["_at"] = at
                yield doc


def stitched_events(landing: Path) -> list[Event]:
    lines = list(valid_lines(landing))
    users_of: dict[str, set[str]] = defaultdict(set)
    for doc in lines:
        anonymous = doc.get("previousId") if doc["type"] == "alias" else None
        anonymous = anonymous or doc.get("anonymousId")
        if doc.get("userId") and anonymous and anonymous != doc["userId"]:
            users_of[anonymous].add(doc["userId"])
    events = []
    for doc in lines:
        anonymous = doc.get("anonymousId")
        linked = users_of.get(anonymous, set())
        user = doc.get("userId") or (next(iter(linked)) if len(linked) == 1 else anonymous)
        name = doc.get("event") if doc["type"] == "track" else None
        properties = doc.get("properties") or {}
        # the generator sends every order and refund in EUR (the reporting currency) with a revenue
        amount = properties.get("revenue") if name in MONEY_EVENTS else None
        events.append(Event(user, name, doc["_at"], properties, amount))
    return events


MONEY_EVENTS = ("Order Completed", "Order Refunded", "Order Cancelled")


def expected_memberships(landing: Path, as_of: datetime) -> set[tuple[str, str, str]]:
    return memberships_of(stitched_events(landing), as_of)


def memberships_of(stitched: list[Event], as_of: datetime) -> set[tuple[str, str, str]]:
    """(segment, user, status) of every shipped segment, from stitched events of any source."""
    events = [event for event in stitched if event.at <= as_of]
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_user[event.user].append(event)

    def within(at: datetime, duration: timedelta) -> bool:
        return as_of - duration < at <= as_of

    hour, day = timedelta(hours=1), timedelta(days=1)
    rows: set[tuple[str, str, str]] = set()
    for user, own in by_user.items():
        own.sort(key=lambda event: event.at)

        def named(name: str, own: list[Event] = own) -> list[datetime]:
            return [event.at for event in own if event.name == name]

        views, adds, orders = (
            named("Product Viewed"),
            named("Product Added"),
            named("Order Completed"),
        )
        # the profile's revenue: every order's money in the reporting currency
        revenue = sum(event.amount or 0 for event in own if event.name == "Order Completed")
        member: dict[str, bool] = {}
        member["viewed_top_product_24h"] = any(
            event.name == "Product Viewed"
            and event.properties.get("product_id") == "P00133"
            and within(event.at, day)
            for event in own
        )
        member["cart_abandoners"] = any(within(a, 7 * day) for a in adds) and not any(
            within(o, 7 * day) for o in orders
        )
        unfollowed = [
            a for a in adds if within(a, day) and not any(a < o <= a + hour for o in orders)
        ]
        if any(a + hour <= as_of for a in unfollowed):
            rows.add(("cart_abandoned_last_24h", user, "member"))
        elif unfollowed:
            rows.add(("cart_abandoned_last_24h", user, "pending"))
        member["high_value_customers"] = revenue >= 1000
        member["lapsed_buyers"] = bool(orders) and not any(within(o, 5 * day) for o in orders)
        member["high_value_lapsed"] = member["high_value_customers"] and member["lapsed_buyers"]
        features = [e for e in own if e.name == "Feature Used" and within(e.at, 30 * day)]
        member["feature_power_users"] = len(features) >= 20
        member["new_visitors"] = within(own[0].at, 7 * day)
        member["browse_to_checkout_funnel"] = funnel_completed(
            [
                [t for t in views if within(t, 7 * day)],
                [t for t in adds if within(t, 7 * day)],
                [t for t in named("Checkout Started") if within(t, 7 * day)],
            ],
            timedelta(minutes=30),
        )
        member |= aggregate_memberships(own, as_of)
        rows |= {(name, user, "member") for name, is_member in member.items() if is_member}
    return rows


def aggregate_memberships(own: list[Event], as_of: datetime) -> dict[str, bool]:
    """The shipped aggregate segments, from docs/segments.md: `within D` is (as_of - D, as_of],
    `between {from: A, to: B}` is (as_of - A, as_of - B]; sum of nothing is 0, avg/min/max of
    nothing make the condition false."""
    day = timedelta(days=1)

    def values(name: str, prop: str, start: timedelta | None, end: timedelta) -> list[Any]:
        """The property's values (an event without it has none, as in SQL aggregates)."""
        return [
            event.properties[prop]
            for event in own
            if event.name == name
            and event.properties.get(prop) is not None
            and (start is None or as_of - start < event.at)
            and event.at <= as_of - end
        ]

    spent_7d = values("Order Completed", "revenue", 7 * day, timedelta(0))
    spent_9_to_3 = values("Order Completed", "revenue", 9 * day, 3 * day)
    orders_3d = [e for e in own if e.name == "Order Completed" and as_of - 3 * day < e.at <= as_of]
    orders = values("Order Completed", "revenue", None, timedelta(0))
    viewed_prices = values("Product Viewed", "price", 7 * day, timedelta(0))
    added_prices = values("Product Added", "price", 7 * day, timedelta(0))
    # the catalogue's money (reporting_amount): refunds and cancellations reverse it
    spent = sum(e.amount or 0 for e in own if e.name == "Order Completed" and e.at <= as_of)
    reversed_ = sum(
        e.amount or 0
        for e in own
        if e.name in ("Order Refunded", "Order Cancelled") and e.at <= as_of
    )
    last_order = max((e.at for e in own if e.name == "Order Completed"), default=None)

    def bought(test: Any, within: timedelta | None = None) -> bool:
        """Some item of some order's products array passes `test` (array item conditions)."""
        return any(
            test(item)
            for event in own
            if event.name == "Order Completed" and (within is None or as_of - within < event.at)
            for item in event.properties.get("products") or []
        )

    return {
        "bought_top_product": bought(lambda item: item.get("product_id") == "P00133"),
        "bought_electronics_7d": bought(
            lambda item: item.get("category") == "electronics", 7 * day
        ),
        "bulk_buyers": bought(lambda item: (item.get("quantity") or 0) >= 3),
        # the profile's net_revenue = order money - refunded and cancelled money
        "net_value_customers": spent - reversed_ >= 500,
        # timestamp trait last_order_at between 9 and 3 days ago
        "last_ordered_3_to_9_days_ago": last_order is not None
        and as_of - 9 * day < last_order <= as_of - 3 * day,
        "big_spenders_7d": sum(spent_7d) >= 300,
        "cooling_big_spenders": sum(spent_9_to_3) >= 300 and not orders_3d,
        "broad_browsers_7d": len(set(values("Product Viewed", "product_id", 7 * day, 0 * day)))
        >= 8,
        "premium_basket_buyers": bool(orders) and sum(orders) / len(orders) >= 150,
        "budget_browsers_7d": bool(viewed_prices) and max(viewed_prices) <= 50,
        "premium_cart_adders_7d": bool(added_prices) and min(added_prices) >= 100,
    }


def funnel_completed(steps: list[list[datetime]], max_gap: timedelta) -> bool:
    """Some chain t1 < t2 < t3 with each gap <= max_gap (brute force over reachable times)."""
    reachable = steps[0]
    for times in steps[1:]:
        reachable = [t for t in times if any(r < t <= r + max_gap for r in reachable)]
    return bool(reachable)


def test_shipped_segments_match_independent_python(generated_warehouse: Warehouse) -> None:
    as_of = parse_time(generated_warehouse.as_of)
    assert as_of is not None
    # keyed as the marts key a user: by the pseudonym of the raw id; who refused analytics is
    # in no segment (the shipped analytics_consent_policy)
    profiled = ground_truth(generated_warehouse)
    expected = {
        (name, user_key(user), status)
        for name, user, status in expected_memberships(generated_warehouse.landing_path, as_of)
        if user_key(user) in profiled
    }
    assert len(profiled) < len(ground_truth(generated_warehouse, profiled=None))
    actual = set(
        query(
            generated_warehouse,
            "select segment_name, canonical_user_id, status from marts.fct_segment_membership",
        )
    )
    shipped = {
        row[0] for row in query(generated_warehouse, "select segment_name from marts.dim_segments")
    }
    assert shipped == {row[0] for row in expected} | {"cart_abandoned_last_24h"}
    for name in sorted(shipped):
        mine = {row for row in actual if row[0] == name}
        theirs = {row for row in expected if row[0] == name}
        assert mine == theirs, (name, sorted(mine - theirs)[:5], sorted(theirs - mine)[:5])
    # every shipped segment is exercised: none is empty on this data
    sizes = dict(query(generated_warehouse, "select segment_name, size from marts.dim_segments"))
    assert all(size > 0 for size in sizes.values()), sizes


def test_generated_sql_is_readable(generated_warehouse: Warehouse) -> None:
    """The compiled rules: one column per segment named after it, a comment naming the YAML node
    of every condition, as_of computed once, no dead branches, lines under 120 characters."""
    assert generated_warehouse.target_path is not None
    path = next(generated_warehouse.target_path.glob("compiled/**/fct_segment_membership.sql"))
    sql = path.read_text()
    lines = sql.splitlines()
    assert max(len(line) for line in lines) < 120
    assert "when false then" not in sql and "and true" not in sql and "then null else" not in sql
    assert "leaf_" not in sql and "segment_1" not in sql
    assert sql.count("'2026-01-11 00:00:00'") == 1  # as_of once, in the as_of CTE, in UTC
    names = [
        row[0] for row in query(generated_warehouse, "select segment_name from marts.dim_segments")
    ]
    evaluated = sql[sql.index("evaluated as (") : sql.index("memberships as (")]
    for name in names:
        assert f" as {name},\n" in evaluated, name
    assert "        (product_added_7d and (not order_completed_7d)) as cart_abandoners," in lines
    assert "        -- cart_abandoners: rule.all[1].not.event" in lines
    assert "        -- high_value_customers: rule.trait" in lines


def test_preview_reads_the_warehouse_without_a_build(
    generated_warehouse: Warehouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new segment in a file, previewed read-only: same members as the built segment whose rule
    it copies (jaccard 1), the sample drawn from them; the warehouse file is not modified."""
    built = {
        user
        for (user,) in query(
            generated_warehouse,
            "select canonical_user_id from marts.fct_segment_membership "
            "where segment_name = 'cart_abandoners' and status = 'member'",
        )
    }
    file = tmp_path / "new.yml"
    file.write_text(
        "- name: abandoners_copy\n  description: d\n  owner: o\n  rule:\n    all:\n"
        "      - event: {name: Product Added, within: 7d}\n"
        "      - not: {event: {name: Order Completed, within: 7d}}\n"
    )
    before = generated_warehouse.db_path.stat().st_mtime_ns
    args = ["segments", "preview", "abandoners_copy", f"--file={file}"]
    args += [f"--db={generated_warehouse.db_path}", f"--as-of={generated_warehouse.as_of}"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert f"segment abandoners_copy: {len(built)} members, 0 pending" in printed
    assert f"  cart_abandoners: {len(built)} (1.00)" in printed
    sample = printed.split("sample of members: ")[1].strip().split(", ")
    assert len(sample) == 10 and set(sample) <= built
    assert generated_warehouse.db_path.stat().st_mtime_ns == before
    assert (
        cli.main(["segments", "preview", "cart_abandonrs", f"--db={generated_warehouse.db_path}"])
        == 2
    )


def test_activation_holds_consenting_members_only(generated_warehouse: Warehouse) -> None:
    """audience_memberships = members whose final personalization consent (ground truth) is
    granted (and, by the shipped analytics policy, their analytics consent); people carries no
    raw PII; audiences count them."""
    consenting = {
        user
        for user, row in ground_truth(generated_warehouse).items()
        if row["consent_personalization"] == "true"
    }
    members = set(
        query(
            generated_warehouse,
            "select segment_name, canonical_user_id from marts.fct_segment_membership "
            "where status = 'member'",
        )
    )
    activated = set(
        query(generated_warehouse, "select audience_id, person_id from marts.audience_memberships")
    )
    assert activated == {(name, user) for name, user in members if user in consenting}
    assert 0 < len(activated) < len(members)
    sizes = dict(query(generated_warehouse, "select id, size from marts.audiences"))
    for name, size in sizes.items():
        assert size == sum(1 for audience, _ in activated if audience == name)
    columns = [row[0] for row in query(generated_warehouse, "describe marts.people")]
    assert "email" not in columns and "email_hash" in columns
    leaked = query(
        generated_warehouse,
        "select count(*) from marts.people where contains(coalesce(email_hash, ''), '@')",
    )
    assert leaked == [(0,)]
    assert {row[0] for row in query(generated_warehouse, "select id from marts.people")} == {
        user for _, user in activated
    }


def test_overlap_counts_and_jaccard(generated_warehouse: Warehouse) -> None:
    members: dict[str, set[str]] = defaultdict(set)
    for name, user in query(
        generated_warehouse,
        "select segment_name, canonical_user_id from marts.fct_segment_membership "
        "where status = 'member'",
    ):
        members[name].add(user)
    names = [
        row[0] for row in query(generated_warehouse, "select segment_name from marts.dim_segments")
    ]
    rows = query(
        generated_warehouse,
        "select segment_a, segment_b, shared_members, union_members, jaccard "
        "from marts.rpt_segment_overlap",
    )
    assert len(rows) == len(names) * (len(names) - 1) // 2
    for a, b, shared, union, jaccard in rows:
        assert a < b
        assert shared == len(members[a] & members[b])
        assert union == len(members[a] | members[b])
        assert jaccard == pytest.approx(shared / union)
    # a segment built from another is contained in it
    by_pair = {(a, b): (shared, union) for a, b, shared, union, _ in rows}
    shared, _ = by_pair[("high_value_lapsed", "lapsed_buyers")]
    assert shared == len(members["high_value_lapsed"]) > 0


def test_dim_segments_catalogue(generated_warehouse: Warehouse) -> None:
    rows = query(
        generated_warehouse,
        "select segment_name, definition, version_hash, size, pending_users, computed_at "
        "from marts.dim_segments",
    )
    counts = dict(
        query(
            generated_warehouse,
            "select segment_name || ':' || status, count(*) from marts.fct_segment_membership "
            "group by all",
        )
    )
    for name, definition, version_hash, size, pending, computed_at in rows:
        assert json.loads(definition)  # the rule as JSON
        assert len(version_hash) == 32
        assert size == counts.get(f"{name}:member", 0)
        assert pending == counts.get(f"{name}:pending", 0)
        assert computed_at == datetime(2026, 1, 11)
    assert len({row[2] for row in rows}) == len(rows)


def test_export_command_writes_activation_files(
    generated_warehouse: Warehouse, tmp_path: Path
) -> None:
    counts = dict(
        (table, query(generated_warehouse, f"select count(*) from marts.{table}")[0][0])
        for table in ("audiences", "people", "audience_memberships")
    )
    for file_format in ("csv", "parquet"):
        out = tmp_path / file_format
        args = ["segments", "export", f"--db={generated_warehouse.db_path}", f"--out={out}"]
        assert cli.main([*args, f"--format={file_format}"]) == 0
        for table, count in counts.items():
            path = out / f"{table}.{file_format}"
            reader = "read_csv" if file_format == "csv" else "read_parquet"
            assert duckdb.sql(f"select count(*) from {reader}('{path}')").fetchone() == (count,)
        assert not list(out.glob(".*partial"))
    missing = tmp_path / "nowhere.duckdb"
    assert cli.main(["segments", "export", f"--db={missing}", f"--out={tmp_path}"]) == 2


def test_unit_tests_and_bias_severity(generated_warehouse: Warehouse, tmp_path: Path) -> None:
    """The golden-user unit tests pass; the bias test warns by default and fails on request."""
    shutil.copy(generated_warehouse.db_path, tmp_path / "warehouse.duckdb")
    warehouse = make_warehouse(
        tmp_path, generated_warehouse.landing_path, generated_warehouse.as_of
    )
    run_dbt(
        [
            "test",
            "--select",
            "test_type:unit,fct_segment_membership",
            "test_type:unit,rpt_segment_composition_audit",
            "test_name:segment_bias_flags",
        ],
        warehouse,
    )
    results = run_results(tmp_path)
    unit = {key: status for key, (status, _) in results.items() if key.startswith("unit_test.")}
    assert len(unit) == 13 and set(unit.values()) == {"pass"}, unit
    (bias,) = [value for key, value in results.items() if "segment_bias_flags" in key]
    assert bias[0] == "warn" and bias[1] > 0  # the generated data has skewed cells
    failed = run_dbt(
        ["test", "--select", "test_name:segment_bias_flags"],
        warehouse,
        dbt_vars={"segment_bias_severity": "error"},
        check=False,
    )
    assert failed.returncode == 1
    (bias,) = [value for key, value in run_results(tmp_path).items() if "segment_bias_flags" in key]
    assert bias[0] == "fail"


def run_results(root: Path) -> dict[str, tuple[str, int]]:
    document = json.loads((root / "target" / "run_results.json").read_text())
    return {
        result["unique_id"]: (result["status"], result.get("failures") or 0)
        for result in document["results"]
    }


# ---------------------------------------------------------------------------------------------
# History: three successive builds with new landing files and a moving as_of.
# ---------------------------------------------------------------------------------------------

HISTORY_SEGMENTS = [
    {
        "name": "viewer_24h",
        "description": "viewed a product in the last 24 hours",
        "owner": "tests",
        "min_size": 3,
        "rule": {"event": {"name": "Product Viewed", "within": "24h"}},
    },
    {
        "name": "buyer",
        "description": "ordered once",
        "owner": "tests",
        "min_size": 1,
        "requires_consent": "advertising",  # the test users granted personalization only
        "rule": {"event": {"name": "Order Completed"}},
    },
]
T1, T2, T3 = datetime(2026, 1, 2), datetime(2026, 1, 3), datetime(2026, 1, 4)


def track(message_id: str, user: str, event: str, at: str, properties: dict[str, Any]) -> str:
    received = (parse_time(at) or T1) + timedelta(seconds=1)
    return json.dumps(
        {
            "messageId": message_id,
            "type": "track",
            "event": event,
            "userId": user,
            "anonymousId": f"anon-{user}",
            "timestamp": at,
            "sentAt": at,
            "receivedAt": received.isoformat() + "Z",
            "properties": properties,
            "context": {"consent": {"categoryPreferences": {"personalization": True}}},
        }
    )


def view(message_id: str, user: str, at: str) -> str:
    return track(
        message_id, user, "Product Viewed", at, {"product_id": "P1", "category": "toys", "price": 5}
    )


def order(message_id: str, user: str, at: str) -> str:
    properties = {"order_id": message_id, "revenue": 5, "products": [{"product_id": "P1"}]}
    return track(message_id, user, "Order Completed", at, properties)


DAYS = {
    "dt=2026-01-01": [
        view("h1", "u1", "2026-01-01T10:00:00.000Z"),
        view("h2", "u2", "2026-01-01T12:00:00.000Z"),
    ],
    "dt=2026-01-02": [
        view("h3", "u2", "2026-01-02T09:00:00.000Z"),
        view("h4", "u3", "2026-01-02T10:00:00.000Z"),
        order("h5", "u1", "2026-01-02T11:00:00.000Z"),
    ],
    "dt=2026-01-03": [view("h6", "u1", "2026-01-03T08:00:00.000Z")],
}


def land(landing: Path, day: str) -> None:
    folder = landing / day
    folder.mkdir(parents=True)
    (folder / "part-0000.jsonl").write_text("\n".join(DAYS[day]) + "\n")


def build_segments(
    root: Path,
    landing: Path,
    as_of: datetime,
    command: str = "run",
    definitions: list[dict[str, Any]] = HISTORY_SEGMENTS,
) -> None:
    """dbt run (or build: with the data tests) of the segment marts and their parents."""
    warehouse = make_warehouse(root, landing, as_of.isoformat() + "Z")
    run_dbt(
        [
            command,
            "--select",
            "+fct_segment_events",
            "+dim_segments",
            "+audience_memberships",
            *(["--exclude-resource-type", "unit_test"] if command == "build" else []),
        ],
        warehouse,
        dbt_vars={"segment_definitions": definitions, "segment_clusters_enabled": False},
    )


def history_rows(root: Path) -> tuple[set[tuple], set[tuple]]:
    warehouse = make_warehouse(root, root / "landing")
    spells = query(
        warehouse,
        "select segment_name, canonical_user_id, valid_from, valid_to "
        "from marts.fct_segment_membership_history",
    )
    events = query(
        warehouse,
        "select segment_name, canonical_user_id, event_type, event_at "
        "from marts.fct_segment_events",
    )
    assert len(spells) == len(set(spells))
    return set(spells), set(events)


def test_history_across_three_builds(tmp_path: Path) -> None:
    U1, U2, U3 = (user_key(u) for u in ("u1", "u2", "u3"))  # noqa: N806 - the users' mart keys
    landing = tmp_path / "landing"
    land(landing, "dt=2026-01-01")
    build_segments(tmp_path, landing, T1, command="build")  # build: the seeds too
    spells, events = history_rows(tmp_path)
    assert spells == {("viewer_24h", U1, T1, None), ("viewer_24h", U2, T1, None)}
    assert events == {("viewer_24h", U1, "entered", T1), ("viewer_24h", U2, "entered", T1)}

    # day 2: u1 stops viewing (exits) and buys; u2 views again (stays); u3 arrives
    land(landing, "dt=2026-01-02")
    build_segments(tmp_path, landing, T2)
    after_second = history_rows(tmp_path)
    spells, events = after_second
    assert spells == {
        ("viewer_24h", U1, T1, T2),
        ("viewer_24h", U2, T1, None),
        ("viewer_24h", U3, T2, None),
        ("buyer", U1, T2, None),
    }
    assert events == {
        ("viewer_24h", U1, "entered", T1),
        ("viewer_24h", U2, "entered", T1),
        ("viewer_24h", U1, "exited", T2),
        ("viewer_24h", U3, "entered", T2),
        ("buyer", U1, "entered", T2),
    }

    # a re-run with the same as_of and no new data adds nothing
    build_segments(tmp_path, landing, T2)
    assert history_rows(tmp_path) == after_second

    # the analyst edits both segments and rebuilds at the same as_of: the rebuild corrects the
    # first build at T2 instead of adding to it. u1 views within 48h again: the spell closed at
    # T2 is reopened, not split in two at T2; u1's purchase at 11:00 is not within 12h of T2:
    # the buyer spell opened at T2 is removed, not left as a zero-length spell
    edited = [
        {**HISTORY_SEGMENTS[0], "rule": {"event": {"name": "Product Viewed", "within": "48h"}}},
        {**HISTORY_SEGMENTS[1], "rule": {"event": {"name": "Order Completed", "within": "12h"}}},
    ]
    build_segments(tmp_path, landing, T2, definitions=edited)
    spells, events = history_rows(tmp_path)
    assert spells == {
        ("viewer_24h", U1, T1, None),
        ("viewer_24h", U2, T1, None),
        ("viewer_24h", U3, T2, None),
    }
    assert events == {
        ("viewer_24h", U1, "entered", T1),
        ("viewer_24h", U2, "entered", T1),
        ("viewer_24h", U3, "entered", T2),
    }
    # and back to the shipped definitions at T2: the same history as the first build at T2
    build_segments(tmp_path, landing, T2)
    assert history_rows(tmp_path) == after_second

    # day 3: u1 comes back (a second spell), u2 and u3 leave; the buyer stays a buyer
    land(landing, "dt=2026-01-03")
    build_segments(tmp_path, landing, T3, command="build")
    spells, events = history_rows(tmp_path)
    assert spells == {
        ("viewer_24h", U1, T1, T2),
        ("viewer_24h", U2, T1, T3),
        ("viewer_24h", U3, T2, T3),
        ("viewer_24h", U1, T3, None),
        ("buyer", U1, T2, None),
    }
    assert events == after_second[1] | {
        ("viewer_24h", U2, "exited", T3),
        ("viewer_24h", U3, "exited", T3),
        ("viewer_24h", U1, "entered", T3),
    }
    # the over-segmentation guard warns: viewer_24h has 1 member, min_size 3; buyer is fine
    (guard,) = [value for key, value in run_results(tmp_path).items() if "segment_min_size" in key]
    assert guard == ("warn", 1)
    warehouse = make_warehouse(tmp_path, landing)
    current = query(
        warehouse,
        "select segment_name, canonical_user_id, status, is_activatable, computed_at "
        "from marts.fct_segment_membership",
    )
    assert set(current) == {
        ("viewer_24h", U1, "member", True, T3),
        ("buyer", U1, "member", False, T3),  # no advertising consent: not activatable
    }
    activated = query(warehouse, "select audience_id, person_id from marts.audience_memberships")
    assert activated == [("viewer_24h", U1)]
