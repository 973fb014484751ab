"""Raw landing events: every line of every landing file, loaded once (see personalization.raw_load).

Grain: one row per (file_path, line_number). Incremental append: a run adds only new files.
"""

from datetime import UTC, datetime
from pathlib import Path

from personalization.raw_load import LoadedFile, files_to_load, list_landing_files, load_files


def model(dbt, session):
    dbt.config(materialized="incremental", incremental_strategy="append")
    root = Path(dbt.config.get("landing_path"))
    loaded = {}
    if dbt.is_incremental:
        manifest = session.sql(
            f"select file_path, any_value(file_size), any_value(file_modified_at), "
            f"any_value(file_hash) from {dbt.this} group by file_path"
        ).fetchall()
        loaded = {row[0]: LoadedFile(*row) for row in manifest}
    selected = files_to_load(
        root,
        list_landing_files(root),
        loaded,
        on_changed=dbt.config.get("on_changed_landing_file"),
    )
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    return load_files(root, selected, loaded_at)
