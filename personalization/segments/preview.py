"""Preview a segment against the current warehouse, read-only, without a build.

`personalization segments preview NAME [--file FILE] --db PATH [--as-of ISO]` validates the
definitions (as `segments validate` does), compiles fct_segment_membership for them with dbt
against an empty scratch database (no build, nothing written to the warehouse), runs the
compiled SQL on the warehouse opened read-only, and reports the segment's size, pending count,
overlap with the segments already built (marts.fct_segment_membership) and a sample of member
ids (canonical ids, pseudonymous).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.segments import validate

log = logging.getLogger(__name__)


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
        problems = validate.validate_segments_file(file)
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


def compiled_membership_sql(
    definitions: list[dict[str, Any]], db_path: Path, scratch: Path, as_of: str | None
) -> str:
    """dbt compile of fct_segment_membership for `definitions`, against an empty database named
    like the warehouse (so the compiled relation names resolve in it)."""
    warehouse = Warehouse(scratch / db_path.name, scratch / "landing", scratch / "target", as_of)
    run_dbt(
        ["compile", "--select", "fct_segment_membership", "--quiet"],
        warehouse,
        dbt_vars={"segment_definitions": definitions},
    )
    return next((scratch / "target").glob("compiled/**/fct_segment_membership.sql")).read_text()


def preview_segment(
    name: str, db_path: Path, file: Path | None = None, as_of: str | None = None, sample: int = 10
) -> Preview:
    if not db_path.is_file():
        raise PreviewError(f"no warehouse at {db_path}")
    definitions = load_definitions(file)
    if name not in {segment["name"] for segment in definitions}:
        known = [segment["name"] for segment in definitions]
        raise PreviewError(f"unknown segment '{name}'{validate.did_you_mean(name, known)}")
    with tempfile.TemporaryDirectory(prefix="segment-preview-") as tmp:
        sql = compiled_membership_sql(definitions, db_path, Path(tmp), as_of)
    with duckdb.connect(str(db_path), read_only=True) as con:
        try:
            con.execute(
                f"create temp table preview as select * from ({sql}) where segment_name = ?", [name]
            )
            built = "marts.fct_segment_membership"
            con.execute(f"select 1 from {built} limit 0")
        except duckdb.Error as error:
            raise PreviewError(f"{db_path}: {error} (run dbt build first)") from error
        (size, pending) = con.execute(
            "select count(*) filter (where status = 'member'), "
            "count(*) filter (where status = 'pending') from preview"
        ).fetchone()
        overlap = con.execute(
            f"""
            with mine as (select canonical_user_id from preview where status = 'member'),
            theirs as (select segment_name, canonical_user_id from {built} where status = 'member')
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
