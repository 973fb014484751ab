"""Preview a segment against the current warehouse, read-only, without a build or dbt.

`personalization segments preview NAME [--file FILE] --db PATH [--as-of ISO]` validates the
definitions (as `segments validate` does), renders fct_segment_membership's SQL for the segment
(and the segments it references) with the project's own macros in Python
(personalization.segments.render: no dbt invocation, well under a second), runs it on the
warehouse opened read-only, and reports the segment's size, pending count, overlap with the
segments already built (marts.fct_segment_membership) and a sample of member ids (canonical ids,
pseudonymous).

The reference time is --as-of, else PERSONALIZATION_AS_OF, else the as_of the built segments
were computed at (so the figures and the overlap compare with the build like for like).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from personalization.reference_time import AS_OF_ENV
from personalization.segments import render, validate

log = logging.getLogger(__name__)

BUILT = "marts.fct_segment_membership"


class PreviewError(RuntimeError):
    """The definitions are invalid, the segment is unknown, or the warehouse lacks the marts."""


@dataclass(frozen=True)
class Preview:
    name: str
    size: int
    pending: int
    overlap: list[tuple[str, int, float]]  # (built segment, shared members, jaccard)
    sample: list[str]


def load_definitions(file: Path | None) -> list[dict[str, Any]]:
    """The shipped definitions, with those of `file` (a bare list or a dbt file) replacing or
    adding segments of the same name; raises PreviewError listing every validation problem."""
    shipped_doc = yaml.safe_load(validate.SEGMENTS_PATH.read_text())
    definitions = list(validate.segment_definitions(shipped_doc) or [])
    if file is not None:
        shipped = [segment["name"] for segment in definitions]
        problems = validate.validate_segments_file(file, known=shipped)
        if problems:
            raise PreviewError("\n".join(str(problem) for problem in problems))
        document = yaml.safe_load(file.read_text())
        extra = document if isinstance(document, list) else validate.segment_definitions(document)
        names = {segment["name"] for segment in extra}
        definitions = [s for s in definitions if s["name"] not in names] + list(extra)
    problems = validate.check_segments(definitions, file or validate.SEGMENTS_PATH)
    if problems:
        raise PreviewError("\n".join(str(problem) for problem in problems))
    return definitions


def referenced_segments(rule: Any) -> list[str]:
    """The names of the segments a rule refers to with `segment:`, at any depth."""
    if isinstance(rule, list):
        return [name for child in rule for name in referenced_segments(child)]
    if not isinstance(rule, dict):
        return []
    return [
        name
        for key, spec in rule.items()
        for name in ([spec] if key == "segment" else referenced_segments(spec))
    ]


def with_references(name: str, definitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The segment `name` and every segment it references (directly or not), in file order."""
    by_name = {segment["name"]: segment for segment in definitions}
    needed: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in needed:
            needed.add(current)
            pending.extend(referenced_segments(by_name[current]["rule"]))
    return [segment for segment in definitions if segment["name"] in needed]


def relation_resolver(con: duckdb.DuckDBPyConnection, db_path: Path) -> Any:
    """ref(name) -> "database"."schema"."name" of the warehouse, as dbt-duckdb compiles it."""
    schemas = dict(
        con.execute(
            "select table_name, min(table_schema) from information_schema.tables "
            "where table_catalog = current_database() group by table_name"
        ).fetchall()
    )

    def relation(name: str) -> str:
        if name not in schemas:
            raise render.RenderError(f"{db_path} has no relation {name}: run dbt build first")
        return f'"{db_path.stem}"."{schemas[name]}"."{name}"'

    return relation


def reference_time(con: duckdb.DuckDBPyConnection, explicit: str | None) -> str:
    """--as-of, else the environment, else the as_of of the built segments."""
    if explicit or os.environ.get(AS_OF_ENV):
        return str(explicit or os.environ[AS_OF_ENV])
    (computed_at,) = con.execute(f"select max(computed_at) from {BUILT}").fetchone()
    if computed_at is None:
        raise PreviewError(f"{BUILT} is empty: give --as-of")
    return f"{computed_at.isoformat()}Z"


def preview_segment(
    name: str, db_path: Path, file: Path | None = None, as_of: str | None = None, sample: int = 10
) -> Preview:
    if not db_path.is_file():
        raise PreviewError(f"no warehouse at {db_path}")
    definitions = load_definitions(file)
    if name not in {segment["name"] for segment in definitions}:
        known = [segment["name"] for segment in definitions]
        raise PreviewError(f"unknown segment '{name}'{validate.did_you_mean(name, known)}")
    with duckdb.connect(str(db_path), read_only=True) as con:
        try:
            con.execute(f"select 1 from {BUILT} limit 0")
            reference = reference_time(con, as_of)
            sql = render.render_membership_sql(
                with_references(name, definitions),
                relation_resolver(con, db_path),
                {"as_of": reference},
            )
            con.execute(
                f"create temp table preview as select * from ({sql}) where segment_name = ?", [name]
            )
        except (duckdb.Error, render.RenderError) as error:
            raise PreviewError(f"{db_path}: {error} (run dbt build first)") from error
        (size, pending) = con.execute(
            "select count(*) filter (where status = 'member'), "
            "count(*) filter (where status = 'pending') from preview"
        ).fetchone()
        overlap = con.execute(
            f"""
            with mine as (select canonical_user_id from preview where status = 'member'),
            theirs as (select segment_name, canonical_user_id from {BUILT} where status = 'member')
            select
                theirs.segment_name,
                count(mine.canonical_user_id) as shared,
                count(mine.canonical_user_id)
                / (count(*) + (select count(*) from mine) - count(mine.canonical_user_id))
                    as jaccard
            from theirs
            left join mine on theirs.canonical_user_id = mine.canonical_user_id
            group by theirs.segment_name
            order by shared desc, theirs.segment_name
            """
        ).fetchall()
        members = con.execute(
            "select canonical_user_id from preview where status = 'member' "
            "order by canonical_user_id limit ?",
            [sample],
        ).fetchall()
    return Preview(
        name=name,
        size=int(size),
        pending=int(pending),
        overlap=[(segment, int(shared), float(jaccard)) for segment, shared, jaccard in overlap],
        sample=[member for (member,) in members],
    )


def report(preview: Preview) -> str:
    lines = [
        f"segment {preview.name}: {preview.size} members, {preview.pending} pending",
        "overlap with built segments (shared members, jaccard):",
        *(
            f"  {segment}: {shared} ({jaccard:.2f})"
            for segment, shared, jaccard in preview.overlap
            if shared
        ),
        f"sample of members: {', '.join(preview.sample) or '(none)'}",
    ]
    return "\n".join(lines)
