"""Segments: validate definitions, preview a segment, export the activation tables.

`personalization segments validate [FILE ...]` checks the segments, the trait catalogue and the
tracking plan in about a second, without dbt (file:line, allowed keys, "did you mean").
`personalization segments preview NAME [--file FILE] --db PATH` reports a segment's size, pending
count, overlap and a sample of members against the warehouse, read-only, without a build.
`personalization segments export --db PATH --out DIR [--format csv|parquet]` copies the three
marts that reverse-ETL tools read (Census / Fivetran Activations warehouse-managed audiences) to
files, one per table. They hold activatable members only (consent checked in the warehouse).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import duckdb

from personalization.pii_guard import PiiFoundError, ensure_tables_clean

log = logging.getLogger(__name__)

ACTIVATION_TABLES = ("audiences", "people", "audience_memberships")
FORMATS = ("csv", "parquet")


class ExportError(RuntimeError):
    """The warehouse lacks the activation marts, or the output cannot be written."""


def export_activation(
    db_path: Path, out_dir: Path, file_format: str = "csv", schema: str = "marts"
) -> dict[str, int]:
    """Write each activation table to out_dir/<table>.<format>; returns rows per table.

    Each file is written to a temporary name first and renamed, so a reader never sees a
    half-written file.
    """
    if file_format not in FORMATS:
        raise ExportError(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}")
    if not db_path.is_file():
        raise ExportError(f"no warehouse at {db_path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    options = "(format csv, header true)" if file_format == "csv" else "(format parquet)"
    rows: dict[str, int] = {}
    with duckdb.connect(str(db_path), read_only=True) as con:
        present = {
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [schema],
            ).fetchall()
        }
        missing = [table for table in ACTIVATION_TABLES if table not in present]
        if missing:
            raise ExportError(
                f"{db_path} has no {schema}.{', '.join(missing)}: run dbt build first"
            )
        ensure_tables_clean(con, schema, ACTIVATION_TABLES, "export")
        for table in ACTIVATION_TABLES:
            target = out_dir / f"{table}.{file_format}"
            partial = out_dir / f".{table}.{file_format}.partial"
            escaped = str(partial).replace("'", "''")
            order = "id" if table != "audience_memberships" else "audience_id, person_id"
            con.execute(
                f"copy (select * from {schema}.{table} order by {order}) to '{escaped}' {options}"
            )
            partial.replace(target)
            (count,) = con.execute(f"select count(*) from {schema}.{table}").fetchone()
            rows[table] = int(count)
            log.info("wrote %s (%d rows)", target, count)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    validate = actions.add_parser(
        "validate", help="check segments, trait catalogue and tracking plan without building"
    )
    validate.add_argument(
        "files",
        type=Path,
        nargs="*",
        help="segment files to check instead of the shipped segments.yml",
    )
    preview = actions.add_parser(
        "preview", help="size, pending, overlap and sample of a segment, read-only, no build"
    )
    preview.add_argument("name", help="the segment (shipped, or defined in --file)")
    preview.add_argument("--file", type=Path, help="YAML with new or changed segments")
    preview.add_argument("--db", type=Path, required=True, help="the warehouse DuckDB file")
    preview.add_argument("--as-of", help="reference time (ISO); default: now")
    export = actions.add_parser("export", help="write audiences, people, audience_memberships")
    export.add_argument("--db", type=Path, required=True, help="the warehouse DuckDB file")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--format", choices=FORMATS, default="csv", dest="file_format")


def run_preview(args: argparse.Namespace) -> int:
    from personalization.segments import preview

    try:
        result = preview.preview_segment(args.name, args.db, args.file, args.as_of)
    except preview.PreviewError as error:
        log.error("%s", error)
        return 2
    sys.stdout.write(preview.report(result) + "\n")
    return 0


def run_validate(files: list[Path]) -> int:
    """Log every problem as file:line; 1 when there is any, else 0."""
    from personalization.segments import validate

    problems = [problem for path in files for problem in validate.validate_segments_file(path)]
    if not files:
        problems = (
            validate.validate_tracking_plan_file()
            + validate.validate_catalogue_file()
            + validate.validate_segments_file()
        )
    for problem in problems:
        log.error("%s", problem)
    checked = ", ".join(str(path) for path in files) or "tracking plan, trait catalogue, segments"
    log.info("%s: %d problem(s)", checked, len(problems))
    return 1 if problems else 0


def run(args: argparse.Namespace) -> int:
    if args.action == "validate":
        return run_validate(args.files)
    if args.action == "preview":
        return run_preview(args)
    try:
        export_activation(args.db, args.out, args.file_format)
    except (ExportError, PiiFoundError) as error:
        log.error("%s", error)
        return 2
    return 0
