"""Load the tracking plan (models/staging/tracking_plan.yml) shared by dbt and the tooling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRACKING_PLAN_PATH = PROJECT_ROOT / "models" / "staging" / "tracking_plan.yml"
PROPERTY_TYPES = ("string", "number", "integer", "boolean", "array", "object")


@dataclass(frozen=True)
class PropertyRule:
    name: str
    type: str
    required: bool = False
    min: float | None = None


@dataclass(frozen=True)
class TrackingPlan:
    events: dict[str, tuple[PropertyRule, ...]]
    trait_rules: dict[str, dict[str, Any]] = field(default_factory=dict)

    def required(self, event: str) -> list[PropertyRule]:
        return [rule for rule in self.events[event] if rule.required]


class TrackingPlanError(ValueError):
    """The tracking plan file is malformed; the message names the event and property."""


def load_tracking_plan(path: Path = TRACKING_PLAN_PATH) -> TrackingPlan:
    document = yaml.safe_load(path.read_text())
    models = {model["name"]: model for model in document.get("models", [])}
    try:
        raw = models["stg_tracking_plan"]["config"]["meta"]["tracking_plan"]
    except KeyError as missing:
        raise TrackingPlanError(f"{path}: no config.meta.tracking_plan on stg_tracking_plan") from (
            missing
        )
    events: dict[str, tuple[PropertyRule, ...]] = {}
    for event, spec in (raw.get("events") or {}).items():
        rules = []
        for prop, prop_spec in ((spec or {}).get("properties") or {}).items():
            prop_type = prop_spec.get("type")
            if prop_type not in PROPERTY_TYPES:
                raise TrackingPlanError(
                    f"{path}: event {event!r} property {prop!r} has type {prop_type!r}; "
                    f"expected one of {', '.join(PROPERTY_TYPES)}"
                )
            rules.append(
                PropertyRule(prop, prop_type, bool(prop_spec.get("required")), prop_spec.get("min"))
            )
        events[event] = tuple(rules)
    return TrackingPlan(events=events, trait_rules=raw.get("trait_rules") or {})
