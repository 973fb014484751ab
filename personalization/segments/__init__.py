"""Segments: export the activation tables (audiences, people, audience_memberships).

`personalization segments export --db PATH --out DIR [--format csv|parquet]` copies the three
marts that reverse-ETL tools read (Census / Fivetran Activations warehouse-managed audiences) to
files, one per table. They hold activatable members only (consent checked in the warehouse).
"""

from __future__ import annotations

import argparse
import logging
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
    export = actions.add_parser("export", help="write audiences, people, audience_memberships")
    export.add_argument("--db", type=Path, required=True, help="the warehouse DuckDB file")
    export.add_argument("--out", type=Path, required=True, help="output folder")
    export.add_argument("--format", choices=FORMATS, default="csv", dest="file_format")


def run(args: argparse.Namespace) -> int:
    try:
        export_activation(args.db, args.out, args.file_format)
    except (ExportError, PiiFoundError) as error:
        log.error("%s", error)
        return 2
    return 0
