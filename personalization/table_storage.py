"""How a Python model's table is stored on DuckDB: per-column compression (ZSTD for long text).

DuckDB picks each column's compression at checkpoint from a sample; for text it tries
dictionary and FSST, and ZSTD only when the strings average 4,096 bytes or more
(`zstd_min_string_length`). A raw landing line is JSON of about 700 bytes: FSST stores 1M of them
in 320 MB at 6.2 s of CPU, ZSTD in 53 MB at 3.8 s, and scans them cheaper too (bench_staging's
measurements, docs/architecture.md "Raw lines are stored with ZSTD").

A column's method is part of the table's definition (`raw_line VARCHAR USING COMPRESSION zstd`),
which `create table as` cannot write and `alter table` cannot change, so a model that asks for one
(config `column_compression: {column: method}`) has its table created from its Arrow schema with
the methods, then filled (macros/python_models.sql). ZSTD needs the database's storage format
v1.2.0 or later (the plugin creates new warehouses so: STORAGE_VERSION); in an older file DuckDB
would silently store the column uncompressed, so there the table keeps DuckDB's own choice and a
warning says how to get the new format.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

log = logging.getLogger(__name__)

# the storage format new warehouses are created in (duckdb_plugin): the first with ZSTD for text
STORAGE_VERSION = "v1.2.0"
# the storage format each method needs
NEEDS_VERSION = {"zstd": (1, 2, 0)}


def storage_version(con: duckdb.DuckDBPyConnection, database: str) -> tuple[int, ...]:
    """The storage format of an attached database file, e.g. (1, 2, 0) for 'v1.2.0+'; (0,) when
    DuckDB does not say (an in-memory database)."""
    row = con.execute(
        "select tags['storage_version'] from duckdb_databases() where database_name = ?",
        [database],
    ).fetchone()
    found = re.match(r"v?(\d+)\.(\d+)\.(\d+)", (row[0] or "") if row else "")
    return tuple(int(part) for part in found.groups()) if found else (0,)


def usable_methods(
    con: duckdb.DuckDBPyConnection, database: str, compression: Mapping[str, str]
) -> dict[str, str]:
    """The requested per-column methods this database can store; the rest are logged and left
    to DuckDB's own choice."""
    version = storage_version(con, database)
    usable, refused = {}, []
    for column, method in compression.items():
        if version >= NEEDS_VERSION.get(method.lower(), (0,)):
            usable[column] = method
        else:
            refused.append(f"{column} ({method})")
    if refused:
        log.warning(
            "database %s is in storage format v%s, and the compression asked for %s needs "
            "%s or later: DuckDB chooses instead. A warehouse file created by this version of "
            "the project has the newer format (build into a new file: docs/architecture.md, "
            "\"Raw lines are stored with ZSTD\").",
            database, ".".join(map(str, version)), ", ".join(refused), STORAGE_VERSION,
        )  # fmt: skip
    return usable


def column_definitions(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, compression: Mapping[str, str]
) -> str:
    """`name type [using compression method], ...` for an Arrow schema, in DuckDB's types."""
    empty = f"__schema_{uuid.uuid4().hex}"
    con.register(empty, schema.empty_table())
    try:
        described = con.execute(f"describe select * from {empty}").fetchall()
    finally:
        con.unregister(empty)
    unknown = set(compression) - {name for name, *_ in described}
    if unknown:
        raise ValueError(f"column_compression names columns the model does not have: {unknown}")
    return ", ".join(
        f'"{name}" {kind}'
        + (f" using compression {compression[name]}" if name in compression else "")
        for name, kind, *_ in described
    )


def create_table(
    con: duckdb.DuckDBPyConnection,
    data: Any,
    relation: str,
    database: str,
    compression: Mapping[str, str],
) -> None:
    """Create `relation` holding `data` (an Arrow table or record batch stream, read once), with
    the per-column compression methods the database can store."""
    source = f"__python_model_{uuid.uuid4().hex}"
    con.register(source, data)
    try:
        usable = usable_methods(con, database, compression) if hasattr(data, "schema") else {}
        if usable:
            con.execute(f"create table {relation} ({column_definitions(con, data.schema, usable)})")
            con.execute(f"insert into {relation} select * from {source}")
        else:
            con.execute(f"create table {relation} as select * from {source}")
    finally:
        con.unregister(source)
