"""The published snapshot the profile API serves, and the switch to a newer one.

A Snapshot is one published version (see personalization/publish.py), opened read-only and copied
into an in-memory DuckDB database with an index on the user key, so a lookup never touches the
Parquet files and a version pruned by a later publish cannot break a request. The SnapshotStore
polls `OUT/current` and, when it points at a new version, loads it in a worker thread and swaps
one reference: a request uses the snapshot it started with, so it sees one version, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from personalization.publish import CURRENT, PUBLISHED_DB_NAME, VERSIONS, quote_literal

log = logging.getLogger(__name__)

# in-memory table -> (published relation, required): the marts the API answers from
TABLES = {
    "profiles": ("marts.dim_user_profiles", True),
    "memberships": ("marts.fct_segment_membership", True),
    "segments": ("marts.dim_segments", True),
    "clusters": ("marts.fct_user_clusters", False),
}
CONSENT_COLUMNS = ("has_personalization_consent", "has_advertising_consent")
USER_KEY = "canonical_user_id"


class SnapshotUnavailableError(RuntimeError):
    """Nothing is published yet, or the published version lacks a table the API needs."""


def _current_version(out_root: Path) -> str | None:
    try:
        return Path(os.readlink(out_root / CURRENT)).name
    except (FileNotFoundError, OSError):
        return None


@dataclass
class Snapshot:
    version_id: str
    published_at: str
    con: duckdb.DuckDBPyConnection
    profile_columns: list[str]
    has_clusters: bool

    @classmethod
    def load(cls, out_root: Path, version_id: str) -> Snapshot:
        """Copy the API's tables of one published version into memory (read-only attach)."""
        path = out_root / VERSIONS / version_id / PUBLISHED_DB_NAME
        con = duckdb.connect()
        try:
            con.execute(f"attach {quote_literal(str(path))} as pub (read_only)")
            present = {
                f"{schema}.{name}"
                for schema, name in con.execute(
                    "select schema_name, view_name from duckdb_views() where database_name = 'pub'"
                    " union all select schema_name, table_name from duckdb_tables()"
                    " where database_name = 'pub'"
                ).fetchall()
            }
            for table, (relation, required) in TABLES.items():
                if relation not in present:
                    if required:
                        raise SnapshotUnavailableError(
                            f"published version {version_id} has no {relation}"
                        )
                    continue
                con.execute(f"create table {table} as select * from pub.{relation}")
            con.execute("create index profiles_key on profiles (canonical_user_id)")
            con.execute(
                "create table members as select segment_name, canonical_user_id, is_activatable"
                " from memberships where status = 'member'"
            )
            con.execute("create index members_key on members (canonical_user_id)")
            published_at = con.execute(
                "select published_at from pub.publish_meta.version_info"
            ).fetchone()[0]
            con.execute("detach pub")
            columns = [row[0] for row in con.execute("describe profiles").fetchall()]
            has_clusters = "clusters" in {
                row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()
            }
        except BaseException:
            con.close()
            raise
        return cls(version_id, str(published_at), con, columns, has_clusters)

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, parameters or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.con.close()


class SnapshotStore:
    """The snapshot being served; `refresh()` switches to a newer published version."""

    def __init__(self, out_root: Path, poll_seconds: float = 0.5) -> None:
        self.out_root = Path(out_root)
        self.poll_seconds = poll_seconds
        self.snapshot: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> Snapshot:
        if self.snapshot is None:
            raise SnapshotUnavailableError(f"nothing published yet under {self.out_root}")
        return self.snapshot

    def refresh(self) -> bool:
        """Load the version `current` points at if it is not the one served; True if switched."""
        version = self._new_version()
        if version is None:
            return False
        self._swap(Snapshot.load(self.out_root, version))
        return True

    def _new_version(self) -> str | None:
        version = _current_version(self.out_root)
        if version is None or (self.snapshot and self.snapshot.version_id == version):
            return None
        return version

    def _swap(self, fresh: Snapshot) -> None:
        """One reference assignment: a request holds the snapshot it started with."""
        previous, self.snapshot = self.snapshot, fresh
        log.info("serving published version %s", fresh.version_id)
        if previous is not None:
            previous.close()

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.refresh)
        except (SnapshotUnavailableError, duckdb.Error) as error:
            log.error("cannot load the published snapshot yet: %s", error)
        self._task = asyncio.create_task(self._poll(), name="snapshot-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.snapshot is not None:
            self.snapshot.close()
            self.snapshot = None

    async def _poll(self) -> None:
        failed: str | None = None
        while True:
            await asyncio.sleep(self.poll_seconds)
            version = self._new_version()
            if version is None or version == failed:
                continue
            try:
                fresh = await asyncio.to_thread(Snapshot.load, self.out_root, version)
            except (SnapshotUnavailableError, duckdb.Error) as error:
                log.error("cannot load published version %s (still serving the last): %s",
                          version, error)  # fmt: skip
                failed = version
                continue
            self._swap(fresh)  # on the event loop, between requests
