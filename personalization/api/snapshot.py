"""The published snapshot the profile API serves, and the switch to a newer one.

A Snapshot is one published version (see personalization/publish.py), opened read-only once and
turned into ready response bodies in memory, so a lookup is a dictionary access that never
touches the Parquet files, and a version pruned by a later publish cannot break a request. The
SnapshotStore polls `OUT/current` and, when it points at a new version, loads it in a worker
thread and swaps one reference: a request uses the snapshot it started with, so it sees one
version, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson

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


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(document: Any) -> bytes:
    """JSON bytes (timestamps in ISO 8601, decimals as numbers), exactly sized: orjson's own
    result keeps a ~16 KB buffer behind each small document (16x the memory of 100k profiles)."""
    return bytes(memoryview(orjson.dumps(document, default=_json_default)))


@dataclass
class Snapshot:
    """One published version, answered from memory: every profile response is built once, at
    load, so a request is a dictionary lookup (memory: about the JSON size of the profiles)."""

    version_id: str
    published_at: str
    documents: dict[str, bytes]  # mart key -> the GET /v1/profiles response body
    segments: bytes  # the GET /v1/segments response body
    members: dict[str, list[str]]  # segment -> sorted mart keys of its activatable members

    @classmethod
    def load(cls, out_root: Path, version_id: str) -> Snapshot:
        """Read one published version (read-only attach) and build the responses."""
        path = out_root / VERSIONS / version_id / PUBLISHED_DB_NAME
        with duckdb.connect() as con:
            con.execute(f"attach {quote_literal(str(path))} as pub (read_only)")
            present = {
                f"{schema}.{name}"
                for schema, name in con.execute(
                    "select schema_name, view_name from duckdb_views() where database_name = 'pub'"
                    " union all select schema_name, table_name from duckdb_tables()"
                    " where database_name = 'pub'"
                ).fetchall()
            }
            missing = [r for r, required in TABLES.values() if required and r not in present]
            if missing:
                raise SnapshotUnavailableError(
                    f"published version {version_id} has no {', '.join(missing)}"
                )
            published_at = str(
                con.execute("select published_at from pub.publish_meta.version_info").fetchone()[0]
            )
            memberships = con.execute(
                f"select segment_name, {USER_KEY} from pub.marts.fct_segment_membership"
                f" where status = 'member' and is_activatable order by segment_name, {USER_KEY}"
            ).fetchall()
            members: dict[str, list[str]] = {}
            segments_of: dict[str, list[str]] = {}
            for segment, key in memberships:
                members.setdefault(segment, []).append(key)
                segments_of.setdefault(key, []).append(segment)
            clusters_of: dict[str, list[dict[str, Any]]] = {}
            if TABLES["clusters"][0] in present:
                for key, method, cluster_id, name in con.execute(
                    f"select {USER_KEY}, method, cluster_id, cluster_name"
                    f" from pub.marts.fct_user_clusters order by {USER_KEY}, method"
                ).fetchall():
                    clusters_of.setdefault(key, []).append(
                        {"method": method, "cluster_id": cluster_id, "cluster_name": name}
                    )
            catalogue = _rows(
                con,
                "select segment_name, description, owner, size, activatable_size,"
                " requires_consent, computed_at from pub.marts.dim_segments order by segment_name",
            )
            for segment in catalogue:
                members.setdefault(segment["segment_name"], [])
            cursor = con.execute("select * from pub.marts.dim_user_profiles")
            columns = [d[0] for d in cursor.description]
            documents: dict[str, bytes] = {}
            while rows := cursor.fetchmany(10_000):
                for row in rows:
                    profile = dict(zip(columns, row, strict=True))
                    key = profile[USER_KEY]
                    documents[key] = dumps(
                        profile_document(
                            profile,
                            segments_of.get(key, []),
                            clusters_of.get(key, []),
                            {"version_id": version_id, "published_at": published_at},
                        )
                    )
        segments = dumps({"segments": catalogue, "version_id": version_id})
        return cls(version_id, published_at, documents, segments, members)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def profile_document(
    profile: dict[str, Any],
    segments: list[str],
    clusters: list[dict[str, Any]],
    version: dict[str, str],
) -> dict[str, Any]:
    """The GET /v1/profiles response of one profile row.

    Segments and clusters are personalisation: a user without that consent gets none. The
    segments are those the user is an activatable member of (the consent each one requires).
    """
    consented = bool(profile["has_personalization_consent"])
    return {
        "user_key": profile[USER_KEY],
        "traits": {
            name: value
            for name, value in profile.items()
            if name != USER_KEY and name not in CONSENT_COLUMNS
        },
        "segments": segments if consented else [],
        "clusters": clusters if consented else [],
        "consent": {
            "personalization": consented,
            "advertising": bool(profile["has_advertising_consent"]),
        },
        "freshness": {**version, "last_seen_at": profile.get("last_seen_at")},
    }


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
        self.snapshot = fresh
        log.info(
            "serving published version %s (%d profiles)", fresh.version_id, len(fresh.documents)
        )

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
