"""Descriptions of the trait columns of dim_user_profiles, generated rather than hand-copied.

Two files declare profile columns that analysts edit: the trait catalogue
(models/intermediate/profiles/trait_catalogue.yml: one column per computed trait) and the
tracking plan's declared traits (models/staging/tracking_plan.yml `traits:`: a column with its
`_source` and `_observed_at`). Their descriptions are written from those definitions into a
marked block of models/marts/profiles/_profiles__models.yml, so dbt's manifest, `dbt docs`, the
DuckDB column comments (persist_docs) and Dagster all carry them. `make column-docs` rewrites the
block; tests/test_mart_docs.py fails while the block is out of date.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from personalization.tracking_plan import PROJECT_ROOT, DeclaredTrait, load_tracking_plan

log = logging.getLogger(__name__)

CATALOGUE_PATH = PROJECT_ROOT / "models" / "intermediate" / "profiles" / "trait_catalogue.yml"
PROFILES_YML = PROJECT_ROOT / "models" / "marts" / "profiles" / "_profiles__models.yml"
BEGIN = (
    "      # BEGIN generated trait columns (make column-docs; edit the catalogue or plan instead)"
)
END = "      # END generated trait columns"
INDENT = "      "

_AGGREGATES = {
    "sum": "Sum of {prop} over {events}",
    "avg": "Average {prop} over {events}",
    "min": "Smallest {prop} among {events}",
    "max": "Largest {prop} among {events}",
    "first": "The {prop} of the earliest of the {events}",
    "last": "The {prop} of the latest of the {events}",
    "most_frequent": "Most frequent {prop} (ties: the smallest value) among {events}",
    "unique_list": "The list of distinct values of {prop} among {events}",
    "unique_count": "Number of distinct values of {prop} among {events}",
}


class ColumnDocsError(RuntimeError):
    """The generated block is missing from the property file."""


def load_catalogue(path: Path = CATALOGUE_PATH) -> list[dict[str, Any]]:
    """The catalogue's traits (the `meta.traits` of int_user_catalogue_traits)."""
    document = yaml.safe_load(path.read_text())
    (model,) = [m for m in document["models"] if m["name"] == "int_user_catalogue_traits"]
    return list(model["config"]["meta"]["traits"])


def _condition(where: list[dict[str, Any]]) -> str:
    parts = []
    for clause in where:
        value = clause["value"]
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        operator = {"in": "in", "not_in": "not in"}.get(clause["op"], clause["op"])
        parts.append(f"{clause['property']} {operator} {shown}")
    return " and ".join(parts)


def describe_trait(trait: dict[str, Any]) -> str:
    """One sentence from a catalogue entry: what is counted or aggregated, over which events and
    window (relative to the var as_of)."""
    kind = trait["type"]
    source = "catalogue trait (trait_catalogue.yml)"
    if kind == "derived":
        return f"{trait['expression']} (null on division by zero). Derived {source}."
    event = "page views" if trait["event"] == "page" else f"{trait['event']} events"
    if trait.get("where"):
        event += f" with {_condition(trait['where'])}"
    window = trait.get("window", "all")
    span = "up to as_of" if window == "all" else f"in the {window} before as_of"
    if kind == "counter":
        text = f"Number of {event}"
    elif kind in ("first_at", "last_at"):
        text = f"Time of the {'earliest' if kind == 'first_at' else 'latest'} of the {event}"
    else:
        text = _AGGREGATES[kind].format(prop=trait["property"], events=event)
    empty = "0" if kind in ("counter", "unique_count", "sum") else "null"
    return f"{text} {span}; {empty} when there are none. {source.capitalize()}."


def describe_declared(trait: DeclaredTrait) -> dict[str, str]:
    """The three profile columns of a declared custom trait."""
    rule = [trait.type]
    if trait.accepted:
        rule.append("one of " + ", ".join(trait.accepted))
    if trait.min is not None or trait.max is not None:
        rule.append(
            f"from {trait.min if trait.min is not None else '-inf'} to "
            f"{trait.max if trait.max is not None else 'inf'}"
        )
    if trait.pii:
        rule.append("stored as a keyed hash")
    origin = "declared custom trait (tracking_plan.yml traits)"
    return {
        trait.name: f"The user's {trait.name} ({'; '.join(rule)}): a {origin}.",
        f"{trait.name}_source": f"Where {trait.name} came from: user_feedback or declared.",
        f"{trait.name}_observed_at": f"When the {trait.name} value in use was observed.",
    }


def trait_column_descriptions(
    catalogue_path: Path = CATALOGUE_PATH, plan_path: Path | None = None
) -> dict[str, str]:
    """Every generated profile column and its description, in catalogue then plan order."""
    descriptions = {t["name"]: describe_trait(t) for t in load_catalogue(catalogue_path)}
    plan = load_tracking_plan(plan_path) if plan_path else load_tracking_plan()
    for declared in plan.traits:
        descriptions.update(describe_declared(declared))
    return descriptions


def render_block(descriptions: dict[str, str]) -> str:
    lines = [BEGIN]
    for name, text in descriptions.items():
        # a JSON string is a valid YAML double-quoted scalar
        lines += [f"{INDENT}- name: {name}", f"{INDENT}  description: {json.dumps(text)}"]
    lines.append(END)
    return "\n".join(lines)


def updated_text(text: str, descriptions: dict[str, str]) -> str:
    """`text` (the property file) with its generated block replaced."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ColumnDocsError(
            f"{PROFILES_YML}: the lines {BEGIN.strip()!r} ... {END.strip()!r} are missing"
        )
    return text[:start] + render_block(descriptions) + text[end + len(END) :]


def write(path: Path = PROFILES_YML, check: bool = False) -> bool:
    """Rewrite the generated block; with check, only report. Returns whether it was current."""
    text = path.read_text()
    new = updated_text(text, trait_column_descriptions())
    if new == text:
        return True
    if not check:
        path.write_text(new)
        log.info("rewrote the generated trait column descriptions in %s", path)
    return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the block is out of date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    current = write(check=args.check)
    if args.check and not current:
        log.error("%s: trait descriptions are out of date: run `make column-docs`", PROFILES_YML)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
