"""Publish the marts for BI readers: Parquet + a read-only DuckDB file of views, atomic switch.

DuckDB allows one writer per file, so BI tools and notebooks never open the build database. After a
successful build, `publish` copies every table and view of the published schemas (default: marts)
to Parquet files in a NEW version folder, writes a small DuckDB file of views over those files
(in an older storage format that every DuckDB 1.x reads), checks that nothing published carries a
raw direct identifier, and only then points `OUT/current` at the new folder by renaming a symlink
over the old one (one atomic rename). Readers open `OUT/current/published.duckdb` and see the old or
the new version, never a mix: the views name the Parquet files of their own version folder by
absolute path, so a connection opened before a switch keeps reading its own version. Older
versions are pruned beyond `keep` (at least 2, so a reader still on the previous version is safe).

Layout (see docs/publishing.md):

    OUT/current -> versions/<version_id>            (relative symlink, replaced atomically)
    OUT/versions/<version_id>/published.duckdb      (views over the Parquet files + publish_meta)
    OUT/versions/<version_id>/<schema>/<table>.parquet
    OUT/versions/<version_id>/_version.json         (written last: marks a complete version)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from personalization import pii_guard
from personalization.dbt_runner import DbtError, Warehouse, run_dbt
from personalization.pii_guard import pii_column_name  # noqa: F401  (re-exported)
from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)

DEFAULT_DB = PROJECT_ROOT / "data" / "warehouse.duckdb"
DEFAULT_OUT = PROJECT_ROOT / "data" / "published"
DEFAULT_LANDING = PROJECT_ROOT / "data" / "landing"
# not marts.duckdb: its catalog name "marts" would clash with the schema "marts" in queries
PUBLISHED_DB_NAME = "published.duckdb"
VERSION_FILE = "_version.json"
CURRENT = "current"
# schemas that hold raw identifiers by design (docs/privacy.md): never published
RESTRICTED_SCHEMAS = ("restricted", "raw", "staging")
VERSIONS = "versions"
META_SCHEMA = "publish_meta"
# Every DuckDB from 1.0 on reads this format; DuckDB 2.0's own format would lock 1.x BI tools out.
STORAGE_VERSION = "v1.0.0"
MIN_KEEP = 2  # the current version and the previous one (a reader may still be on it)


class PublishError(RuntimeError):
    """Publishing failed; nothing was switched and the previous version stays current."""


class PiiFoundError(PublishError, pii_guard.PiiFoundError):
    """A published column carries raw direct identifiers (personalization.pii_guard)."""


class UnfinishedBuildError(PublishError):
    """The last build did not finish successfully, or a mart comes from no recorded build."""


class BuildFailedError(PublishError):
    """The dbt build failed, so nothing was published."""


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str  # 'table' or 'view' in the build database

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def parquet_relpath(self) -> str:
        return f"{self.schema}/{self.name}.parquet"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def current_version(out_root: Path) -> str | None:
    """The version id `OUT/current` points at, or None before the first publish."""
    link = out_root / CURRENT
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def list_versions(out_root: Path) -> list[str]:
    """Complete versions (their _version.json exists), oldest first."""
    versions_dir = out_root / VERSIONS
    if not versions_dir.is_dir():
        return []
    return sorted(p.name for p in versions_dir.iterdir() if (p / VERSION_FILE).is_file())


def read_version(out_root: Path, version_id: str | None = None) -> dict[str, Any]:
    """The _version.json of a version (default: the current one)."""
    version_id = version_id or current_version(out_root)
    if version_id is None:
        raise PublishError(f"nothing published yet in {out_root}")
    return json.loads((out_root / VERSIONS / version_id / VERSION_FILE).read_text())


def _new_version_id() -> str:
    # sortable by publish time; the suffix keeps two publishes in the same microsecond apart
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


@contextmanager
def _publish_lock(out_root: Path) -> Iterator[None]:
    """One publish at a time per output folder (a second one waits)."""
    out_root.mkdir(parents=True, exist_ok=True)
    with open(out_root / ".publish.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_source(db_path: Path, attempts: int, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """A connection whose default database is the build database, attached read-only under its
    own catalog name (the file's stem), retrying while a writer (dbt) holds its lock.

    Not under an alias: dbt writes a view's SQL with that catalog name, so a mart that is a view
    (dim_user_profiles) reads only where the name is the build database's."""
    if not db_path.is_file():
        raise PublishError(f"build database {db_path} does not exist: run `dbt build` first")
    catalog = quote_identifier(db_path.stem)
    for attempt in range(1, max(attempts, 1) + 1):
        con = duckdb.connect()
        try:
            con.execute(f"attach {quote_literal(str(db_path))} as {catalog} (read_only)")
            con.execute(f"use {catalog}")
            return con
        except duckdb.IOException as error:
            con.close()
            if "lock" not in str(error).lower():
                raise PublishError(f"cannot open build database {db_path}: {error}") from error
            if attempt >= attempts:
                raise PublishError(
                    f"build database {db_path} is locked by a writer (a dbt run?) after "
                    f"{attempts} attempts; publish again when the build has finished. "
                    f"DuckDB said: {error}"
                ) from error
            log.info("build database is locked (attempt %d/%d), retrying", attempt, attempts)
            time.sleep(wait_seconds * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def _relations(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[Relation]:
    rows = con.execute(
        """
        select schema_name, table_name, 'table' from duckdb_tables()
        where database_name = current_database() and list_contains($schemas, schema_name)
        union all
        select schema_name, view_name, 'view' from duckdb_views()
        where database_name = current_database() and not internal
            and list_contains($schemas, schema_name)
        order by 1, 2
        """,
        {"schemas": list(schemas)},
    ).fetchall()
    relations = [Relation(schema, name, kind) for schema, name, kind in rows]
    for relation in relations:
        if not re.fullmatch(r"[A-Za-z0-9_]+", relation.name):
            raise PublishError(f"cannot publish {relation.qualified}: name is not [A-Za-z0-9_]+")
    return relations


def check_builds(
    con: duckdb.DuckDBPyConnection, db_path: Path, relations: list[Relation]
) -> tuple[str | None, dict[str, str]]:
    """The last build's id and, per relation, the build that produced it (macros/build_log.sql).

    Refuses (UnfinishedBuildError) when the last `dbt build`/`dbt run` did not finish successfully
    (killed, still running, failed) or when a relation comes from no recorded successful build.
    A database without a build log (not built by this project's dbt) is published with a warning.
    """
    logs = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'raw' and table_name in ('dbt_builds', 'dbt_build_models')"
    ).fetchone()[0]
    if logs < 2:
        log.warning("%s has no build log (raw.dbt_builds): publishing without build ids", db_path)
        return None, {}
    last = con.execute(
        "select build_id, status, command, strftime(started_at, '%Y-%m-%d %H:%M:%S') "
        "from raw.dbt_builds order by started_at desc limit 1"
    ).fetchone()
    if last is None:
        raise UnfinishedBuildError(f"refusing to publish: no build recorded in {db_path}")
    build_id, status, command, started = last
    if status != "success":
        what = "did not finish (killed, or still running)" if status == "running" else "failed"
        raise UnfinishedBuildError(
            f"refusing to publish: the last build of {db_path} (dbt {command} {build_id}, "
            f"started {started} UTC) {what}, so its marts may mix this build's and older "
            "builds' rows. Run `dbt build` again and publish when it succeeds; the current "
            "published version stays."
        )
    produced = dict(
        con.execute(
            "select model_schema || '.' || model_name, arg_max(build_id, finished_at) "
            "from raw.dbt_build_models group by 1"
        ).fetchall()
    )
    orphans = [r.qualified for r in relations if r.qualified not in produced]
    if orphans:
        raise UnfinishedBuildError(
            f"refusing to publish {', '.join(orphans)}: no recorded successful build produced "
            "them (left over from an older project version, or made by hand?). Drop them or "
            "rebuild."
        )
    return build_id, {r.qualified: produced[r.qualified] for r in relations}


def _export_select(con: duckdb.DuckDBPyConnection, relation: Relation) -> str:
    """`select` of a relation, with HUGEINT (sum() of integers) cast to BIGINT: Parquet has no
    128-bit integer and would silently turn it into DOUBLE; an overflow fails loudly instead.
    TIMESTAMP_NS (pandas' datetime64[ns] from the Python models) becomes TIMESTAMP: DuckDB 1.0
    reads a nanosecond Parquet column as TIMESTAMP, so a view recorded over TIMESTAMP_NS would
    not open there ("types don't match")."""
    source = f"{quote_identifier(relation.schema)}.{quote_identifier(relation.name)}"
    columns = con.execute(f"describe select * from {source}").fetchall()
    items = []
    for name, column_type, *_ in columns:
        quoted = quote_identifier(name)
        if column_type in ("HUGEINT", "UHUGEINT"):
            items.append(f"cast({quoted} as bigint) as {quoted}")
        elif column_type == "TIMESTAMP_NS":
            items.append(f"cast({quoted} as timestamp) as {quoted}")
        else:
            items.append(quoted)
    return f"select {', '.join(items)} from {source}"


def _copy_comments(con: duckdb.DuckDBPyConnection, relation: Relation, view: str) -> None:
    """The build's table and column comments (dbt's persist_docs: the model YAML descriptions)
    onto the published view, so BI tools that read DuckDB comments show them."""
    (table_comment,) = con.execute(
        "select comment from duckdb_tables() where database_name = current_database() "
        "and schema_name = $s and table_name = $t union all select comment from duckdb_views() "
        "where database_name = current_database() and schema_name = $s and view_name = $t",
        {"s": relation.schema, "t": relation.name},
    ).fetchone()
    if table_comment:
        con.execute(f"comment on view {view} is {quote_literal(table_comment)}")
    columns = con.execute(
        "select column_name, comment from duckdb_columns() "
        "where database_name = current_database() and schema_name = $s and table_name = $t "
        "and comment is not null and comment <> ''",
        {"s": relation.schema, "t": relation.name},
    ).fetchall()
    for column, comment in columns:
        con.execute(
            f"comment on column {view}.{quote_identifier(column)} is {quote_literal(comment)}"
        )


def scan_for_pii(
    con: duckdb.DuckDBPyConnection, parquet_files: dict[str, Path]
) -> list[pii_guard.PiiFinding]:
    """Findings of the PII guard (personalization.pii_guard) over the written Parquet files."""
    return pii_guard.scan(
        con,
        {
            qualified: f"select * from read_parquet({quote_literal(str(path))})"
            for qualified, path in parquet_files.items()
        },
    )


def _write_version(
    con: duckdb.DuckDBPyConnection,
    version_dir: Path,
    version_id: str,
    db_path: Path,
    schemas: tuple[str, ...],
) -> dict[str, Any]:
    relations = _relations(con, schemas)
    if not relations:
        raise PublishError(
            f"no table or view in schema(s) {', '.join(schemas)} of {db_path}: nothing to publish"
        )
    build_id, build_ids = check_builds(con, db_path, relations)
    parquet_files: dict[str, Path] = {}
    for relation in relations:
        target = version_dir / relation.parquet_relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy ({_export_select(con, relation)}) to {quote_literal(str(target))} "
            "(format parquet, compression zstd)"
        )
        parquet_files[relation.qualified] = target

    findings = scan_for_pii(con, parquet_files)
    if findings:
        raise PiiFoundError("publish", findings)

    published_at = datetime.now(UTC).isoformat(timespec="seconds")
    published_db = version_dir / PUBLISHED_DB_NAME
    con.execute(
        f"attach {quote_literal(str(published_db))} as pub "
        f"(storage_version {quote_literal(STORAGE_VERSION)})"
    )
    tables: dict[str, dict[str, Any]] = {}
    try:
        for schema in sorted({r.schema for r in relations}):
            con.execute(f"create schema pub.{quote_identifier(schema)}")
        for relation in relations:
            view = f"pub.{quote_identifier(relation.schema)}.{quote_identifier(relation.name)}"
            path = quote_literal(str(parquet_files[relation.qualified]))
            con.execute(f"create view {view} as select * from read_parquet({path})")
            _copy_comments(con, relation, view)
            rows = con.execute(f"select count(*) from {view}").fetchone()[0]
            tables[relation.qualified] = {
                "kind": relation.kind,
                "rows": rows,
                "file": relation.parquet_relpath,
                "build_id": build_ids.get(relation.qualified),
            }
        con.execute(f"create schema pub.{META_SCHEMA}")
        con.execute(
            f"create table pub.{META_SCHEMA}.version_info as select "
            "$version_id as version_id, $published_at as published_at, $source_db as source_db, "
            "$build_id as build_id",
            {
                "version_id": version_id,
                "published_at": published_at,
                "source_db": str(db_path),
                "build_id": build_id,
            },
        )
        con.execute(
            f"create table pub.{META_SCHEMA}.row_counts "
            "(table_name varchar, row_count bigint, parquet_file varchar, build_id varchar)"
        )
        con.executemany(
            f"insert into pub.{META_SCHEMA}.row_counts values (?, ?, ?, ?)",
            [[name, info["rows"], info["file"], info["build_id"]] for name, info in tables.items()],
        )
    finally:
        con.execute("detach pub")

    version = {
        "version_id": version_id,
        "published_at": published_at,
        "source_db": str(db_path),
        "build_id": build_id,
        "schemas": list(schemas),
        "duckdb_version": duckdb.__version__,
        "storage_version": STORAGE_VERSION,
        "row_counts": {name: info["rows"] for name, info in tables.items()},
        "tables": tables,
    }
    # written last: a folder without it is an unfinished publish and is never switched to
    (version_dir / VERSION_FILE).write_text(json.dumps(version, indent=2) + "\n")
    return version


def _switch_current(out_root: Path, version_id: str) -> None:
    """Point OUT/current at versions/<version_id> with one atomic rename of a new symlink."""
    link = out_root / CURRENT
    if link.exists() and not link.is_symlink():
        raise PublishError(f"{link} exists and is not a symlink: move it away first")
    temporary = out_root / f".{CURRENT}-{version_id}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(Path(VERSIONS) / version_id, target_is_directory=True)
    os.replace(temporary, link)


def prune(out_root: Path, keep: int) -> list[str]:
    """Delete complete versions beyond the newest `keep` (never the current one) and unfinished
    folders left by a crashed publish. Call under the publish lock. Returns the deleted ids."""
    current = current_version(out_root)
    complete = list_versions(out_root)
    kept = set(complete[-keep:]) | ({current} if current else set())
    deleted = []
    for path in sorted((out_root / VERSIONS).iterdir()):
        if path.name in kept or not path.is_dir():
            continue
        shutil.rmtree(path)
        deleted.append(path.name)
    return deleted


def publish(
    db_path: Path,
    out_root: Path,
    keep: int = 3,
    schemas: tuple[str, ...] = ("marts",),
    *,
    lock_attempts: int = 5,
    lock_wait_seconds: float = 1.0,
) -> Path:
    """Publish every table and view of `schemas` in the build database; returns the new version
    folder. Raises PublishError (PiiFoundError for identifiers) with nothing switched."""
    restricted = sorted(set(schemas) & set(RESTRICTED_SCHEMAS))
    if restricted:
        raise PublishError(
            f"schema(s) {', '.join(restricted)} hold raw identifiers and are never published "
            "(docs/privacy.md, where raw identifiers live)"
        )
    if keep < MIN_KEEP:
        raise PublishError(
            f"keep must be at least {MIN_KEEP} (the current version and the previous one, which "
            f"a reader may still be using), not {keep}"
        )
    db_path = Path(db_path).resolve()
    out_root = Path(out_root).resolve()
    started = time.perf_counter()
    with _publish_lock(out_root):
        version_id = _new_version_id()
        version_dir = out_root / VERSIONS / version_id
        version_dir.mkdir(parents=True)
        try:
            with _open_source(db_path, lock_attempts, lock_wait_seconds) as con:
                version = _write_version(con, version_dir, version_id, db_path, tuple(schemas))
        except BaseException:
            shutil.rmtree(version_dir, ignore_errors=True)
            raise
        _switch_current(out_root, version_id)
        deleted = prune(out_root, keep)
    log.info(
        "published %d relation(s) from %s as version %s in %.1f s (pruned %d old version(s))",
        len(version["tables"]),
        db_path,
        version_id,
        time.perf_counter() - started,
        len(deleted),
    )
    return version_dir


def build_and_publish(
    warehouse: Warehouse,
    out_root: Path,
    keep: int = 3,
    dbt_vars: dict[str, Any] | None = None,
    target: str = "prod",
) -> Path:
    """`dbt build`, then publish only if it succeeded: a failed build publishes nothing and the
    previous version stays current. The `prod` target needs PERSONALIZATION_HMAC_KEY; pass
    target="dev" only where the public development key was asked for (demo, tests)."""
    try:
        run_dbt(["build"], warehouse, dbt_vars=dbt_vars, target=target)
    except DbtError as error:
        current = current_version(Path(out_root))
        raise BuildFailedError(
            f"build failed, nothing published (current version stays {current}): {error}"
        ) from error
    return publish(warehouse.db_path, out_root, keep=keep)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("PERSONALIZATION_DB", DEFAULT_DB)),
        help="build database (default: $PERSONALIZATION_DB or data/warehouse.duckdb)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="published folder (default: data/published)"
    )
    parser.add_argument(
        "--keep", type=int, default=3, help=f"versions to keep (default 3, at least {MIN_KEEP})"
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="run `dbt build` first (landing: $PERSONALIZATION_LANDING or data/landing) and "
        "publish only if it succeeds",
    )
    parser.add_argument(
        "--development-key",
        action="store_true",
        help="with --build: build on the dev target, which falls back to the public development "
        "key when PERSONALIZATION_HMAC_KEY is unset (demo data only)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.build:
            landing = Path(os.environ.get("PERSONALIZATION_LANDING", DEFAULT_LANDING))
            target = "dev" if args.development_key else "prod"
            version_dir = build_and_publish(
                Warehouse(args.db, landing), args.out, args.keep, target=target
            )
        else:
            version_dir = publish(args.db, args.out, keep=args.keep)
    except PublishError as error:
        log.error("%s", error)
        return 2
    log.info("readers: %s", Path(args.out).resolve() / CURRENT / PUBLISHED_DB_NAME)
    log.info("this version: %s", version_dir)
    return 0
