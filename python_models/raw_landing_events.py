"""Raw landing events: every line of every landing file, loaded once (see personalization.raw_load).

Grain: one row per (file_path, line_number). Incremental append: a run adds only new files (and
the new lines of a file that grew). What happened to each file (loaded, unreadable, re-delivered,
unsupported, missing...) is appended to raw.landing_file_log, which full refreshes keep.
"""

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from personalization.raw_load import (
    DEFAULT_SETTLE_SECONDS,
    FILE_LOG_COLUMNS,
    LandingFolderError,
    LoadedFile,
    load_files,
    plan_load,
    reported_files,
    scan_landing,
    settled,
)


def landing_root(dbt) -> Path:
    """The landing_path var when set, else PERSONALIZATION_LANDING, else data/landing."""
    configured = dbt.config.get("landing_path")
    if not configured or configured == "None":
        configured = os.environ.get("PERSONALIZATION_LANDING") or "data/landing"
    return Path(configured).resolve()


def model(dbt, session):
    # the raw text stored with ZSTD: a sixth of FSST's size, cheaper to write and to read
    # (personalization/table_storage.py)
    dbt.config(
        materialized="incremental",
        incremental_strategy="append",
        column_compression={"raw_line": "zstd"},
    )
    root = landing_root(dbt)
    if not root.is_dir():
        raise LandingFolderError(
            f"landing folder {root} does not exist: set PERSONALIZATION_LANDING (or the "
            "landing_path var) to the folder the collector writes to"
        )
    log_table = f"{dbt.this.database}.{dbt.this.schema}.landing_file_log"
    columns = ", ".join(f"{name} {kind}" for name, kind in FILE_LOG_COLUMNS)
    session.execute(f"create schema if not exists {dbt.this.database}.{dbt.this.schema}")
    session.execute(f"create table if not exists {log_table} ({columns})")

    loaded = {}
    if dbt.is_incremental:
        manifest = session.sql(
            "select file_path, arg_max(file_size, line_number), "
            "arg_max(file_modified_at, line_number), arg_max(file_hash, line_number), "
            f"max(line_number) from {dbt.this} group by file_path"
        ).fetchall()
        loaded = {row[0]: LoadedFile(*row) for row in manifest}
    logged = session.sql(
        f"select file_path, status, coalesce(file_hash, ''), coalesce(file_size, 0) "
        f"from {log_table}"
    ).fetchall()
    ever_loaded = {
        row[0] for row in logged if row[1] in ("loaded", "appended", "unreadable")
    } | set(loaded)

    listing = scan_landing(root)
    now = datetime.now(UTC).replace(tzinfo=None)
    configured_settle = dbt.config.get("landing_settle_seconds")
    settle_seconds = float(
        DEFAULT_SETTLE_SECONDS if configured_settle in (None, "", "None") else configured_settle
    )
    ready = settled(listing.candidates, now, settle_seconds)
    if not loaded and not listing.candidates:
        raise LandingFolderError(
            f"no landing file (.jsonl, .ndjson, optionally .gz) under {root} and nothing loaded "
            "yet: check PERSONALIZATION_LANDING (or the landing_path var)"
        )
    to_read, events = plan_load(
        root, ready, loaded, on_changed=dbt.config.get("on_changed_landing_file")
    )
    events += reported_files(listing, ever_loaded)

    seen = {tuple(row) for row in logged}
    load_id = uuid.uuid4().hex

    def write_file_log() -> None:
        """Log each file's outcome, once every file was read (before the stream ends)."""
        rows = [
            (load_id, now, e.path, e.size, e.modified_at, e.file_hash, e.status, e.lines_loaded,
             e.detail)
            for e in events
            if e.key() not in seen
        ]  # fmt: skip
        if rows:
            placeholders = ", ".join("?" for _ in FILE_LOG_COLUMNS)
            # its own cursor: dbt stores the stream through another one while this runs
            with session.cursor() as log_cursor:
                log_cursor.executemany(f"insert into {log_table} values ({placeholders})", rows)

    # a stream, not a table: dbt-duckdb stores it straight into the model's table (one copy)
    return load_files(root, to_read, now, events, on_end=write_file_log)
