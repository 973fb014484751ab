"""An independent computation of marts.dim_user_profiles (every column) and of the shipped
segments from the raw lines of tests/fixtures/real_shaped at any as_of.

It applies the documented rules itself (the tracking plan's comments, docs/real_world_data.md,
docs/segments.md, the trait catalogue's header and the vars of dbt_project.yml), reading only the
fixture lines, the seeds, the YAML the analyst edits and the project's vars; no SQL of the
project. The shipped segments are evaluated by the segment oracle of tests/test_segments.py.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import yaml
from conftest import FIXTURES, user_key
from test_segments import MONEY_EVENTS, Event, memberships_of

from personalization.privacy import DEVELOPMENT_KEY
from personalization.tracking_plan import PROJECT_ROOT, TRACKING_PLAN_PATH

REAL_SHAPED = FIXTURES / "real_shaped"
DAYS = sorted(path.name for path in REAL_SHAPED.iterdir())
CATALOGUE_PATH = PROJECT_ROOT / "models" / "intermediate" / "profiles" / "trait_catalogue.yml"
AGE_BANDS = [(18, "13-17"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"),
             (65, "55-64")]  # fmt: skip
ATTRIBUTES = ["age", "country", "city", "gender", "state", "postal_code"]


def project_vars() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())["vars"]


def plan_declaring(traits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The shipped tracking plan with custom traits declared (for the var tracking_plan)."""
    document = yaml.safe_load(TRACKING_PLAN_PATH.read_text())
    model = next(m for m in document["models"] if m["name"] == "stg_tracking_plan")
    return {**model["config"]["meta"]["tracking_plan"], "traits": traits}


def catalogue() -> list[dict[str, Any]]:
    document = yaml.safe_load(CATALOGUE_PATH.read_text())
    model = next(m for m in document["models"] if m["name"] == "int_user_catalogue_traits")
    return model["config"]["meta"]["traits"]


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


def events_up_to(days: list[str], cut: datetime) -> list[dict[str, Any]]:
    """Staged events up to as_of, each money event with its reporting-currency `amount`: revenue,
    else total, converted with the rates seed (None without a rate); a refund or cancellation
    without an amount reverses the whole order (its first copy up to as_of)."""
    events = sorted(
        (e for e in staged_events(days) if e["at"] <= cut), key=lambda e: (e["at"], e["messageId"])
    )
    rates = {
        row["currency_code"]: float(row["units_per_eur"]) for row in seed("ref_currency_rates")
    }
    reporting, default = project_vars()["reporting_currency"], project_vars()["default_currency"]
    orders: dict[str, tuple[Any, str]] = {}
    for e in events:
        if e.get("event") == "Order Completed":
            p = e["properties"]
            orders.setdefault(
                str(p["order_id"]), (p.get("revenue", p.get("total")), p.get("currency", default))
            )
    for e in events:
        name, p = e.get("event"), e.get("properties") or {}
        e["amount"], e["unconverted"] = None, False
        if name not in MONEY_EVENTS:
            continue
        order_amount, order_currency = orders.get(str(p.get("order_id")), (None, default))
        amount = p.get("revenue", p.get("total"))
        currency = p.get("currency") or (order_currency if name != "Order Completed" else default)
        if amount is None and name != "Order Completed":
            amount = order_amount
        if amount is not None and currency in rates:
            e["amount"] = round(amount / rates[currency] * rates[reporting], 2)
        e["unconverted"] = amount is not None and currency not in rates
    return events


# --- profile attributes ----------------------------------------------------------------------


def age_in_years(born: date, at: datetime) -> int:
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def trait_object(event: dict[str, Any]) -> dict[str, Any]:
    """Traits of an identify call, context.traits of any other call."""
    if event["type"] == "identify":
        return event.get("traits") or {}
    return (event.get("context") or {}).get("traits") or {}


def observed_attributes(
    traits: dict[str, Any], at: datetime, declared: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The valid values one trait object states (standard and declared traits)."""
    plan_rules = tracking_plan_rules()
    address = traits.get("address") or {}
    stated = {
        "country": traits.get("country") or address.get("country"),
        "city": traits.get("city") or address.get("city"),
        "state": traits.get("state") or address.get("state"),
        "postal_code": traits.get("postal_code") or traits.get("postalCode")
        or address.get("postal_code"),
    }  # fmt: skip
    values: dict[str, Any] = {}
    if stated["country"] is not None:
        code = country_lookup().get(str(stated["country"]).strip().upper())
        if code is not None:
            values["country"] = code
    cities = {row["city"].lower(): row["country_code"] for row in seed("ref_cities")}
    city = (stated["city"] or "").strip() or None
    if city is not None:
        known = cities.get(city.lower())
        if known is not None and "country" in values and known != values["country"]:
            values.pop("country")  # a city in another country: neither is kept
        else:
            values["city"] = city
    for name in ("state", "postal_code"):
        if stated[name]:
            values[name] = stated[name]
    age = traits.get("age")
    if age is None and traits.get("birthday"):
        age = age_in_years(date.fromisoformat(traits["birthday"]), at)
    if age is not None and plan_rules["age"]["min"] <= age <= plan_rules["age"]["max"]:
        values["age"] = age
    if traits.get("gender") in plan_rules["gender"]["accepted"]:
        values["gender"] = traits["gender"]
    for name, rule in declared.items():
        value = traits.get(name)
        if value is None or not declared_value_ok(value, rule):
            continue
        if rule.get("pii"):
            value = hmac.new(
                DEVELOPMENT_KEY.encode(), str(value).strip().lower().encode(), hashlib.sha256
            ).hexdigest()
        values[name] = value
    return values


def tracking_plan_rules() -> dict[str, Any]:
    return plan_declaring({})["trait_rules"]


def declared_value_ok(value: Any, rule: dict[str, Any]) -> bool:
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    if isinstance(value, bool) and rule["type"] != "boolean":
        return False
    if rule["type"] in kinds and not isinstance(value, kinds[rule["type"]]):
        return False
    if "accepted" in rule and value not in rule["accepted"]:
        return False
    if "min" in rule or "max" in rule:
        return rule.get("min", -math.inf) <= value <= rule.get("max", math.inf)
    return True


def age_band(age: int | None) -> str | None:
    if age is None:
        return None
    return next((band for bound, band in AGE_BANDS if age < bound), "65+")


# --- the catalogue ---------------------------------------------------------------------------


def property_text(event: dict[str, Any], name: str) -> str | None:
    """An event property as the text the catalogue reads (reporting_amount: the money)."""
    if name == "reporting_amount":
        return None if event.get("amount") is None else repr(float(event["amount"]))
    value = (event.get("properties") or {}).get(name)
    if value is None or isinstance(value, dict | list):
        return None if value is None else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def condition_holds(event: dict[str, Any], condition: dict[str, Any]) -> bool:
    wanted = condition["value"] if isinstance(condition["value"], list) else [condition["value"]]
    numeric = all(isinstance(v, int | float) for v in wanted)
    text = property_text(event, condition["property"])
    actual = number(text) if numeric else text
    if actual is None:
        return False
    op = condition.get("op", "=")
    compare = {"=": actual == wanted[0], "!=": actual != wanted[0], "in": actual in wanted,
               "not_in": actual not in wanted}  # fmt: skip
    if op in compare:
        return compare[op]
    return {"<": actual < wanted[0], "<=": actual <= wanted[0], ">": actual > wanted[0],
            ">=": actual >= wanted[0]}[op]  # fmt: skip


class Maybe:
    """A number or nothing, for derived expressions: division by zero gives nothing."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def _apply(self, other: Any, operation: Any) -> Maybe:
        right = other.value if isinstance(other, Maybe) else other
        if self.value is None or right is None:
            return Maybe(None)
        return Maybe(operation(self.value, right))

    def __add__(self, other: Any) -> Maybe:
        return self._apply(other, lambda a, b: a + b)

    def __sub__(self, other: Any) -> Maybe:
        return self._apply(other, lambda a, b: a - b)

    def __mul__(self, other: Any) -> Maybe:
        return self._apply(other, lambda a, b: a * b)

    def __truediv__(self, other: Any) -> Maybe:
        return self._apply(other, lambda a, b: a / b if b != 0 else None)

    def __neg__(self) -> Maybe:
        return Maybe(None if self.value is None else -self.value)


def catalogue_values(own: list[dict[str, Any]], cut: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for trait in catalogue():
        kind = trait["type"]
        if kind == "derived":
            names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", trait["expression"]))
            scope = {name: Maybe(values[name]) for name in names}
            values[trait["name"]] = eval(trait["expression"], {"__builtins__": {}}, scope).value  # noqa: S307
            continue
        window = trait.get("window", "all")
        start = None
        if window != "all":
            start = cut - timedelta(hours=int(window[:-1]) * (24 if window[-1] == "d" else 1))
        matching = [
            e
            for e in own
            if (
                e["type"] == "page"
                if trait["event"] == "page"
                else e.get("event") == trait["event"]
            )
            and all(condition_holds(e, c) for c in trait.get("where", []))
            and (start is None or e["at"] > start)
        ]
        texts = (
            [(e, property_text(e, trait["property"])) for e in matching]
            if "property" in trait
            else []
        )
        present = [(e, t) for e, t in texts if t is not None]
        numbers = [n for _, t in present if (n := number(t)) is not None]
        if kind == "counter":
            value: Any = len(matching)
        elif kind == "sum":
            value = round(sum(numbers), 6)
        elif kind == "avg":
            value = round(sum(numbers) / len(numbers), 6) if numbers else None
        elif kind in ("min", "max"):
            value = (min if kind == "min" else max)(numbers) if numbers else None
        elif kind in ("first", "last"):
            ordered = sorted(present, key=lambda pair: pair[0]["at"])
            value = (ordered[0] if kind == "first" else ordered[-1])[1] if ordered else None
        elif kind == "most_frequent":
            counts = Counter(t for _, t in present)
            value = min(counts, key=lambda v: (-counts[v], v)) if counts else None
        elif kind == "unique_list":
            value = sorted({t for _, t in present}) or None
        elif kind == "unique_count":
            value = len({t for _, t in present})
        elif kind == "first_at":
            value = min((e["at"] for e in matching), default=None)
        else:  # last_at
            value = max((e["at"] for e in matching), default=None)
        values[trait["name"]] = value
    return values


# --- the profile -----------------------------------------------------------------------------


def sessions(own: list[dict[str, Any]]) -> tuple[int, int]:
    """(sessions, seconds spent): page, screen and track events with no gap over the timeout."""
    timeout = timedelta(minutes=project_vars()["session_timeout_minutes"])
    spans: list[list[datetime]] = []
    for e in own:
        if e["type"] not in ("page", "screen", "track"):
            continue
        if spans and e["at"] - spans[-1][1] <= timeout:
            spans[-1][1] = e["at"]
        else:
            spans.append([e["at"], e["at"]])
    return len(spans), sum(int((end - start).total_seconds()) for start, end in spans)


def open_cart(own: list[dict[str, Any]], last_order: datetime | None) -> bool:
    """More products added than removed since the last order."""
    since = [e.get("event") for e in own if last_order is None or e["at"] > last_order]
    return since.count("Product Added") > since.count("Product Removed")


def score(values: dict[str, Any]) -> dict[str, int]:
    """1-5 by percent_rank (ties share the lowest rank)."""
    ordered = sorted(values.values())
    n = len(ordered)
    return {
        user: min(5, 1 + math.floor(5 * ((ordered.index(v)) / (n - 1) if n > 1 else 0.0)))
        for user, v in values.items()
    }


def expected_profiles(
    days: list[str], as_of: str, declared: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every column of dim_user_profiles per mart user key."""
    cut = parse_time(as_of)
    assert cut is not None
    settings = project_vars()
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events_up_to(days, cut):
        by_user[e["user"]].append(e)
    profiles: dict[str, dict[str, Any]] = {}
    for user, own in by_user.items():
        named = Counter(e.get("event") for e in own if e["type"] == "track")
        kinds = Counter(e["type"] for e in own)
        orders = [e for e in own if e.get("event") == "Order Completed"]
        reversals = [e for e in own if e.get("event") in ("Order Refunded", "Order Cancelled")]
        revenue = round(sum(e["amount"] or 0 for e in orders), 2)
        refunded = round(sum(e["amount"] or 0 for e in reversals), 2)
        first, last = own[0]["at"], own[-1]["at"]
        count, spent = sessions(own)
        # the winning observation per attribute: every observation here is 'declared' (no
        # feedback or locale in the fixture), so the latest wins
        attributes: dict[str, tuple[Any, datetime]] = {}
        for e in own:
            for name, value in observed_attributes(trait_object(e), e["at"], declared).items():
                attributes[name] = (value, e["at"])
        last_order = max((e["at"] for e in orders), default=None)
        profile: dict[str, Any] = {
            "is_identified": any(e.get("userId") is not None for e in own),
            "first_seen_at": first,
            "last_seen_at": last,
            "days_since_last_seen": (cut.date() - last.date()).days,
            "lifecycle_stage": (
                "new"
                if first > cut - timedelta(days=settings["lifecycle_new_days"])
                else "active"
                if last > cut - timedelta(days=settings["lifecycle_active_days"])
                else "at_risk"
                if last > cut - timedelta(days=settings["lifecycle_at_risk_days"])
                else "lapsed"
            ),  # fmt: skip
            "events": len(own),
            "sessions": count,
            "time_spent_seconds": spent,
            "page_views": kinds["page"],
            "screen_views": kinds["screen"],
            "product_views": named["Product Viewed"],
            "searches": named["Products Searched"],
            "cart_adds": named["Product Added"],
            "cart_removes": named["Product Removed"],
            "checkouts_started": named["Checkout Started"],
            "orders": len(orders),
            "revenue": revenue,
            "refunded_amount": refunded,
            "net_revenue": round(revenue - refunded, 2),
            "refunds": named["Order Refunded"],
            "cancellations": named["Order Cancelled"],
            "orders_unconverted": sum(e["unconverted"] for e in orders),
            "average_order_value": revenue / len(orders) if orders else None,
            "days_since_last_order": (cut.date() - last_order.date()).days if last_order else None,
            "has_open_cart": open_cart(own, last_order),
            "feature_uses": named["Feature Used"],
        }
        age, age_at = attributes.get("age", (None, None))
        profile |= {
            "age": age,
            "age_source": "declared" if age is not None else None,
            "age_observed_at": age_at,
            # one observed age in the fixture: too few to train an imputation on
            "age_imputation_method": None,
            "age_band": age_band(age),
        }
        for name in ATTRIBUTES[1:] + list(declared):
            value, at = attributes.get(name, (None, None))
            profile |= {
                name: value,
                f"{name}_source": "declared" if value is not None else None,
                f"{name}_observed_at": at,
            }
        # the fixture sends no consent
        profile |= {"has_personalization_consent": False, "has_advertising_consent": False}
        profile |= catalogue_values(own, cut)
        profiles[user] = profile
    scores = {
        "recency_score": score({u: p["last_seen_at"] for u, p in profiles.items()}),
        "frequency_score": score({u: p["sessions"] for u, p in profiles.items()}),
        "monetary_score": score({u: p["net_revenue"] for u, p in profiles.items()}),
    }
    for user, profile in profiles.items():
        profile |= {column: values[user] for column, values in scores.items()}
    return {user_key(user): profile for user, profile in profiles.items()}


def expected_memberships(
    days: list[str], as_of: str, extra: dict[str, Any] | None = None
) -> set[tuple[str, str, str]]:
    """(segment, mart user key, status) of the shipped segments (the oracle of
    tests/test_segments.py), from the same staged events and money."""
    cut = parse_time(as_of)
    assert cut is not None
    stitched = [
        Event(
            e["user"],
            e.get("event") if e["type"] == "track" else None,
            e["at"],
            e.get("properties") or {},
            e["amount"],
        )
        for e in events_up_to(days, cut)
    ]
    return {(name, user_key(user), status) for name, user, status in memberships_of(stitched, cut)}
