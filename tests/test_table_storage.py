"""Per-column compression of a Python model's table (personalization/table_storage.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from personalization.table_storage import (
    STORAGE_VERSION,
    column_definitions,
    create_table,
    storage_version,
)

# long JSON-like lines with non-ASCII text (ZSTD's case)
LINES = [
    f'{{"messageId": "m-{i}", "properties": {{"query": "caf\\u00e9 {i}"}}}}' * 8
    for i in range(3000)
]
DATA = pa.table(
    {
        "line_number": pa.array(range(1, len(LINES) + 1), pa.int64()),
        "raw_line": pa.array(LINES, pa.string()),
    }
)


def _raw_line_methods(con: duckdb.DuckDBPyConnection) -> set[str]:
    con.execute("checkpoint")
    rows = con.execute(
        "select distinct compression from pragma_storage_info('lines') "
        "where column_name = 'raw_line' and segment_type = 'VARCHAR'"
    ).fetchall()
    return {row[0] for row in rows}


def _open(path: Path, version: str | None) -> duckdb.DuckDBPyConnection:
    config = {"storage_compatibility_version": version} if version else {}
    return duckdb.connect(str(path), config=config)


def test_a_new_format_file_stores_the_column_with_zstd_from_a_stream(tmp_path):
    with _open(tmp_path / "new.duckdb", STORAGE_VERSION) as con:
        assert storage_version(con, "new") == (1, 2, 0)
        # a record batch stream, as the raw load returns: read once, every row stored
        stream = pa.RecordBatchReader.from_batches(DATA.schema, DATA.to_batches(max_chunksize=500))
        create_table(con, stream, "lines", "new", {"raw_line": "zstd"})
        assert _raw_line_methods(con) == {"ZSTD"}
        stored = con.execute("select line_number, raw_line from lines order by 1").fetchall()
    assert stored == list(zip(range(1, len(LINES) + 1), LINES, strict=True))


def test_an_old_format_file_keeps_duckdbs_own_choice_and_says_why(tmp_path, caplog):
    """DuckDB would store a ZSTD column of an old-format file uncompressed, silently."""
    with _open(tmp_path / "old.duckdb", None) as con, caplog.at_level(logging.WARNING):
        assert storage_version(con, "old") < (1, 2, 0)
        create_table(con, DATA, "lines", "old", {"raw_line": "zstd"})
        methods = _raw_line_methods(con)
        assert con.execute("select count(*) from lines").fetchone() == (len(LINES),)
    assert "Uncompressed" not in methods and "ZSTD" not in methods
    assert "the compression asked for raw_line (zstd) needs v1.2.0 or later" in caplog.text


def test_an_unknown_column_is_an_error_naming_it(tmp_path):
    with _open(tmp_path / "new.duckdb", STORAGE_VERSION) as con:
        assert "using compression zstd" in column_definitions(
            con, DATA.schema, {"raw_line": "zstd"}
        )
        with pytest.raises(ValueError, match="raw_lines"):
            column_definitions(con, DATA.schema, {"raw_lines": "zstd"})


def test_an_in_memory_database_has_no_storage_format():
    with duckdb.connect() as con:
        assert storage_version(con, "memory") == (0,)
