"""Load the tracking plan (models/staging/tracking_plan.yml) shared by dbt and the tooling."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRACKING_PLAN_PATH = PROJECT_ROOT / "models" / "staging" / "tracking_plan.yml"
PROPERTY_TYPES = ("string", "number", "integer", "boolean", "array", "object")
TRAIT_TYPES = ("string", "integer", "number", "boolean", "date")


@dataclass(frozen=True)
class PropertyRule:
    name: str
    type: str
    required: bool = False
    min: float | None = None


@dataclass(frozen=True)
class DeclaredTrait:
    """A custom identify trait the analyst declared (`traits:`): a profile column."""

    name: str
    type: str
    accepted: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    pii: bool = False


@dataclass(frozen=True)
class TrackingPlan:
    events: dict[str, tuple[PropertyRule, ...]]
    trait_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    traits: tuple[DeclaredTrait, ...] = ()
    # per event: groups of properties of which at least one must be present
    required_one_of: dict[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

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
    required_one_of: dict[str, tuple[tuple[str, ...], ...]] = {}
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
        groups = tuple(tuple(group) for group in (spec or {}).get("required_one_of") or [])
        for group in groups:
            unknown = set(group) - {rule.name for rule in rules}
            if unknown:
                raise TrackingPlanError(
                    f"{path}: event {event!r} required_one_of names undeclared {sorted(unknown)}"
                )
        if groups:
            required_one_of[event] = groups
    return TrackingPlan(
        events=events,
        trait_rules=raw.get("trait_rules") or {},
        traits=_declared_traits(path, raw.get("traits") or {}),
        required_one_of=required_one_of,
    )


def _declared_traits(path: Path, raw: dict[str, Any]) -> tuple[DeclaredTrait, ...]:
    traits = []
    for name, spec in raw.items():
        spec = spec or {}
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            raise TrackingPlanError(f"{path}: trait {name!r}: name must be snake_case")
        if spec.get("type") not in TRAIT_TYPES:
            raise TrackingPlanError(
                f"{path}: trait {name!r} has type {spec.get('type')!r}; "
                f"expected one of {', '.join(TRAIT_TYPES)}"
            )
        for bound in ("min", "max"):
            if spec.get(bound) is not None and not isinstance(spec[bound], int | float):
                raise TrackingPlanError(f"{path}: trait {name!r}: {bound} must be a number")
        traits.append(
            DeclaredTrait(
                name=name,
                type=spec["type"],
                accepted=tuple(str(value) for value in spec.get("accepted") or ()),
                min=spec.get("min"),
                max=spec.get("max"),
                pii=bool(spec.get("pii")),
            )
        )
    return tuple(traits)
