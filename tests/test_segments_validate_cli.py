"""`personalization segments validate`: pure Python, no dbt; every error class reported with its
file and line, the allowed keys and a "did you mean" suggestion."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from personalization import cli, warm_dbt
from personalization.dbt_runner import DbtVarsError, Warehouse, run_dbt
from personalization.segments import core, validate
from personalization.segments.validate import check_dbt_vars
from personalization.tracking_plan import TRACKING_PLAN_PATH

# Each case: YAML of a list of segments, the 1-based line the problem is on, and the message.
# Line 1 is the first line of the YAML text.
HEADER = "- name: s\n  description: d\n  owner: o\n  rule:\n"
CASES: dict[str, tuple[str, int, str]] = {
    "misspelt_event": (
        HEADER + "    event: {name: Product Addded, within: 24h}\n",
        5,
        "segment 's': unknown event 'Product Addded' (not in the tracking plan) "
        "(did you mean 'Product Added'?)",
    ),
    "misspelt_rule_key": (
        HEADER + "    evnt: {name: Product Added}\n",
        5,
        "segment 's': unknown rule key 'evnt' (did you mean 'event'?) (allowed: all, any, not, "
        "event, funnel, trait, segment, cluster)",
    ),
    "misspelt_event_key": (
        HEADER + "    event:\n      name: Product Added\n      withn: 24h\n",
        7,
        "segment 's': unknown key 'withn' in an event condition (did you mean 'within'?) "
        "(allowed: name, type, where, min_count, max_count, within, between, not_followed_by, "
        "aggregate)",
    ),
    "misspelt_segment_key": (
        "- name: s\n  descripton: d\n  owner: o\n  rule: {event: {name: Product Added}}\n",
        2,
        "segment 's': unknown key 'descripton' in a segment (did you mean 'description'?) "
        "(allowed: name, description, owner, rule, min_size, requires_consent)",
    ),
    "misspelt_property": (
        HEADER
        + "    event:\n      name: Product Viewed\n      where:\n"
        + "        - {property: prodcut_id, op: '=', value: P1}\n",
        8,
        "segment 's': unknown property 'prodcut_id' for event 'Product Viewed' (not in the "
        "tracking plan) (did you mean 'product_id'?)",
    ),
    "misspelt_operator": (
        HEADER
        + "    event:\n      name: Product Viewed\n      where:\n"
        + "        - property: price\n          op: '=>'\n          value: 10\n",
        9,
        "segment 's': unknown operator '=>' on property 'price' (expected one of =, !=, <, <=, "
        ">, >=, in, not_in, contains, is_set, is_not_set) (did you mean '>='?)",
    ),
    "misspelt_trait": (
        HEADER + "    trait:\n      name: revenu\n      op: '>='\n      value: 10\n",
        6,
        "segment 's': unknown trait 'revenu' (not a column of dim_user_profiles) "
        "(did you mean 'revenue'?)",
    ),
    "misspelt_segment_reference": (
        "- name: high_value\n  description: d\n  owner: o\n  rule: {trait: {name: revenue, op: '>',"
        " value: 1}}\n" + "- name: s\n  description: d\n  owner: o\n  rule:\n"
        "    all:\n      - segment: high_valeu\n",
        10,
        "segment 's': unknown segment 'high_valeu' referenced (did you mean 'high_value'?)",
    ),
    "malformed_window": (
        HEADER + "    event:\n      name: Product Added\n      within: 24x\n",
        7,
        "segment 's': malformed window within '24x' (expected a positive number and a unit m, "
        "h, d or w, e.g. '24h' or '7d')",
    ),
    "relative_between_order": (
        HEADER + "    event:\n      name: Product Added\n      between: {from: 3d, to: 9d}\n",
        7,
        "segment 's': malformed window: between.from '3d' must reach further back than "
        "between.to '9d'",
    ),
    "aggregate_function": (
        HEADER
        + "    event:\n      name: Order Completed\n      aggregate:\n"
        + "        function: summ\n        property: revenue\n        op: '>='\n        value: 1\n",
        8,
        "segment 's': unknown aggregate function 'summ' (expected one of sum, avg, min, max, "
        "count_distinct) (did you mean 'sum'?)",
    ),
    "aggregate_on_text": (
        HEADER
        + "    event:\n      name: Order Completed\n      aggregate:\n"
        + "        function: sum\n        property: currency\n        op: '>='\n        value: 1\n",
        9,
        "segment 's': sum needs a number property; 'currency' is a string",
    ),
    "value_type": (
        HEADER
        + "    event:\n      name: Product Viewed\n      where:\n"
        + "        - {property: price, op: '<', value: ten}\n",
        8,
        "segment 's': property 'price' of event 'Product Viewed' is a number: value 'ten' does "
        "not match (give a number)",
    ),
    "duplicate_name": (
        HEADER
        + "    event: {name: Product Added}\n"
        + HEADER
        + "    event: {name: Product Added}\n",
        6,
        "segment 's': duplicate segment name (first defined on line 1)",
    ),
    "cycle": (
        "- name: a\n  description: d\n  owner: o\n  rule: {segment: b}\n"
        "- name: b\n  description: d\n  owner: o\n  rule: {segment: a}\n",
        1,
        "segment 'a': cycle between segments: a -> b -> a",
    ),
    "cluster_without_var": (
        HEADER + "    cluster: {method: kmeans, cluster_id: 1}\n",
        5,
        "segment 's': cluster conditions need the var segment_cluster_conditions: true "
        "(dbt_project.yml; it makes the segments wait on fct_user_clusters)",
    ),
    "trait_between_order": (
        HEADER + "    trait:\n      name: last_order_at\n      op: between\n"
        "      value: {from: 3d, to: 9d}\n",
        8,
        "segment 's': malformed window: between.from '3d' must reach further back than "
        "between.to '9d'",
    ),
    "array_item_field": (
        HEADER
        + "    event:\n      name: Order Completed\n      where:\n"
        + "        - {property: 'products[].categroy', op: '=', value: toys}\n",
        8,
        "segment 's': unknown item field 'categroy' in 'products[].categroy' (expected one of "
        "product_id, sku, category, name, brand, variant, price, quantity, coupon, position) "
        "(did you mean 'category'?)",
    ),
    "array_on_scalar": (
        HEADER
        + "    event:\n      name: Order Completed\n      where:\n"
        + "        - {property: 'coupon[].category', op: '=', value: toys}\n",
        8,
        "segment 's': 'coupon' is not an array property of event 'Order Completed' "
        "(arrays: products)",
    ),
    "array_item_value_type": (
        HEADER
        + "    event:\n      name: Order Completed\n      where:\n"
        + "        - {property: 'products[].quantity', op: '>=', value: three}\n",
        8,
        "segment 's': property 'products[].quantity' of event 'Order Completed' is a integer: "
        "value 'three' does not match (give a number)",
    ),
    "missing_owner": (
        "- name: s\n  description: d\n  rule: {event: {name: Product Added}}\n",
        1,
        "segment 's': missing owner",
    ),
    "consent": (
        HEADER + "    event: {name: Product Added}\n  requires_consent: advertisng\n",
        6,
        "segment 's': requires_consent must be one of personalization, advertising "
        "(did you mean 'advertising'?)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_error_class_has_file_line_and_suggestion(tmp_path: Path, case: str) -> None:
    text, line, message = CASES[case]
    path = tmp_path / f"{case}.yml"
    path.write_text(text)
    problems = [str(problem) for problem in validate.validate_segments_file(path)]
    assert f"{path}:{line}: {message}" in problems, problems


def test_shipped_files_are_clean_and_checked_in_under_5_seconds() -> None:
    started = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name("personalization")), "segments", "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "tracking plan, trait catalogue, segments: 0 problem(s)" in result.stderr
    assert elapsed < 5, elapsed


def test_command_fails_on_a_bad_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(CASES["misspelt_event"][0])
    assert cli.main(["segments", "validate", str(path)]) == 1
    assert f"{path}:5: segment 's': unknown event 'Product Addded'" in caplog.text
    assert cli.main(["segments", "validate", str(tmp_path / "nowhere.yml")]) == 1


def test_catalogue_and_tracking_plan_problems(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text(
        "version: 2\nmodels:\n  - name: int_user_catalogue_traits\n    config:\n      meta:\n"
        "        traits:\n"
        "          - {name: views_7d, type: countr, event: Product Viewed, window: 7d}\n"
        "          - {name: spend, type: sum, event: Order Complete, property: revenue}\n"
        "          - {name: price_max, type: max, event: Product Viewed, property: prise}\n"
    )
    problems = [str(problem) for problem in validate.validate_catalogue_file(catalogue)]
    assert problems == [
        f"{catalogue}:7: trait 'views_7d': unknown type 'countr'; expected one of counter, sum, "
        "avg, min, max, first, last, most_frequent, unique_list, unique_count, first_at, last_at, "
        "derived "
        "(did you mean 'counter'?)",
        f"{catalogue}:8: trait 'spend': unknown event 'Order Complete' (not in the tracking plan)"
        " (did you mean 'Order Completed'?)",
        f"{catalogue}:9: trait 'price_max': unknown property 'prise' for event 'Product Viewed' "
        "(not in the tracking plan) (did you mean 'price'?)",
    ]
    plan = tmp_path / "plan.yml"
    plan.write_text(
        "version: 2\nmodels:\n  - name: stg_tracking_plan\n    config:\n      meta:\n"
        "        tracking_plan:\n          events:\n            Order Completed:\n"
        "              properties:\n                revenue: {type: numbr, requird: true}\n"
    )
    problems = [str(problem) for problem in validate.validate_tracking_plan_file(plan)]
    assert problems == [
        f"{plan}:10: event 'Order Completed' property 'revenue': unknown key 'requird' in a "
        "property (did you mean 'required'?) (allowed: type, required, min, description)",
        f"{plan}:10: event 'Order Completed' property 'revenue': type 'numbr'; expected one of "
        "string, number, integer, boolean, array, object (did you mean 'number'?)",
    ]


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("spent - refunded", None),
        ("(spent - refunded) / -orders", "at '-'"),
        ("spent / (orders - 1) * 2", None),
        ("spent -", "incomplete or unbalanced parentheses"),
        ("(spent - refunded", "incomplete or unbalanced parentheses"),
        ("spent refunded", "at 'refunded'"),
        ("spent % 2", "at '%'"),
        ("spnt - refunded", "unknown trait 'spnt' in expression (did you mean 'spent'?)"),
        ("spent - later", "unknown trait 'later'"),
        ("spent - favourite", "unknown trait 'favourite'"),
    ],
)
def test_derived_trait_expressions(tmp_path: Path, expression: str, problem: str | None) -> None:
    """Names must be numeric traits defined above; a negative divisor needs parentheses."""
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text(
        "version: 2\nmodels:\n  - name: int_user_catalogue_traits\n    config:\n      meta:\n"
        "        traits:\n"
        "          - {name: spent, type: sum, event: Order Completed, property: revenue}\n"
        "          - {name: refunded, type: sum, event: Order Refunded, property: revenue}\n"
        "          - {name: orders, type: counter, event: Order Completed}\n"
        "          - {name: favourite, type: last, event: Product Viewed, property: name}\n"
        f"          - {{name: net, type: derived, expression: '{expression}'}}\n"
        "          - {name: later, type: counter, event: Order Completed}\n"
    )
    problems = [str(found) for found in validate.validate_catalogue_file(catalogue)]
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and f"{catalogue}:11: trait 'net': " in problems[0], problems
        assert problem in problems[0], problems


def _segment(rule: object) -> dict[str, object]:
    return {"name": "s", "description": "d", "owner": "o", "rule": rule}


# The var route (`--vars segment_definitions` / `trait_catalogue` through any project entry point
# that runs dbt): dbt var -> the problems run_dbt raises before dbt starts.
VAR_CASES: dict[str, tuple[dict[str, object], list[str]]] = {
    "rule_is_a_string": (
        {"segment_definitions": [_segment({"event": "Product Added"})]},
        [
            "--vars segment_definitions[0].rule.event: segment 's': an event condition must be "
            "a mapping, got 'Product Added'"
        ],
    ),
    "malformed_window_deep": (
        {
            "segment_definitions": [
                _segment({"all": [{"event": {"name": "Product Added", "within": "7 days"}}]})
            ]
        },
        [
            "--vars segment_definitions[0].rule.all[0].event.within: segment 's': malformed "
            "window within '7 days' (expected a positive number and a unit m, h, d or w, e.g. "
            "'24h' or '7d')"
        ],
    ),  # fmt: skip
    "misspelt_key_and_event": (
        {"segment_definitions": [_segment({"event": {"name": "Product Addded", "withn": "7d"}})]},
        [
            "--vars segment_definitions[0].rule.event.withn: segment 's': unknown key 'withn' in "
            "an event condition (did you mean 'within'?) (allowed: name, type, where, min_count, "
            "max_count, within, between, not_followed_by, aggregate)",
            "--vars segment_definitions[0].rule.event.name: segment 's': unknown event "
            "'Product Addded' (not in the tracking plan) (did you mean 'Product Added'?)",
        ],
    ),
    "not_a_list": (
        {"segment_definitions": "cart_abandoners"},
        ["--vars segment_definitions: segment definitions must be a list of segments"],
    ),
    "misspelt_reference": (
        {
            "segment_definitions": [
                _segment({"trait": {"name": "revenue", "op": ">", "value": 1}}),
                {**_segment({"segment": "z"}), "name": "t"},
            ]
        },
        ["--vars segment_definitions[1].rule.segment: segment 't': unknown segment 'z' referenced"],
    ),  # fmt: skip
    "cluster_allowed_by_var": (
        {
            "segment_definitions": [_segment({"cluster": {"cluster_id": 1}})],
            "segment_cluster_conditions": True,
        },
        [],
    ),
    "catalogue_misspelt_type": (
        {"trait_catalogue": [{"name": "x", "type": "countr", "event": "Order Completed"}]},
        [
            "--vars trait_catalogue[0].type: trait 'x': unknown type 'countr'; expected one of "
            "counter, sum, avg, min, max, first, last, most_frequent, unique_list, unique_count, "
            "first_at, last_at, derived (did you mean 'counter'?)"
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(VAR_CASES))
def test_file_vars_are_checked_before_dbt_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """run_dbt (every entry point's way to dbt) refuses a bad var with the var, the key path and
    a suggestion, and starts no dbt process; a good var reaches dbt."""
    dbt_vars, expected = VAR_CASES[case]
    started: list[object] = []

    def fake_run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        started.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(warm_dbt, "_enabled", False)  # a dbt process, which fake_run stands in for
    warehouse = Warehouse(
        tmp_path / "w.duckdb", tmp_path / "landing", tmp_path / "target", "2026-01-01"
    )
    if expected:
        with pytest.raises(DbtVarsError) as raised:
            run_dbt(["compile"], warehouse, dict(dbt_vars))
        assert str(raised.value).splitlines()[1:] == expected
        assert started == []
    else:
        run_dbt(["compile"], warehouse, dict(dbt_vars))
        assert len(started) == 1


def test_file_vars_see_the_traits_a_var_plan_declares() -> None:
    """A segment on a trait declared by a var `tracking_plan` (as tests and own-data users feed
    plans) passes the check that dbt would pass; without the declaration it is refused."""
    models = yaml.safe_load(TRACKING_PLAN_PATH.read_text())["models"]
    plan = next(m for m in models if m["name"] == "stg_tracking_plan")["config"]["meta"]
    segment = {"name": "rich", "description": "d", "owner": "o",
               "rule": {"trait": {"name": "income_band", "op": "=", "value": "high"}}}  # fmt: skip
    declaring = {**plan["tracking_plan"], "traits": {"income_band": {"type": "string"}}}
    assert check_dbt_vars({"tracking_plan": declaring, "segment_definitions": [segment]}) == []
    (problem,) = check_dbt_vars({"segment_definitions": [segment]})
    assert "unknown trait 'income_band'" in problem.message
    # a var catalogue's derived trait may name the var plan's declared numeric trait
    numeric = {**plan["tracking_plan"], "traits": {"household_size": {"type": "integer"}}}
    derived = [{"name": "per_member", "type": "derived", "expression": "2 / household_size"}]
    assert check_dbt_vars({"tracking_plan": numeric, "trait_catalogue": derived}) == []
    assert check_dbt_vars({"trait_catalogue": derived})


def test_traits_and_segments_share_the_core(tmp_path: Path) -> None:
    """One duration parser (segments m/h/d/w, catalogue h/d) and one property-condition checker:
    the catalogue's where filters get the segments' messages and suggestions."""
    assert core.duration_minutes("30m") == 30
    assert core.duration_minutes("2w") == 20160
    assert core.duration_minutes("30m", core.TRAIT_UNITS) is None
    assert core.duration_minutes("7d", core.TRAIT_UNITS) == 10080
    assert core.duration_minutes("0d") is None and core.duration_minutes(7) is None
    assert core.sql_literal("O'Brien") == "'O''Brien'" and core.sql_literal(2.5) == "2.5"
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text(
        "version: 2\nmodels:\n  - name: int_user_catalogue_traits\n    config:\n      meta:\n"
        "        traits:\n"
        "          - name: cheap_views\n            type: counter\n"
        "            event: Product Viewed\n"
        "            window: 30m\n            where:\n"
        "              - {property: prise, op: '<', value: 10}\n"
        "              - {property: price, op: '=<', value: 10}\n"
    )
    problems = [str(problem) for problem in validate.validate_catalogue_file(catalogue)]
    assert problems == [
        f"{catalogue}:12: trait 'cheap_views': unknown property 'prise' for event 'Product Viewed' "
        "(not in the tracking plan) (did you mean 'price'?)",
        f"{catalogue}:13: trait 'cheap_views': unknown operator '=<' on property 'price' (expected "
        "one of =, !=, <, <=, >, >=, in, not_in) (did you mean '<='?)",
        f"{catalogue}:10: trait 'cheap_views': bad window '30m'; use a positive whole number of "
        "hours or days such as '24h' or '7d', or 'all'",
    ]
