"""Tracking-plan values reach SQL as quoted literals (issue 12, item 6): quotes, semicolons and
comment markers in event names, property names, accepted values and declared traits are plain
values - every fixture line keeps its verdict and every valid trait its value."""

from __future__ import annotations

import re

import pytest
import yaml
from conftest import FIXTURE_LANDING, make_warehouse, query
from test_staging_rules import DAY_ONE, LINE_VERDICTS

from personalization.dbt_runner import run_dbt
from personalization.tracking_plan import (
    TRACKING_PLAN_PATH,
    TrackingPlanError,
    load_tracking_plan,
)

HOSTILE = ["x') or ('1'='1", "a; drop table staging.stg_events; --", "-- c", "/* d */", 'q"uote']


def hostile_plan() -> dict:
    document = yaml.safe_load(TRACKING_PLAN_PATH.read_text())
    model = next(m for m in document["models"] if m["name"] == "stg_tracking_plan")
    plan = model["config"]["meta"]["tracking_plan"]
    plan["trait_rules"]["gender"]["accepted"] += HOSTILE
    plan["events"]["Evil'); --"] = {
        "properties": {
            "na'me\"; --": {"type": "string", "required": True},
            "/* x */": {"type": "number", "min": 0},
        }
    }
    plan["traits"] = {"tier": {"type": "string", "accepted": HOSTILE}}
    return plan


def test_hostile_plan_values_change_no_verdict_and_null_no_trait(tmp_path):
    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    run_dbt(
        [
            "build",
            "--select",
            "+stg_events",
            "stg_tracking_plan",
            "--exclude-resource-type",
            "unit_test",
        ],
        warehouse,
        dbt_vars={"tracking_plan": hostile_plan()},
    )
    rows = query(
        warehouse,
        "select line_number, status, reasons from staging.stg_landing__events_checked "
        f"where file_path = '{DAY_ONE}'",
    )
    verdicts = {line: (status, sorted(reasons)) for line, status, reasons in rows}
    assert verdicts == {line: (status, sorted(reasons)) for line, status, reasons in LINE_VERDICTS}
    genders = query(
        warehouse,
        "select message_id, trait_gender, trait_issues from staging.stg_landing__events_checked "
        "where message_id in ('ok-identify', 'trait-invalid_gender') order by 1",
    )
    assert genders == [
        ("ok-identify", "female", []),
        ("trait-invalid_gender", None, ["invalid_gender"]),
    ]
    plan_rows = query(
        warehouse,
        "select property_name, property_type, minimum_value from staging.stg_tracking_plan "
        "where event_name = 'Evil''); --' order by 1",
    )
    assert plan_rows == [("/* x */", "number", 0.0), ("na'me\"; --", "string", None)]


def write_plan(path, plan: dict) -> None:
    document = {
        "version": 2,
        "models": [{"name": "stg_tracking_plan", "config": {"meta": {"tracking_plan": plan}}}],
    }
    path.write_text(yaml.safe_dump(document))


def test_declared_traits_and_required_groups_load(tmp_path):
    plan = hostile_plan()
    path = tmp_path / "plan.yml"
    write_plan(path, plan)
    loaded = load_tracking_plan(path)
    assert [(t.name, t.type, t.accepted) for t in loaded.traits] == [
        ("tier", "string", tuple(HOSTILE))
    ]
    assert loaded.required_one_of == {"Order Completed": (("revenue", "total"),)}


@pytest.mark.parametrize(
    ("traits", "message"),
    [
        ({"Income Band": {"type": "string"}}, "trait 'Income Band': name must be snake_case"),
        ({"tier": {"type": "colour"}}, "trait 'tier' has type 'colour'"),
        ({"tier": {"type": "integer", "min": "1; drop"}}, "trait 'tier': min must be a number"),
    ],
)
def test_a_bad_declared_trait_fails_with_its_name(tmp_path, traits, message):
    path = tmp_path / "plan.yml"
    write_plan(path, {**hostile_plan(), "traits": traits})
    with pytest.raises(TrackingPlanError, match=re.escape(message)):
        load_tracking_plan(path)
