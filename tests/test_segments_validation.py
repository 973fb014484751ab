"""Segment definitions are validated at compile time, before any SQL runs: every kind of bad
rule fails with a message naming the segment and the problem."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from conftest import FIXTURE_LANDING, FIXTURES

from personalization.tracking_plan import PROJECT_ROOT


def segment(name: str, rule: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", "owner": "o", "rule": rule, **extra}


VIEWED = {"event": {"name": "Product Viewed", "within": "24h"}}

# case -> (definitions, expected message; None = compiles)
CASES: dict[str, tuple[list[dict[str, Any]] | None, str | None]] = {
    # no var: the shipped models/marts/segments/segments.yml
    "shipped_file": (None, None),
    "valid": (
        [
            segment("viewers", VIEWED, min_size=5),
            segment(
                "viewers_de",
                {
                    "all": [
                        {"segment": "viewers"},
                        {"trait": {"name": "country", "op": "=", "value": "DE"}},
                    ]
                },
            ),
        ],
        None,
    ),
    "unknown_event": (
        [segment("cart_abandoners", {"event": {"name": "Product Addded", "within": "24h"}})],
        "segment 'cart_abandoners': unknown event 'Product Addded' (not in the tracking plan)",
    ),
    "unknown_event_in_funnel": (
        [
            segment(
                "f",
                {"funnel": {"steps": [{"name": "Product Viewed"}, {"name": "Checkout Startd"}]}},
            )
        ],
        "segment 'f': unknown event 'Checkout Startd' (not in the tracking plan)",
    ),
    "unknown_event_type": (
        [segment("clicks", {"event": {"type": "click"}})],
        "segment 'clicks': unknown event type 'click'",
    ),
    "unknown_trait": (
        [segment("vip", {"trait": {"name": "lifetime_value", "op": ">", "value": 100}})],
        "segment 'vip': unknown trait 'lifetime_value' (not a column of dim_user_profiles)",
    ),
    "unknown_property": (
        [
            segment(
                "red",
                {
                    "event": {
                        "name": "Product Viewed",
                        "where": [{"property": "colour", "op": "=", "value": "red"}],
                    }
                },
            )
        ],
        "segment 'red': unknown property 'colour' for event 'Product Viewed' "
        "(not in the tracking plan)",
    ),
    "unknown_property_operator": (
        [
            segment(
                "p1",
                {
                    "event": {
                        "name": "Product Viewed",
                        "where": [{"property": "product_id", "op": "~=", "value": "P1"}],
                    }
                },
            )
        ],
        "segment 'p1': unknown operator '~=' on property 'product_id'",
    ),
    "unknown_trait_operator": (
        [segment("rich", {"trait": {"name": "revenue", "op": "like", "value": 5}})],
        "segment 'rich': unknown operator 'like' on trait 'revenue'",
    ),
    "operator_on_array_property": (
        [
            segment(
                "o",
                {
                    "event": {
                        "name": "Order Completed",
                        "where": [{"property": "products", "op": "=", "value": "P1"}],
                    }
                },
            )
        ],
        "segment 'o': operator '=' does not apply to the array property 'products'",
    ),
    "number_property_with_text": (
        [
            segment(
                "cheap",
                {
                    "event": {
                        "name": "Product Viewed",
                        "where": [{"property": "price", "op": "<", "value": "ten"}],
                    }
                },
            )
        ],
        "segment 'cheap': property 'price' of event 'Product Viewed' is a number: "
        "value 'ten' does not match (give a number)",
    ),
    "string_property_with_number": (
        [
            segment(
                "p5",
                {
                    "event": {
                        "name": "Product Viewed",
                        "where": [{"property": "product_id", "op": "in", "value": ["P1", 5]}],
                    }
                },
            )
        ],
        "segment 'p5': property 'product_id' of event 'Product Viewed' is a string: "
        "value '5' does not match (quote it)",
    ),
    "in_without_list": (
        [segment("cats", {"trait": {"name": "country", "op": "in", "value": "DE"}})],
        "segment 'cats': operator 'in' on trait 'country' needs a non-empty list value",
    ),
    "malformed_window_unit": (
        [segment("w", {"event": {"name": "Product Viewed", "within": "24x"}})],
        "segment 'w': malformed window within '24x'",
    ),
    "malformed_window_number": (
        [segment("w", {"event": {"name": "Product Viewed", "within": 24}})],
        "segment 'w': malformed window within '24'",
    ),
    "malformed_window_between_order": (
        [
            segment(
                "w",
                {
                    "event": {
                        "name": "Product Viewed",
                        "between": {"start": "2026-01-05T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                    }
                },
            )
        ],
        "segment 'w': malformed window: between.start '2026-01-05T00:00:00Z' "
        "is not before between.end",
    ),
    "malformed_window_between_text": (
        [
            segment(
                "w",
                {
                    "event": {
                        "name": "Product Viewed",
                        "between": {"start": "yesterday", "end": "2026-01-01T00:00:00Z"},
                    }
                },
            )
        ],
        "segment 'w': malformed window: between.start 'yesterday' is not an ISO 8601 timestamp",
    ),
    "malformed_window_both": (
        [
            segment(
                "w",
                {
                    "event": {
                        "name": "Product Viewed",
                        "within": "1d",
                        "between": {"start": "2026-01-01", "end": "2026-01-02"},
                    }
                },
            )
        ],
        "segment 'w': malformed window: give `within` or `between`, not both",
    ),
    "malformed_max_gap": (
        [
            segment(
                "f",
                {
                    "funnel": {
                        "steps": [{"name": "Product Viewed"}, {"name": "Product Added"}],
                        "max_gap": "soon",
                    }
                },
            )
        ],
        "segment 'f': malformed window max_gap 'soon'",
    ),
    "follow_up_without_window": (
        [
            segment(
                "a",
                {
                    "event": {
                        "name": "Product Added",
                        "not_followed_by": {"name": "Order Completed"},
                    }
                },
            )
        ],
        "segment 'a': malformed window: not_followed_by needs `within`",
    ),
    "cycle": (
        [segment("a", {"segment": "b"}), segment("b", {"any": [VIEWED, {"segment": "a"}]})],
        "segment 'a': cycle between segments: a -> b -> a",
    ),
    "self_reference": (
        [segment("me", {"all": [VIEWED, {"not": {"segment": "me"}}]})],
        "segment 'me': cycle between segments: me -> me",
    ),
    "unknown_segment_reference": (
        [segment("a", {"segment": "nobody"})],
        "segment 'a': unknown segment 'nobody' referenced",
    ),
    "duplicate_name": (
        [segment("dup", VIEWED), segment("dup", VIEWED)],
        "segment 'dup': duplicate segment name",
    ),
    "bad_name": (
        [segment("Cart Abandoners", VIEWED)],
        "segment 'Cart Abandoners': name must be snake_case",
    ),
    "unknown_rule_key": (
        [segment("e", {"either": [VIEWED]})],
        "segment 'e': unknown rule key 'either'",
    ),
    "two_rule_keys": (
        [segment("e", {**VIEWED, "trait": {"name": "orders", "op": ">", "value": 1}})],
        "segment 'e': a rule must be a mapping with exactly one of",
    ),
    "min_above_max": (
        [segment("c", {"event": {"name": "Product Viewed", "min_count": 3, "max_count": 1}})],
        "segment 'c': min_count 3 is above max_count 1",
    ),
    "bad_min_size": (
        [segment("s", VIEWED, min_size=-1)],
        "segment 's': min_size must be a whole number >= 0",
    ),
    "missing_owner": (
        [{"name": "s", "description": "d", "rule": VIEWED}],
        "segment 's': missing owner",
    ),
    "unknown_consent": (
        [segment("s", VIEWED, requires_consent="none")],
        "segment 's': requires_consent must be one of personalization, advertising",
    ),
    "unknown_aggregate_function": (
        [
            segment(
                "a",
                {
                    "event": {
                        "name": "Order Completed",
                        "aggregate": {
                            "function": "median",
                            "property": "revenue",
                            "op": ">=",
                            "value": 1,
                        },
                    }
                },
            )
        ],
        "segment 'a': unknown aggregate function 'median'",
    ),
    "aggregate_on_text": (
        [
            segment(
                "a",
                {
                    "event": {
                        "name": "Order Completed",
                        "aggregate": {
                            "function": "sum",
                            "property": "currency",
                            "op": ">=",
                            "value": 1,
                        },
                    }
                },
            )
        ],
        "segment 'a': sum needs a number property; 'currency' is a string",
    ),
    "array_item_field": (
        [
            segment(
                "b",
                {
                    "event": {
                        "name": "Order Completed",
                        "where": [{"property": "products[].colour", "op": "=", "value": "red"}],
                    }
                },
            )
        ],
        "segment 'b': unknown item field 'colour' in 'products[].colour'",
    ),
    "array_on_scalar": (
        [
            segment(
                "b",
                {
                    "event": {
                        "name": "Order Completed",
                        "where": [{"property": "coupon[].category", "op": "=", "value": "x"}],
                    }
                },
            )
        ],
        "segment 'b': 'coupon' is not an array property of event 'Order Completed'",
    ),
    "relative_between_order": (
        [segment("w", {"event": {"name": "Product Added", "between": {"from": "3d", "to": "9d"}}})],
        "segment 'w': malformed window: between.from '3d' must reach further back than",
    ),
    "trait_between_shape": (
        [segment("t", {"trait": {"name": "first_seen_at", "op": "between", "value": "7d"}})],
        "segment 't': operator 'between' on trait 'first_seen_at' needs {from: D, to: D}",
    ),
    # the compile-time checks suggest too (edit distance in Jinja; difflib in Python)
    "did_you_mean_key": (
        [segment("k", {"event": {"name": "Product Added", "withn": "24h"}})],
        "--vars segment_definitions: segment 'k': unknown key 'withn' in an event condition "
        "(did you mean 'within'?) (expected one of",
    ),
    "did_you_mean_reference": (
        [segment("viewers", VIEWED), segment("r", {"segment": "viewrs"})],
        "segment 'r': unknown segment 'viewrs' referenced (did you mean 'viewers'?)",
    ),
    "did_you_mean_event": (
        [segment("e", {"event": {"name": "Order Complete"}})],
        "segment 'e': unknown event 'Order Complete' (not in the tracking plan) "
        "(did you mean 'Order Completed'?)",
    ),
    # plain `dbt compile --vars '{segment_definitions: ...}'`: dbt parses under the var, and used
    # to compile the unvalidated rules there ("'str object' has no attribute 'get'", "segment
    # '?'"); now the rules compile only after validation, and the error names the var
    "parse_rule_is_a_string": (
        [segment("s", {"event": "Product Added"})],
        "--vars segment_definitions: segment 's': an event condition must be a mapping, "
        "got 'Product Added'",
    ),
    "parse_malformed_window": (
        [segment("s", {"all": [VIEWED, {"event": {"name": "Product Added", "within": "7 days"}}]})],
        "--vars segment_definitions: segment 's': malformed window within '7 days' (expected a "
        "positive number and a unit m, h, d or w",
    ),
    "cluster_without_var": (
        [segment("k", {"cluster": {"method": "kmeans", "cluster_id": 1}})],
        "segment 'k': cluster conditions need the var segment_cluster_conditions: true",
    ),
    "unknown_cluster_method": (
        [segment("k", {"cluster": {"method": "dbscan", "cluster_id": 1}})],
        "segment 'k': unknown cluster method 'dbscan'",
    ),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    root = tmp_path_factory.mktemp("segment_validation")
    cases = root / "cases.json"
    cases.write_text(json.dumps({name: definitions for name, (definitions, _) in CASES.items()}))
    env = {
        **os.environ,
        "PERSONALIZATION_DB": str(root / "empty.duckdb"),
        "DBT_LOG_PATH": str(root / "logs"),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(FIXTURES / "segments" / "compile_cases.py"),
            str(cases),
            str(root / "target"),
            str(FIXTURE_LANDING),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_segment_validation(outcomes: dict[str, str | None], case: str) -> None:
    expected = CASES[case][1]
    if expected is None:
        assert outcomes[case] is None
    else:
        assert outcomes[case] is not None, f"{case} compiled but should fail"
        assert expected in outcomes[case]
        # raised by the validation, before any SQL ran, and never a raw Jinja error
        assert "Compilation Error" in outcomes[case]
        assert "has no attribute" not in outcomes[case]
        assert "segment '?'" not in outcomes[case]


MACRO = re.compile(r"{%-?\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*(?:\[[^\]]*\][^)]*)*)\)")


def _argument_names(signature: str) -> list[str]:
    """Argument names of a macro signature (defaults may hold lists with commas)."""
    names, depth, current = [], 0, ""
    for char in signature + ",":
        depth += char in "[({"
        depth -= char in "])}"
        if char == "," and depth == 0:
            if current.strip():
                names.append(current.split("=")[0].strip())
            current = ""
        else:
            current += char
    return names


def test_every_macro_is_documented_with_arguments_and_an_example() -> None:
    """Each macro (adapter implementations x__y aside: their dispatcher is documented) has an
    entry in a macros YAML file with an example in its description and its arguments in order."""
    macros_dir = PROJECT_ROOT / "macros"
    documented: dict[str, dict[str, Any]] = {}
    for path in macros_dir.rglob("*.yml"):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("macros") or []:
            assert entry["name"] not in documented, f"{entry['name']} documented twice"
            documented[entry["name"]] = entry
    problems, checked = [], 0
    for path in sorted(macros_dir.rglob("*.sql")):
        for name, signature in MACRO.findall(path.read_text()):
            if "__" in name:
                continue
            checked += 1
            entry = documented.get(name)
            if entry is None:
                problems.append(f"{path.name}: {name} is not documented")
                continue
            if "Example" not in (entry.get("description") or ""):
                problems.append(f"{path.name}: {name} has no example")
            arguments = [argument["name"] for argument in entry.get("arguments") or []]
            if arguments != _argument_names(signature):
                problems.append(f"{path.name}: {name} documents {arguments}, takes {signature}")
    assert problems == []
    assert checked > 60
