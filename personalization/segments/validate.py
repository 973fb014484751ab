"""Instant validation of the YAML analysts edit: segments, the trait catalogue, the tracking plan.

Pure Python, no dbt: the files are read with a YAML loader that keeps line numbers, and every
problem is reported as ``file:line: <what>: <problem>`` with the allowed keys and a "did you
mean" suggestion for misspelt keys, events, properties, operators, traits and segments. The
checks mirror the compile-time validation in macros/segments/segment_definitions.sql and
macros/traits.sql (which stays authoritative for a build); this is the fast feedback loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from personalization.segments.core import (
    ARRAY_ITEM_OPS,
    COMPARISON_OPS,
    PRESENCE_OPS,
    PROPERTY_OPS,
    TRAIT_FILTER_OPS,
    TRAIT_OPS,
    TRAIT_UNITS,
    check_property_condition,
    did_you_mean,
    duration_message,
    duration_minutes,
)
from personalization.tracking_plan import PROJECT_ROOT, PROPERTY_TYPES, TRACKING_PLAN_PATH

__all__ = ["COMPARISON_OPS", "PROPERTY_OPS", "TRAIT_OPS", "did_you_mean", "duration_minutes"]

SEGMENTS_PATH = PROJECT_ROOT / "models" / "marts" / "segments" / "segments.yml"
SEGMENTS_MODEL = "fct_segment_membership"
PROJECT_PATH = PROJECT_ROOT / "dbt_project.yml"
CATALOGUE_PATH = PROJECT_ROOT / "models" / "intermediate" / "profiles" / "trait_catalogue.yml"
PROFILES_PATH = PROJECT_ROOT / "models" / "marts" / "profiles" / "_profiles__models.yml"

RULE_KEYS = ("all", "any", "not", "event", "funnel", "trait", "segment", "cluster")
# Segment's e-commerce product fields: `products[].category` matches when some item does
ARRAY_ITEM_FIELDS = {
    "product_id": "string",
    "sku": "string",
    "category": "string",
    "name": "string",
    "brand": "string",
    "variant": "string",
    "price": "number",
    "quantity": "integer",
    "coupon": "string",
    "position": "integer",
}
AGGREGATE_FUNCTIONS = ("sum", "avg", "min", "max", "count_distinct")
NON_TRACK_TYPES = ("page", "screen", "identify")
PAGE_PROPERTIES = ("name", "path", "url", "title", "referrer")
SEGMENT_KEYS = ("name", "description", "owner", "rule", "min_size", "requires_consent")
EVENT_KEYS = (
    "name",
    "type",
    "where",
    "min_count",
    "max_count",
    "within",
    "between",
    "not_followed_by",
    "aggregate",
)
AGGREGATE_KEYS = ("function", "property", "op", "value")
FUNNEL_KEYS = ("steps", "max_gap", "within", "between")
STEP_KEYS = ("name", "type", "where")
FOLLOW_KEYS = ("name", "type", "where", "within")
FILTER_KEYS = ("property", "op", "value")
TRAIT_KEYS = ("name", "op", "value")
CLUSTER_KEYS = ("method", "cluster_id", "cluster_name")
CONSENTS = ("personalization", "advertising")
CLUSTER_METHODS = ("kmeans", "hierarchical")
ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9:]+)?)?")
SNAKE = re.compile(r"[a-z][a-z0-9_]*")

TRAIT_TYPES = (
    "counter",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "most_frequent",
    "unique_list",
    "unique_count",
    "first_at",
    "last_at",
    "derived",
)
NUMERIC_TRAIT_TYPES = ("counter", "sum", "avg", "min", "max", "unique_count", "derived")
TRAIT_CATALOGUE_KEYS = (
    "name",
    "type",
    "event",
    "property",
    "where",
    "window",
    "expression",
    "description",
)
DERIVED_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:[.][0-9]+)?|[-+*/()]|[^ ]")
DERIVED_OPERAND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+(?:[.][0-9]+)?")
PLAN_PROPERTY_KEYS = ("type", "required", "min", "description")
PLAN_EVENT_KEYS = ("properties", "required_one_of", "description")


# --------------------------------------------------------------------------------------------
# YAML with line numbers
# --------------------------------------------------------------------------------------------


class MarkedDict(dict):  # type: ignore[type-arg]
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class MarkedList(list):  # type: ignore[type-arg]
    """A sequence that remembers its own line and the line of each item (1-based)."""

    line: int = 0
    lines: list[int]


class _MarkedLoader(yaml.SafeLoader):
    pass


def _mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    result = MarkedDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            result.duplicates.append((key, key_node.start_mark.line + 1))
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load_marked(text: str) -> Any:
    """Parse YAML into MarkedDict / MarkedList (plain scalars otherwise)."""
    return yaml.load(text, Loader=_MarkedLoader)  # noqa: S506 - a SafeLoader subclass


def line_of(node: Any, key: Any = None, default: int = 0) -> int:
    """The line of `key` in a marked mapping (or item `key` of a marked list), else the node's."""
    if isinstance(node, MarkedDict) and key is not None and key in node.lines:
        return node.lines[key]
    if isinstance(node, MarkedList) and isinstance(key, int) and 0 <= key < len(node.lines):
        return node.lines[key]
    return getattr(node, "line", 0) or default


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    message: str
    where: str | None = None  # a dbt var and key path, instead of file:line

    def __str__(self) -> str:
        if self.where is not None:
            return f"{self.where}: {self.message}"
        try:
            shown = self.path.relative_to(PROJECT_ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.message}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return _is_number(value) and value >= 0 and value == int(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not ISO_TIME.fullmatch(value):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Reporter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.path, line, message))

    def on(self, owner: str) -> Callable[[Any, str, str], None]:
        """A core.Report: a problem on `key` of `node`, prefixed with its owner."""
        return lambda node, key, message: self.error(line_of(node, key), f"{owner}: {message}")

    def keys(
        self, owner: str, node: Any, allowed: tuple[str, ...], what: str, line: int = 0
    ) -> bool:
        """Unknown keys (with the allowed ones and a suggestion); False when not a mapping."""
        if not isinstance(node, dict):
            self.error(
                line_of(node, default=line), f"{owner}: {what} must be a mapping, got {node!r}"
            )
            return False
        for key, key_line in getattr(node, "duplicates", []):
            self.error(key_line, f"{owner}: duplicate key '{key}' in {what}")
        for key in node:
            if key not in allowed:
                self.error(
                    line_of(node, key, line),
                    f"{owner}: unknown key '{key}' in {what}{did_you_mean(key, allowed)}"
                    f" (allowed: {', '.join(allowed)})",
                )
        return True


# --------------------------------------------------------------------------------------------
# Shared context: the tracking plan and the profile columns
# --------------------------------------------------------------------------------------------


def _models(document: Any) -> dict[str, Any]:
    models = document.get("models") if isinstance(document, dict) else None
    return {model.get("name"): model for model in models or [] if isinstance(model, dict)}


def _meta(model: Any) -> dict[str, Any]:
    config = model.get("config") if isinstance(model, dict) else None
    meta = config.get("meta") if isinstance(config, dict) else None
    return meta if isinstance(meta, dict) else {}


def plan_properties(plan_path: Path = TRACKING_PLAN_PATH) -> dict[str, dict[str, str]]:
    """event -> property -> type, from the tracking plan (empty when it cannot be read)."""
    document = load_marked(plan_path.read_text())
    return properties_of(_meta(_models(document).get("stg_tracking_plan")).get("tracking_plan"))


def properties_of(raw: Any) -> dict[str, dict[str, str]]:
    """event -> property -> type of a tracking plan's content (its `events:`)."""
    raw = raw if isinstance(raw, dict) else {}
    events: dict[str, dict[str, str]] = {}
    for event, spec in (raw.get("events") or {}).items():
        properties = (spec or {}).get("properties") or {}
        events[event] = {
            name: (prop or {}).get("type", "string") if isinstance(prop, dict) else "string"
            for name, prop in properties.items()
        }
    return events


def declared_traits(plan_path: Path = TRACKING_PLAN_PATH) -> dict[str, dict[str, Any]]:
    """The custom traits the tracking plan declares (its `traits:` section)."""
    plan = _meta(_models(yaml.safe_load(plan_path.read_text())).get("stg_tracking_plan"))
    traits = (plan.get("tracking_plan") or {}).get("traits") or {}
    return {str(name): rule or {} for name, rule in traits.items()}


def declared_numeric_traits(plan_path: Path = TRACKING_PLAN_PATH) -> list[str]:
    """Declared integer or number traits, not pii: a derived catalogue trait may name them
    (declared_numeric_traits in macros/traits.sql)."""
    return numeric_traits_of(declared_traits(plan_path))


def numeric_traits_of(traits: dict[str, Any]) -> list[str]:
    """The integer or number traits of a plan's `traits:`, pii ones left out."""
    return sorted(
        str(name)
        for name, rule in traits.items()
        if isinstance(rule, dict)
        and rule.get("type") in ("integer", "number")
        and not rule.get("pii")
    )


def profile_columns(
    profiles_path: Path = PROFILES_PATH,
    catalogue_path: Path = CATALOGUE_PATH,
    plan_path: Path = TRACKING_PLAN_PATH,
) -> set[str]:
    """Columns of dim_user_profiles: documented ones, every catalogue trait, and every trait the
    tracking plan declares (with its _source and _observed_at), as segment_profile_columns."""
    columns: set[str] = set()
    for name in declared_traits(plan_path):
        columns |= {f"{name}{suffix}".lower() for suffix in ("", "_source", "_observed_at")}
    model = _models(yaml.safe_load(profiles_path.read_text())).get("dim_user_profiles") or {}
    columns |= {str(column["name"]).lower() for column in model.get("columns") or []}
    catalogue = _models(yaml.safe_load(catalogue_path.read_text())).get("int_user_catalogue_traits")
    columns |= {
        str(trait.get("name")).lower()
        for trait in _meta(catalogue).get("traits") or []
        if isinstance(trait, dict) and trait.get("name")
    }
    return columns


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


class _SegmentChecker:
    def __init__(
        self,
        report: _Reporter,
        events: dict[str, dict[str, str]],
        columns: set[str],
        clusters: bool | None = None,
    ) -> None:
        self.report = report
        self.events = events
        self.columns = columns
        self.clusters_enabled = clusters_enabled()[0] if clusters is None else clusters

    def event_ref(self, owner: str, spec: dict[str, Any]) -> dict[str, str]:
        """Check name/type and where filters; returns the event's property types."""
        error = self.report.error
        event_type = spec.get("type", "track")
        if event_type == "track":
            name = spec.get("name")
            if name is None:
                error(
                    line_of(spec),
                    f"{owner}: an event condition needs a name (or a type: page, screen, identify)",
                )
                return {}
            if name not in self.events:
                error(
                    line_of(spec, "name"),
                    f"{owner}: unknown event '{name}' (not in the tracking plan)"
                    f"{did_you_mean(name, self.events)}",
                )
                return {}
            properties = self.events[name]
        elif event_type in NON_TRACK_TYPES:
            properties = dict.fromkeys(PAGE_PROPERTIES, "string")
        else:
            error(
                line_of(spec, "type"),
                f"{owner}: unknown event type '{event_type}' (expected track, "
                f"{', '.join(NON_TRACK_TYPES)}){did_you_mean(event_type, NON_TRACK_TYPES)}",
            )
            return {}
        label = spec.get("name") or event_type
        filters = spec.get("where") or []
        if not _is_list(filters):
            error(
                line_of(spec, "where"),
                f"{owner}: `where` must be a list of {{property, op, value}}",
            )
            return properties
        for index, item in enumerate(filters):
            line = line_of(filters, index)
            if self.report.keys(owner, item, FILTER_KEYS, "a where filter", line):
                self.filter(owner, item, label, properties)
        return properties

    def filter(
        self, owner: str, item: dict[str, Any], label: str, properties: dict[str, str]
    ) -> None:
        error = self.report.error
        prop, op = item.get("property"), item.get("op")
        if isinstance(prop, str) and "[]." in prop:
            properties = self.array_item_properties(owner, item, label, properties)
            if not properties:
                return
        if (
            check_property_condition(self.report.on(owner), item, label, properties, PROPERTY_OPS)
            is None
        ):
            return
        prop_type = properties[prop]
        if prop_type in ("array", "object") and op not in PRESENCE_OPS:
            error(
                line_of(item, "op"),
                f"{owner}: operator '{op}' does not apply to the {prop_type} property '{prop}' "
                "(only is_set, is_not_set)",
            )
            return
        if not self.value(owner, item, op, f"property '{prop}'"):
            return
        if op not in ("is_set", "is_not_set") and prop_type in ("number", "integer", "string"):
            values = item["value"] if op in ("in", "not_in") else [item["value"]]
            for value in values:
                if (prop_type == "string") == _is_number(value):
                    error(
                        line_of(item, "value"),
                        f"{owner}: property '{prop}' of event '{label}' is a {prop_type}: value "
                        f"'{value}' does not match "
                        f"({'quote it' if prop_type == 'string' else 'give a number'})",
                    )

    def array_item_properties(
        self, owner: str, item: dict[str, Any], label: str, properties: dict[str, str]
    ) -> dict[str, str]:
        """For `products[].field`: {that path: the field's type} when the array and the item
        field exist and the operator applies to items; else report and return {}."""
        prop, op = item["property"], item.get("op")
        array, field = prop.split("[].", 1)
        line = line_of(item, "property")
        if properties.get(array) != "array":
            arrays = [name for name, kind in properties.items() if kind == "array"]
            self.report.error(
                line,
                f"{owner}: '{array}' is not an array property of event '{label}' (arrays: "
                f"{', '.join(arrays) or 'none'}){did_you_mean(array, arrays)}",
            )
            return {}
        if field not in ARRAY_ITEM_FIELDS:
            self.report.error(
                line,
                f"{owner}: unknown item field '{field}' in '{prop}' (expected one of "
                f"{', '.join(ARRAY_ITEM_FIELDS)}){did_you_mean(field, ARRAY_ITEM_FIELDS)}",
            )
            return {}
        if op not in ARRAY_ITEM_OPS:
            self.report.error(
                line_of(item, "op", line),
                f"{owner}: operator '{op}' does not apply to array items '{prop}' (expected one of"
                f" {', '.join(ARRAY_ITEM_OPS)}){did_you_mean(op, ARRAY_ITEM_OPS)}",
            )
            return {}
        return {prop: ARRAY_ITEM_FIELDS[field]}

    def value(self, owner: str, node: dict[str, Any], op: str, what: str) -> bool:
        value, line = node.get("value"), line_of(node, "value", line_of(node))
        if op in ("is_set", "is_not_set"):
            message = None if value is None else f"operator '{op}' on {what} takes no value"
        elif op in ("in", "not_in"):
            ok = _is_list(value) and len(value) > 0
            message = None if ok else f"operator '{op}' on {what} needs a non-empty list value"
        elif op in ("within", "not_within"):
            message = None if duration_minutes(value) else self._duration_message(value, op)
        elif op == "between":
            message = self._relative_between_message(value, what)
        elif value is None or isinstance(value, dict | list):
            message = f"operator '{op}' on {what} needs a single value"
        else:
            message = None
        if message:
            self.report.error(line, f"{owner}: {message}")
        return message is None

    @classmethod
    def _relative_between_message(cls, value: Any, what: str) -> str | None:
        if not isinstance(value, dict) or set(value) != {"from", "to"}:
            return f"operator 'between' on {what} needs {{from: D, to: D}} (durations ago)"
        start, end = duration_minutes(value["from"]), duration_minutes(value["to"])
        if start is None or end is None:
            bad = value["from"] if start is None else value["to"]
            return cls._duration_message(bad, f"between on {what}")
        if start <= end:
            return (
                f"malformed window: between.from '{value['from']}' must reach further back than "
                f"between.to '{value['to']}'"
            )
        return None

    @staticmethod
    def _duration_message(value: Any, what: str) -> str:
        return duration_message(value, f"window {what}")

    def duration(self, owner: str, node: dict[str, Any], key: str, what: str) -> int | None:
        minutes = duration_minutes(node.get(key))
        if minutes is None:
            self.report.error(
                line_of(node, key), f"{owner}: {self._duration_message(node.get(key), what)}"
            )
        return minutes

    def window(self, owner: str, spec: dict[str, Any]) -> None:
        error = self.report.error
        if spec.get("within") is not None and spec.get("between") is not None:
            error(
                line_of(spec, "between"),
                f"{owner}: malformed window: give `within` or `between`, not both",
            )
        if spec.get("within") is not None:
            self.duration(owner, spec, "within", "within")
        between = spec.get("between")
        if between is None:
            return
        line = line_of(spec, "between")
        if isinstance(between, dict) and ("from" in between or "to" in between):
            self.report.keys(owner, between, ("from", "to"), "a relative between", line)
            start = self.duration(owner, between, "from", "between.from")
            end = self.duration(owner, between, "to", "between.to")
            if start is not None and end is not None and start <= end:
                error(
                    line,
                    f"{owner}: malformed window: between.from '{between.get('from')}' must reach "
                    f"further back than between.to '{between.get('to')}'",
                )
            return
        if (
            not isinstance(between, dict)
            or between.get("start") is None
            or between.get("end") is None
        ):
            error(
                line,
                f"{owner}: malformed window: between needs {{start: ISO, end: ISO}} "
                "or {from: D, to: D} (durations ago)",
            )
            return
        self.report.keys(owner, between, ("start", "end"), "between", line)
        times = {}
        for key in ("start", "end"):
            value = between[key]
            times[key] = _parse_time(value)
            if not isinstance(value, str):
                error(
                    line_of(between, key),
                    f"{owner}: malformed window: between.{key} must be a quoted ISO 8601 string "
                    "(YAML reads an unquoted timestamp as a date)",
                )
            elif times[key] is None:
                error(
                    line_of(between, key),
                    f"{owner}: malformed window: between.{key} '{value}' is not an ISO 8601 "
                    "timestamp",
                )
        if times["start"] and times["end"] and times["start"] >= times["end"]:
            error(
                line,
                f"{owner}: malformed window: between.start '{between['start']}' is not before "
                f"between.end '{between['end']}'",
            )

    def counts(self, owner: str, spec: dict[str, Any]) -> None:
        for key in ("min_count", "max_count"):
            value = spec.get(key)
            if value is not None and not _is_whole(value):
                self.report.error(
                    line_of(spec, key), f"{owner}: {key} must be a whole number >= 0, got '{value}'"
                )
                return
        low, high = spec.get("min_count", 1), spec.get("max_count")
        if high is not None and low > high:
            self.report.error(
                line_of(spec, "min_count", line_of(spec)),
                f"{owner}: min_count {low} is above max_count {high}",
            )

    def aggregate(self, owner: str, spec: dict[str, Any], properties: dict[str, str]) -> None:
        node = spec["aggregate"]
        line = line_of(spec, "aggregate")
        if not self.report.keys(owner, node, AGGREGATE_KEYS, "an aggregate", line):
            return
        for key in ("min_count", "max_count", "not_followed_by"):
            if key in spec:
                self.report.error(
                    line_of(spec, key), f"{owner}: an aggregate condition takes no {key}"
                )
        function, prop, op = node.get("function"), node.get("property"), node.get("op")
        if function not in AGGREGATE_FUNCTIONS:
            self.report.error(
                line_of(node, "function", line),
                f"{owner}: unknown aggregate function '{function}' (expected one of "
                f"{', '.join(AGGREGATE_FUNCTIONS)}){did_you_mean(function, AGGREGATE_FUNCTIONS)}",
            )
        label = spec.get("name") or spec.get("type")
        if prop not in properties:
            self.report.error(
                line_of(node, "property", line),
                f"{owner}: unknown property '{prop}' for event '{label}'"
                f" (not in the tracking plan){did_you_mean(prop, properties)}",
            )
        elif function in ("sum", "avg", "min", "max") and properties[prop] not in (
            "number",
            "integer",
        ):
            self.report.error(
                line_of(node, "property", line),
                f"{owner}: {function} needs a number property; '{prop}' is a {properties[prop]}",
            )
        elif properties[prop] in ("array", "object"):
            self.report.error(
                line_of(node, "property", line),
                f"{owner}: {function} does not apply to the {properties[prop]} property '{prop}'",
            )
        if op not in COMPARISON_OPS:
            self.report.error(
                line_of(node, "op", line),
                f"{owner}: unknown operator '{op}' on an aggregate (expected one of "
                f"{', '.join(COMPARISON_OPS)}){did_you_mean(op, COMPARISON_OPS)}",
            )
        if not _is_number(node.get("value")):
            self.report.error(
                line_of(node, "value", line),
                f"{owner}: an aggregate compares with a number, got '{node.get('value')}'",
            )

    def rule(self, owner: str, rule: Any, references: list[tuple[str, int]], line: int) -> None:
        error = self.report.error
        if not isinstance(rule, dict) or len(rule) != 1:
            hint = ""
            if isinstance(rule, dict):
                hint = "".join(did_you_mean(key, RULE_KEYS) for key in rule if key not in RULE_KEYS)
            error(
                line_of(rule, default=line),
                f"{owner}: a rule must be a mapping with exactly one of {', '.join(RULE_KEYS)}, "
                f"got {rule!r}{hint}",
            )
            return
        ((key, spec),) = rule.items()
        key_line = line_of(rule, key, line)
        if key not in RULE_KEYS:
            error(
                key_line,
                f"{owner}: unknown rule key '{key}'{did_you_mean(key, RULE_KEYS)} "
                f"(allowed: {', '.join(RULE_KEYS)})",
            )
        elif key in ("all", "any"):
            if not _is_list(spec) or not spec:
                error(key_line, f"{owner}: '{key}' needs a non-empty list of rules")
                return
            for index, child in enumerate(spec):
                self.rule(owner, child, references, line_of(spec, index, key_line))
        elif key == "not":
            self.rule(owner, spec, references, key_line)
        elif key == "event":
            self.event(owner, spec, key_line)
        elif key == "funnel":
            self.funnel(owner, spec, key_line)
        elif key == "trait":
            self.trait(owner, spec, key_line)
        elif key == "segment":
            if not isinstance(spec, str):
                error(key_line, f"{owner}: 'segment' takes the name of another segment")
            else:
                references.append((spec, key_line))
        elif key == "cluster":
            self.cluster(owner, spec, key_line)

    def event(self, owner: str, spec: Any, line: int) -> None:
        if not self.report.keys(owner, spec, EVENT_KEYS, "an event condition", line):
            return
        properties = self.event_ref(owner, spec)
        self.counts(owner, spec)
        self.window(owner, spec)
        if spec.get("aggregate") is not None and properties:
            self.aggregate(owner, spec, properties)
        follow = spec.get("not_followed_by")
        if follow is not None:
            follow_line = line_of(spec, "not_followed_by")
            if self.report.keys(owner, follow, FOLLOW_KEYS, "not_followed_by", follow_line):
                self.event_ref(owner, follow)
                if follow.get("within") is None:
                    self.report.error(
                        follow_line,
                        f"{owner}: malformed window: not_followed_by needs `within` (e.g. '1h')",
                    )
                else:
                    self.duration(owner, follow, "within", "not_followed_by.within")

    def funnel(self, owner: str, spec: Any, line: int) -> None:
        if not self.report.keys(owner, spec, FUNNEL_KEYS, "a funnel", line):
            return
        steps = spec.get("steps")
        if not _is_list(steps) or len(steps) < 2:
            self.report.error(
                line_of(spec, "steps", line), f"{owner}: a funnel needs a list of at least 2 steps"
            )
            return
        for index, step in enumerate(steps):
            step_line = line_of(steps, index)
            if self.report.keys(owner, step, STEP_KEYS, "a funnel step", step_line):
                self.event_ref(owner, step)
        if spec.get("max_gap") is not None:
            self.duration(owner, spec, "max_gap", "max_gap")
        self.window(owner, spec)

    def trait(self, owner: str, spec: Any, line: int) -> None:
        if not self.report.keys(owner, spec, TRAIT_KEYS, "a trait condition", line):
            return
        name, op = spec.get("name"), spec.get("op")
        if name not in self.columns:
            self.report.error(
                line_of(spec, "name", line),
                f"{owner}: unknown trait '{name}' (not a column of dim_user_profiles)"
                f"{did_you_mean(name, self.columns)}",
            )
        if op not in TRAIT_OPS:
            self.report.error(
                line_of(spec, "op", line),
                f"{owner}: unknown operator '{op}' on trait '{name}' (expected one of "
                f"{', '.join(TRAIT_OPS)}){did_you_mean(op, TRAIT_OPS)}",
            )
            return
        self.value(owner, spec, op, f"trait '{name}'")

    def cluster(self, owner: str, spec: Any, line: int) -> None:
        if not self.report.keys(owner, spec, CLUSTER_KEYS, "a cluster condition", line):
            return
        if not self.clusters_enabled:
            self.report.error(
                line,
                f"{owner}: cluster conditions need the var segment_cluster_conditions: true "
                "(dbt_project.yml; it makes the segments wait on fct_user_clusters)",
            )
        if spec.get("cluster_id") is None and spec.get("cluster_name") is None:
            self.report.error(
                line, f"{owner}: a cluster condition needs cluster_id or cluster_name"
            )
        method = spec.get("method", "kmeans")
        if method not in CLUSTER_METHODS:
            self.report.error(
                line_of(spec, "method", line),
                f"{owner}: unknown cluster method '{method}' (expected kmeans or hierarchical)"
                f"{did_you_mean(method, CLUSTER_METHODS)}",
            )


def clusters_enabled(project_path: Path = PROJECT_PATH) -> tuple[bool, int]:
    """The var segment_cluster_conditions of dbt_project.yml and its line (False when unset)."""
    document = load_marked(project_path.read_text())
    variables = document.get("vars") if isinstance(document, dict) else None
    if not isinstance(variables, dict):
        return False, 0
    return bool(variables.get("segment_cluster_conditions", False)), line_of(
        variables, "segment_cluster_conditions"
    )


def segment_definitions(document: Any) -> Any:
    """config.meta.segments of dim_segments in a parsed segments file (None when absent)."""
    return _meta(_models(document).get(SEGMENTS_MODEL)).get("segments")


def check_segments(
    definitions: Any,
    path: Path = SEGMENTS_PATH,
    events: dict[str, dict[str, str]] | None = None,
    columns: set[str] | None = None,
    known: Iterable[str] = (),
    clusters: bool | None = None,
) -> list[Problem]:
    """Every problem in a list of segment definitions (marked or plain); `known` names segments
    defined elsewhere (the shipped ones, for a preview file) that references may use; `clusters`
    overrides the var segment_cluster_conditions of dbt_project.yml."""
    report = _Reporter(path)
    checker = _SegmentChecker(
        report,
        plan_properties() if events is None else events,
        profile_columns() if columns is None else columns,
        clusters,
    )
    if not _is_list(definitions):
        report.error(line_of(definitions), "segment definitions must be a list of segments")
        return report.problems
    names: dict[str, int] = {}
    edges: dict[str, list[tuple[str, int]]] = {}
    for index, segment in enumerate(definitions):
        line = line_of(definitions, index)
        label = segment.get("name") if isinstance(segment, dict) else None
        owner = f"segment '{label or '#' + str(index + 1)}'"
        if not report.keys(owner, segment, SEGMENT_KEYS, "a segment", line):
            continue
        name = segment.get("name")
        if not isinstance(name, str) or not SNAKE.fullmatch(name):
            report.error(
                line_of(segment, "name", line),
                f"{owner}: name must be snake_case (a-z, 0-9, _), starting with a letter",
            )
        elif name in names:
            report.error(
                line_of(segment, "name", line),
                f"{owner}: duplicate segment name (first defined on line {names[name]})",
            )
        else:
            names[name] = line_of(segment, "name", line)
        for key in ("description", "owner", "rule"):
            if not segment.get(key):
                report.error(line, f"{owner}: missing {key}")
        min_size = segment.get("min_size")
        if min_size is not None and not _is_whole(min_size):
            report.error(
                line_of(segment, "min_size", line),
                f"{owner}: min_size must be a whole number >= 0, got '{min_size}'",
            )
        consent = segment.get("requires_consent", "personalization")
        if consent not in CONSENTS:
            report.error(
                line_of(segment, "requires_consent", line),
                f"{owner}: requires_consent must be one of {', '.join(CONSENTS)}"
                f"{did_you_mean(consent, CONSENTS)}",
            )
        references: list[tuple[str, int]] = []
        if segment.get("rule"):
            checker.rule(owner, segment["rule"], references, line_of(segment, "rule", line))
        if isinstance(name, str):
            edges[name] = references
    defined = [*names, *known]
    for name, references in edges.items():
        for reference, line in references:
            if reference not in defined:
                report.error(
                    line,
                    f"segment '{name}': unknown segment '{reference}' referenced"
                    f"{did_you_mean(reference, defined)}",
                )
    for name in edges:
        cycle = _cycle(name, edges, [name])
        if cycle:
            report.error(names.get(name, 0), f"segment '{name}': cycle between segments: {cycle}")
    return report.problems


def _cycle(name: str, edges: dict[str, list[tuple[str, int]]], path: list[str]) -> str | None:
    for reference, _ in edges.get(name, []):
        if reference == path[0]:
            return " -> ".join([*path, reference])
        if reference not in path:
            found = _cycle(reference, edges, [*path, reference])
            if found:
                return found
    return None


def validate_segments_file(path: Path = SEGMENTS_PATH, known: Iterable[str] = ()) -> list[Problem]:
    """Every problem of a segments YAML file: the dbt properties file, or a bare list (`known`:
    segments defined elsewhere that its rules may reference)."""
    if not path.is_file():
        return [Problem(path, 0, "no such file")]
    try:
        document = load_marked(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        return [Problem(path, (mark.line + 1) if mark else 0, f"invalid YAML: {error}")]
    definitions = document if _is_list(document) else segment_definitions(document)
    if definitions is None:
        return [
            Problem(
                path,
                1,
                f"no segments: expected a list, or config.meta.segments on the model "
                f"{SEGMENTS_MODEL}",
            )
        ]
    return check_segments(definitions, path, known=known)


# --------------------------------------------------------------------------------------------
# Trait catalogue and tracking plan
# --------------------------------------------------------------------------------------------


# Events whose catalogue traits may read the computed property reporting_amount (the order's
# money in the reporting currency, int_order_amounts; catalogue_amount_events in macros/traits.sql).
CATALOGUE_AMOUNT_EVENTS = ("Order Completed", "Order Refunded", "Order Cancelled")


def _window_ok(value: Any) -> bool:
    """A catalogue window: 'all' (or none), or a duration in hours or days."""
    return value in (None, "all") or duration_minutes(value, TRAIT_UNITS) is not None


def derived_problem(expression: Any, known: list[str]) -> str | None:
    """The first problem of a derived trait's expression over the numeric traits `known`
    (defined above it), or None. Grammar: operand (op operand)*, operand = name | number |
    -operand | ( expression ); a negative divisor needs parentheses (as in macros/traits.sql)."""
    if not isinstance(expression, str) or not expression.strip():
        return "type derived needs an expression, e.g. 'revenue_30d - refunds_30d'"
    expect_operand, depth, previous = True, 0, None
    for token in DERIVED_TOKEN.findall(expression):
        if DERIVED_OPERAND.fullmatch(token) and expect_operand:
            if not token[0].isdigit() and token not in known:
                return (
                    f"unknown trait '{token}' in expression{did_you_mean(token, known)} "
                    f"(a numeric trait defined above: {', '.join(known)})"
                )
            expect_operand = False
        elif token == "(" and expect_operand:
            depth += 1
        elif token == "-" and expect_operand and previous != "/":
            pass  # unary minus
        elif token == ")" and not expect_operand and depth > 0:
            depth -= 1
        elif token in "+-*/" and not expect_operand:
            expect_operand = True
        else:
            return (
                f"malformed expression '{expression}' at '{token}' (names of numeric traits, "
                "numbers, + - * / and parentheses; a negative divisor needs parentheses)"
            )
        previous = token
    if expect_operand or depth:
        return f"malformed expression '{expression}' (incomplete or unbalanced parentheses)"
    return None


def validate_catalogue_file(
    path: Path = CATALOGUE_PATH,
    events: dict[str, dict[str, str]] | None = None,
    declared_numeric: list[str] | None = None,
) -> list[Problem]:
    """Every problem of the trait catalogue (the checks of macros/traits.sql, with lines)."""
    document = load_marked(path.read_text())
    traits = _meta(_models(document).get("int_user_catalogue_traits")).get("traits")
    if not _is_list(traits):
        return [
            Problem(path, 1, "no traits: expected config.meta.traits on int_user_catalogue_traits")
        ]
    return check_catalogue(traits, path, events, declared_numeric)


def check_catalogue(
    traits: Any,
    path: Path = CATALOGUE_PATH,
    events: dict[str, dict[str, str]] | None = None,
    declared_numeric: list[str] | None = None,
) -> list[Problem]:
    """Every problem in a list of catalogue traits (marked or plain); a derived trait may name
    the tracking plan's declared numeric traits (declared_numeric; default: the plan's)."""
    events = plan_properties() if events is None else events
    declared_numeric = declared_numeric_traits() if declared_numeric is None else declared_numeric
    report = _Reporter(path)
    if not _is_list(traits):
        report.error(line_of(traits), "the trait catalogue must be a list of traits")
        return report.problems
    seen: dict[str, int] = {}
    for index, trait in enumerate(traits):
        line = line_of(traits, index)
        owner = f"trait '{trait.get('name', '?') if isinstance(trait, dict) else '?'}'"
        if not report.keys(owner, trait, TRAIT_CATALOGUE_KEYS, "a trait", line):
            continue
        name = trait.get("name")
        if not isinstance(name, str) or not SNAKE.fullmatch(name):
            report.error(line_of(trait, "name", line), f"{owner}: name must be snake_case")
        elif name in seen:
            report.error(
                line_of(trait, "name", line), f"{owner}: defined twice (line {seen[name]})"
            )
        else:
            seen[name] = line_of(trait, "name", line)
        trait_type = trait.get("type")
        if trait_type == "derived":
            known = declared_numeric + [
                earlier.get("name")
                for earlier in traits[:index]
                if isinstance(earlier, dict) and earlier.get("type") in NUMERIC_TRAIT_TYPES
            ]
            problem = derived_problem(trait.get("expression"), known)
            if problem:
                report.error(line_of(trait, "expression", line), f"{owner}: {problem}")
            continue
        if trait_type not in TRAIT_TYPES:
            report.error(
                line_of(trait, "type", line),
                f"{owner}: unknown type '{trait_type}'; expected one of {', '.join(TRAIT_TYPES)}"
                f"{did_you_mean(trait_type, TRAIT_TYPES)}",
            )
        event = trait.get("event")
        if event != "page" and event not in events:
            report.error(
                line_of(trait, "event", line),
                f"{owner}: unknown event '{event}' (not in the tracking plan)"
                f"{did_you_mean(event, events)}",
            )
            continue
        known = PAGE_PROPERTIES[1:] if event == "page" else tuple(events[event])
        if event in CATALOGUE_AMOUNT_EVENTS:  # the computed money of macros/traits.sql
            known += ("reporting_amount",)
        needs_property = trait_type in TRAIT_TYPES and trait_type not in (
            "counter",
            "first_at",
            "last_at",
        )
        if needs_property and not trait.get("property"):
            report.error(line, f"{owner}: type {trait_type} needs a property")
        if trait.get("property") is not None:
            # the aggregated property: a condition without an operator
            check_property_condition(
                report.on(owner), trait, event, known, TRAIT_FILTER_OPS, default_op="="
            )
        for condition in trait.get("where") or []:
            if report.keys(owner, condition, FILTER_KEYS, "a where filter", line):
                check_property_condition(
                    report.on(owner), condition, event, known, TRAIT_FILTER_OPS, default_op="="
                )
        if not _window_ok(trait.get("window")):
            report.error(
                line_of(trait, "window", line),
                f"{owner}: bad window '{trait.get('window')}'; use a positive whole number of "
                "hours or days such as '24h' or '7d', or 'all'",
            )
    return report.problems


def validate_tracking_plan_file(path: Path = TRACKING_PLAN_PATH) -> list[Problem]:
    """Keys and property types of the tracking plan's events, with lines."""
    report = _Reporter(path)
    document = load_marked(path.read_text())
    plan = _meta(_models(document).get("stg_tracking_plan")).get("tracking_plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("events"), dict):
        report.error(1, "no events: expected config.meta.tracking_plan.events on stg_tracking_plan")
        return report.problems
    events = plan["events"]
    for event, spec in events.items():
        owner = f"event '{event}'"
        line = line_of(events, event)
        if spec is None:
            continue
        if not report.keys(owner, spec, PLAN_EVENT_KEYS, "an event", line):
            continue
        properties = spec.get("properties") or {}
        if not report.keys(owner, properties, (*properties,), "properties", line):
            continue
        for prop, prop_spec in properties.items():
            prop_owner = f"{owner} property '{prop}'"
            prop_line = line_of(properties, prop, line)
            if not report.keys(prop_owner, prop_spec, PLAN_PROPERTY_KEYS, "a property", prop_line):
                continue
            prop_type = prop_spec.get("type")
            if prop_type not in PROPERTY_TYPES:
                report.error(
                    line_of(prop_spec, "type", prop_line),
                    f"{prop_owner}: type '{prop_type}'; expected one of "
                    f"{', '.join(PROPERTY_TYPES)}{did_you_mean(prop_type, PROPERTY_TYPES)}",
                )
            if "min" in prop_spec and not _is_number(prop_spec["min"]):
                report.error(
                    line_of(prop_spec, "min", prop_line),
                    f"{prop_owner}: min must be a number",
                )
    return report.problems


# --------------------------------------------------------------------------------------------
# dbt vars that replace a file (--vars segment_definitions / trait_catalogue)
# --------------------------------------------------------------------------------------------

VAR_CHECKS = ("segment_definitions", "trait_catalogue")


def key_path_at(node: Any, line: int, prefix: str) -> str | None:
    """The key path ('segment_definitions[0].rule.event.within') of the deepest key or item of a
    marked document on `line`, or None."""
    if isinstance(node, MarkedDict):
        children = [(f"{prefix}.{key}", value, node.lines.get(key)) for key, value in node.items()]
    elif isinstance(node, MarkedList):
        children = [
            (f"{prefix}[{index}]", value, node.lines[index]) for index, value in enumerate(node)
        ]
    else:
        return None
    for path, value, child_line in children:
        deeper = key_path_at(value, line, path)
        if deeper is not None:
            return deeper
        if child_line == line:
            return path
    return None


def _var_plan_events(dbt_vars: dict[str, Any]) -> dict[str, dict[str, str]] | None:
    """The events of a tracking plan given as the var `tracking_plan` (None: the plan file's)."""
    plan = dbt_vars.get("tracking_plan")
    return properties_of(plan) if isinstance(plan, dict) and "events" in plan else None


def _var_profile_columns(dbt_vars: dict[str, Any]) -> set[str]:
    """The profile columns a build with these vars has: the files', plus the traits a var
    `tracking_plan` declares (with _source, _observed_at) and a var `trait_catalogue`'s traits."""
    columns = profile_columns()
    plan = dbt_vars.get("tracking_plan")
    for trait in (plan.get("traits") or {}) if isinstance(plan, dict) else {}:
        columns |= {f"{trait}{suffix}".lower() for suffix in ("", "_source", "_observed_at")}
    catalogue = dbt_vars.get("trait_catalogue")
    for trait in catalogue if isinstance(catalogue, list) else []:
        if isinstance(trait, dict) and trait.get("name"):
            columns.add(str(trait["name"]).lower())
    return columns


def check_dbt_vars(dbt_vars: dict[str, Any]) -> list[Problem]:
    """Problems of the vars that replace a YAML file, checked as the file would be. The value is
    laid out as block YAML to recover the structure's positions; each problem names the var and
    the key path of the offending node (`--vars segment_definitions[0].rule.event.within: ...`)."""
    problems: list[Problem] = []
    for name in VAR_CHECKS:
        if name not in dbt_vars or dbt_vars[name] is None:
            continue
        document = load_marked(yaml.safe_dump(dbt_vars[name], sort_keys=False))
        source = Path(f"--vars {name}")
        if name == "segment_definitions":
            clusters = dbt_vars.get("segment_cluster_conditions")
            found = check_segments(
                document,
                source,
                events=_var_plan_events(dbt_vars),
                columns=_var_profile_columns(dbt_vars),
                clusters=None if clusters is None else bool(clusters),
            )
        else:
            plan = dbt_vars.get("tracking_plan")
            declared = (plan.get("traits") or {}) if isinstance(plan, dict) else None
            found = check_catalogue(
                document,
                source,
                _var_plan_events(dbt_vars),
                None if declared is None else numeric_traits_of(declared),
            )
        problems += [
            Problem(
                source,
                problem.line,
                problem.message,
                where=f"--vars {key_path_at(document, problem.line, name) or name}",
            )
            for problem in found
        ]
    return problems
