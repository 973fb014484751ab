"""The core shared by the segment and the trait-catalogue validators (validate.py).

One duration parser (segment windows take m/h/d/w, catalogue windows h/d, as the macros do), one
set of operator lists, one SQL quoting function and one property-condition checker, so a rule
written for a trait and one written for a segment are read the same way. The Jinja side mirrors
these in macros/segments/segment_definitions.sql (segment_grammar, segment_window_minutes) and
segment_compile.sql (segment_literal); macros/traits.sql still has its own copies (see
docs/segments.md, "Shared core").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

# ---- operators ---------------------------------------------------------------------------------
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
LIST_OPS = ("in", "not_in")
PRESENCE_OPS = ("is_set", "is_not_set")
TIME_OPS = ("within", "not_within", "between")
# a where filter on an event property (segments)
PROPERTY_OPS = (*COMPARISON_OPS, *LIST_OPS, "contains", *PRESENCE_OPS)
# a trait condition of a segment (timestamp traits also take the time operators)
TRAIT_OPS = (*PROPERTY_OPS, *TIME_OPS)
# an item of an array property (`products[].category`)
ARRAY_ITEM_OPS = (*COMPARISON_OPS, *LIST_OPS, "contains")
# a where filter of a catalogue trait (macros/traits.sql, trait_filter_ops)
TRAIT_FILTER_OPS = (*COMPARISON_OPS, *LIST_OPS)

# ---- durations ---------------------------------------------------------------------------------
DURATION_UNITS = {"m": 1, "h": 60, "d": 1440, "w": 10080}
SEGMENT_UNITS = "mhdw"  # segment windows: 30m, 24h, 7d, 2w
TRAIT_UNITS = "hd"  # catalogue windows: 24h, 7d (or 'all')
_DURATION = re.compile(r"([1-9][0-9]*)([a-z])")


def duration_minutes(value: Any, units: str = SEGMENT_UNITS) -> int | None:
    """'30m', '24h', '7d', '2w' in minutes (only the given units); None when malformed."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or match.group(2) not in units:
        return None
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def duration_message(value: Any, what: str, units: str = SEGMENT_UNITS) -> str:
    """The message for a malformed duration `what` (e.g. 'window within'), naming the units."""
    names = ", ".join(units[:-1]) + f" or {units[-1]}" if len(units) > 1 else units
    return (
        f"malformed {what} '{value}' (expected a positive number and a unit {names}, "
        "e.g. '24h' or '7d')"
    )


# ---- quoting -----------------------------------------------------------------------------------
def sql_literal(value: Any) -> str:
    """A YAML scalar as a SQL literal, as the macros write it: booleans and numbers bare, anything
    else a string with its quotes doubled (nothing else can escape)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


# ---- suggestions -------------------------------------------------------------------------------
def did_you_mean(value: Any, options: Any) -> str:
    """' (did you mean 'x'?)' for the closest option, or ''."""
    if not isinstance(value, str):
        return ""
    names = [str(option) for option in options]
    # transposed characters first ('=>' is '>='), then the closest spelling
    matches = [name for name in names if sorted(name) == sorted(value)]
    matches = matches or difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


# ---- property conditions -----------------------------------------------------------------------
Report = Callable[[Any, str, str], None]  # (node, key, message)


def check_property_condition(
    report: Report,
    item: Mapping[str, Any],
    label: str,
    properties: Mapping[str, Any],
    ops: tuple[str, ...],
    default_op: str | None = None,
) -> tuple[str, str] | None:
    """{property, op} of a where filter against the properties of event `label`: an unknown
    property or operator is reported (with a suggestion) on its key; (property, op) when both
    are known, else None."""
    prop, op = item.get("property"), item.get("op", default_op)
    if prop not in properties:
        report(
            item,
            "property",
            f"unknown property '{prop}' for event '{label}' (not in the tracking plan)"
            f"{did_you_mean(prop, properties)}",
        )
        return None
    if op not in ops:
        report(
            item,
            "op",
            f"unknown operator '{op}' on property '{prop}' (expected one of {', '.join(ops)})"
            f"{did_you_mean(op, ops)}",
        )
        return None
    return str(prop), str(op)
