"""Injected defects: extra, mutated copies of clean lines, one defect per line.

The reason names are the pipeline's quarantine reason codes and must stay verbatim.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

from personalization.tracking_plan import TrackingPlan

DEFECT_REASONS: tuple[str, ...] = (
    "invalid_json",
    "missing_message_id",
    "missing_identity",
    "bad_timestamp",
    "future_timestamp",
    "unknown_event",
    "missing_required_property",
    "wrong_property_type",
    "negative_amount",
    "implausible_age",
    "invalid_country",
    "city_country_mismatch",
)
DEFAULT_DEFECT_RATE = 0.02  # share of all lines, split evenly over the reasons
DEFAULT_DUPLICATE_RATE = 0.01
DEFAULT_LATE_RATE = 0.02

# which clean lines a reason can be applied to (see sessions.C_* codes)
SOURCE_POOL = {
    "unknown_event": "track",
    "missing_required_property": "required",
    "wrong_property_type": "required",
    "negative_amount": "amount",
    "implausible_age": "identify",
    "invalid_country": "identify",
    "city_country_mismatch": "identify",
}
BAD_TIMESTAMPS = (
    "not-a-timestamp",
    "2026-13-45T25:61:00.000Z",
    "",
    "yesterday",
    "31/02/2026 10:00",
)
UNKNOWN_EVENTS = (
    "Button Clicked",
    "Product Viewd",
    "Video Played",
    "order_completed",
    "Add To Wishlist",
)
# not a country in any spelling (names and aliases such as "Deutschland" are accepted)
INVALID_COUNTRIES = ("ZZ", "XX", "QQ", "Atlantis", "Narnia", "Europe")
IMPLAUSIBLE_AGES = (150, -4, 0, 7, 12, 111, 200, 999)
AMOUNT_PROPERTIES = ("price", "revenue", "value")
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def _wrong_type(value_type: str, r: random.Random, name: str = ""):
    if value_type == "string":
        value = r.choice((12345, True))
        # an id (id, *_id) may be sent as a JSON integer: only a boolean is wrong for it (the
        # draw above keeps the random stream of earlier versions)
        return True if name == "id" or name.endswith("_id") else value
    if value_type == "number":
        return r.choice(("abc", "12.5", None))
    if value_type == "integer":
        return r.choice((1.5, "2", 2.25))
    if value_type == "array":
        return r.choice(("P00001", 3))
    return r.choice(("5", [1, 2]))  # object


def make_defect(
    reason: str,
    line: str,
    message_id: str,
    r: random.Random,
    plan: TrackingPlan,
    cities: list[tuple[str, str]],
    iso_ms: Callable[[int], str],
    received_ms: int,
) -> str:
    """A mutated copy of `line` carrying exactly the defect `reason`."""
    if reason == "invalid_json":
        cut = r.randint(10, len(line) - 2)
        return line[:cut]
    obj = json.loads(line)
    obj["messageId"] = message_id
    if reason == "missing_message_id":
        del obj["messageId"]
    elif reason == "missing_identity":
        obj.pop("userId", None)
        obj.pop("anonymousId", None)
    elif reason == "bad_timestamp":
        obj["timestamp"] = r.choice(BAD_TIMESTAMPS)
    elif reason == "future_timestamp":
        obj["timestamp"] = iso_ms(received_ms + r.randint(2 * 86_400_000, 400 * 86_400_000))
    elif reason == "unknown_event":
        obj["event"] = r.choice(UNKNOWN_EVENTS)
    elif reason in ("missing_required_property", "wrong_property_type"):
        props = obj["properties"]
        rules = [rule for rule in plan.required(obj["event"]) if rule.name in props]
        rule = r.choice(rules)
        if reason == "missing_required_property":
            del props[rule.name]
        else:
            props[rule.name] = _wrong_type(rule.type, r, rule.name)
    elif reason == "negative_amount":
        props = obj["properties"]
        name = next(n for n in AMOUNT_PROPERTIES if n in props)
        props[name] = -round(abs(props[name]) + 0.01 + r.random() * 20, 2)
    else:
        traits = obj["traits"]
        if reason == "implausible_age":
            traits.pop("birthday", None)
            traits["age"] = r.choice(IMPLAUSIBLE_AGES)
        elif reason == "invalid_country":
            traits.pop("city", None)
            traits["country"] = r.choice(INVALID_COUNTRIES)
        elif reason == "city_country_mismatch":
            country = traits.get("country")
            if country is None or all(cc != country for _, cc in cities):
                country = r.choice(cities)[1]
            city = r.choice([c for c, cc in cities if cc != country])
            traits["country"], traits["city"] = country, city
        else:
            raise ValueError(f"unknown defect reason {reason!r}")
    return _DUMPS(obj)
