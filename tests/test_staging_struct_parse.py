"""Staging parses each line once into a struct (parse_json_struct, issue 16). A struct cast must
never silently null or re-type a value: every field is read as the text the line sent, its JSON
type still decides the tracking-plan checks, and unknown or mistyped values are kept or
quarantined exactly as the path extraction did."""

from __future__ import annotations

import json

import pytest
from conftest import make_warehouse, query

from personalization.dbt_runner import Warehouse, run_dbt

FILE = "dt=2026-01-01/part-0000.jsonl"
BASE = {
    "anonymousId": "a-struct",
    "timestamp": "2026-01-01T10:00:00.000Z",
    "sentAt": "2026-01-01T10:00:00.000Z",
    "receivedAt": "2026-01-01T10:00:01.000Z",
}
VIEWED = {"product_id": "p1", "category": "toys", "price": 9.5}


def event(message_id: str, **fields: object) -> dict:
    return {"messageId": message_id, **BASE, **fields}


def viewed(message_id: str, **properties: object) -> dict:
    return event(message_id, type="track", event="Product Viewed",
                 properties={**VIEWED, **properties})  # fmt: skip


# (the line, its expected status and reasons); the lines are written in this order
LINES = [
    # a number where a text field is expected: read as its text, as before
    (event("s-number-user", type="page", userId=12345), "staged", []),
    # the plan's types are checked on the JSON type, whatever the struct reads
    (viewed("s-string-price", price="9.5"), "quarantined", ["wrong_property_type"]),
    (viewed("s-object-price", price={"amount": 1}), "quarantined", ["wrong_property_type"]),
    (
        viewed("s-string-negative", price="-5"),
        "quarantined",
        ["negative_amount", "wrong_property_type"],
    ),
    (viewed("s-null-price", price=None), "quarantined", ["wrong_property_type"]),
    # an undeclared property is kept in properties
    (viewed("s-extra-property", colour="red", nested={"a": [1, 2]}), "staged", []),
    # a non-object where the struct expects an object: its fields are absent, nothing fails
    (event("s-context-string", type="page", context="mobile"), "staged", []),
    (
        event(
            "s-traits-address-string",
            type="identify",
            userId="u-struct",
            traits={
                "age": "34",
                "address": "Berlin",
                "country": "DE",
                "consent": {"personalization": False},
            },
        ),
        "staged",
        [],
    ),
    # an array where the type is expected: quarantined for its type, not read as null silently
    (event("s-type-array", type=["track"]), "quarantined", ["unknown_type"]),
    # keys are case-sensitive: "UserId" is not userId
    (
        {"messageId": "s-case", "type": "page", "UserId": "u-case", **BASE, "anonymousId": None},
        "quarantined",
        ["missing_identity"],
    ),
    # the SDKs' timestamp shape takes a fast path (line_utc_timestamp): an impossible day in that
    # shape is still a bad timestamp, and an offset still converts to the same UTC instant
    (
        event("s-ts-impossible-day", type="page", timestamp="2026-02-30T10:00:00.000Z"),
        "quarantined",
        ["bad_timestamp"],
    ),
    (event("s-ts-offset", type="page", timestamp="2026-01-01T12:00:00.000+02:00"), "staged", []),
    (event("s-ts-no-zone", type="page", timestamp="2026-01-01T10:00:00.000"), "staged", []),
    # an integer order id is read as its text
    (
        event(
            "s-order",
            type="track",
            event="Order Completed",
            userId="u-struct",
            properties={"order_id": 536365, "revenue": 10, "products": []},
        ),
        "staged",
        [],
    ),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("struct_parse")
    landing = root / "landing"
    (landing / FILE).parent.mkdir(parents=True)
    text = "\n".join(json.dumps(line) for line, _, _ in LINES)
    # a duplicate key: the first value counts, as with path extraction
    text += '\n{"messageId": "s-duplicate-key", "type": "page", "userId": "first", ' \
        '"userId": "second", "timestamp": "2026-01-01T10:00:00.000Z", ' \
        '"receivedAt": "2026-01-01T10:00:01.000Z"}\n'  # fmt: skip
    (landing / FILE).write_text(text)
    warehouse = make_warehouse(root, landing)
    run_dbt(
        ["build", "--select", "+stg_landing__events_checked", "stg_events",
         "--exclude-resource-type", "test", "unit_test"],
        warehouse,
    )  # fmt: skip
    return warehouse


def test_each_line_keeps_its_verdict(warehouse):
    rows = query(
        warehouse,
        "select message_id, status, reasons from staging.stg_landing__events_checked",
    )
    verdicts = {message_id: (status, sorted(reasons)) for message_id, status, reasons in rows}
    expected = {line["messageId"]: (status, sorted(reasons)) for line, status, reasons in LINES}
    expected["s-duplicate-key"] = ("staged", [])
    assert verdicts == expected


def test_values_are_the_text_the_line_sent(warehouse):
    rows = dict(
        query(
            warehouse,
            "select message_id, {'user_id': user_id, 'age': trait_age, 'country': trait_country, "
            "'city': trait_city, 'personalization': consent_personalization, "
            "'order_id': order_id, 'amount': order_amount, 'device': device_type} "
            "from staging.stg_events",
        )
    )
    assert rows["s-number-user"]["user_id"] == "12345"
    assert rows["s-duplicate-key"]["user_id"] == "first"
    identify = rows["s-traits-address-string"]
    # "34" as text is an age; an address that is not an object has no city; the consent object
    # sits below the traits (read from the traits' JSON)
    assert (identify["age"], identify["country"], identify["city"]) == (34, "DE", None)
    assert identify["personalization"] is False
    assert rows["s-context-string"]["device"] is None
    assert (rows["s-order"]["order_id"], float(rows["s-order"]["amount"])) == ("536365", 10.0)


def test_timestamps_agree_on_both_paths(warehouse):
    rows = dict(
        query(
            warehouse,
            "select message_id, strftime(event_at, '%Y-%m-%d %H:%M:%S.%g') from staging.stg_events "
            "where message_id in ('s-number-user', 's-ts-offset', 's-ts-no-zone')",
        )
    )
    # s-number-user sends the SDK shape (fast path), the others take the general rule
    assert rows == {
        "s-number-user": "2026-01-01 10:00:00.000",
        "s-ts-offset": "2026-01-01 10:00:00.000",
        "s-ts-no-zone": "2026-01-01 10:00:00.000",
    }


def test_undeclared_properties_are_kept(warehouse):
    (properties,) = query(
        warehouse,
        "select properties from staging.stg_events where message_id = 's-extra-property'",
    )[0]
    assert json.loads(properties) == {**VIEWED, "colour": "red", "nested": {"a": [1, 2]}}
