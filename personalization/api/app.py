"""The profile API's ASGI app (Starlette): profiles and segments from the published snapshot."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from personalization.api.keys import mart_key
from personalization.api.snapshot import (
    CONSENT_COLUMNS,
    USER_KEY,
    Snapshot,
    SnapshotStore,
    SnapshotUnavailableError,
)
from personalization.collector.app import key_allowed

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class ApiSettings:
    published_root: Path
    read_keys: frozenset[str]
    poll_seconds: float = 0.5


def plain(value: Any) -> Any:
    """A DuckDB value as JSON: timestamps as ISO text, decimals as numbers, lists item-wise."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def bearer_token(header: str | None) -> str | None:
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as failure:
        raise ValueError(f"invalid cursor {cursor!r}") from failure


def profile_document(snapshot: Snapshot, user_id: str) -> dict[str, Any] | None:
    """The profile of a raw userId, or None (unknown or erased: not in the published marts).

    Segments and clusters are personalisation: a user without that consent gets none. Segments
    are those the user is an activatable member of (the consent the segment requires).
    """
    key = mart_key(user_id)
    rows = snapshot.query(f"select * from profiles where {USER_KEY} = ?", [key])
    if not rows:
        return None
    profile = rows[0]
    consented = bool(profile["has_personalization_consent"])
    segments: list[str] = []
    clusters: list[dict[str, Any]] = []
    if consented:
        segments = [
            row["segment_name"]
            for row in snapshot.query(
                f"select segment_name from members where {USER_KEY} = ? and is_activatable"
                " order by segment_name",
                [key],
            )
        ]
        if snapshot.has_clusters:
            clusters = snapshot.query(
                f"select method, cluster_id, cluster_name from clusters where {USER_KEY} = ?"
                " order by method",
                [key],
            )
    traits = {
        name: plain(value)
        for name, value in profile.items()
        if name != USER_KEY and name not in CONSENT_COLUMNS
    }
    return {
        "user_key": key,
        "traits": traits,
        "segments": segments,
        "clusters": plain(clusters),
        "consent": {
            "personalization": consented,
            "advertising": bool(profile["has_advertising_consent"]),
        },
        "freshness": {
            "version_id": snapshot.version_id,
            "published_at": snapshot.published_at,
            "last_seen_at": plain(profile.get("last_seen_at")),
        },
    }


def create_app(settings: ApiSettings) -> Starlette:
    if not settings.read_keys:
        raise ValueError("the profile API needs at least one read key")
    store = SnapshotStore(settings.published_root, settings.poll_seconds)

    def authorised(request: Request) -> bool:
        return key_allowed(bearer_token(request.headers.get("authorization")), settings.read_keys)

    def snapshot_or_error(request: Request) -> Snapshot | JSONResponse:
        if not authorised(request):
            return error(401, "unauthorized", "missing or unknown read key (Bearer token)")
        try:
            return store.current()
        except SnapshotUnavailableError as failure:
            return error(503, "unavailable", str(failure))

    async def get_profile(request: Request) -> JSONResponse:
        snapshot = snapshot_or_error(request)
        if isinstance(snapshot, JSONResponse):
            return snapshot
        document = profile_document(snapshot, request.path_params["user_id"])
        if document is None:
            return error(404, "not_found", "no profile for this user")
        return JSONResponse(document)

    async def list_segments(request: Request) -> JSONResponse:
        snapshot = snapshot_or_error(request)
        if isinstance(snapshot, JSONResponse):
            return snapshot
        rows = snapshot.query(
            "select segment_name, description, owner, size, activatable_size, requires_consent,"
            " computed_at from segments order by segment_name"
        )
        return JSONResponse({"segments": plain(rows), "version_id": snapshot.version_id})

    async def segment_members(request: Request) -> JSONResponse:
        snapshot = snapshot_or_error(request)
        if isinstance(snapshot, JSONResponse):
            return snapshot
        name = request.path_params["name"]
        try:
            limit = int(request.query_params.get("limit", DEFAULT_PAGE))
            after = (
                decode_cursor(request.query_params["cursor"])
                if "cursor" in request.query_params
                else ""
            )
        except ValueError as failure:
            return error(400, "bad_request", str(failure))
        if not 1 <= limit <= MAX_PAGE:
            return error(400, "bad_request", f"limit must be between 1 and {MAX_PAGE}")
        if not snapshot.query("select 1 from segments where segment_name = ?", [name]):
            return error(404, "not_found", f"no segment {name!r}")
        # keyset pagination; only members the segment's consent allows to act on
        keys = [
            row[USER_KEY]
            for row in snapshot.query(
                f"select {USER_KEY} from members where segment_name = ? and is_activatable"
                f" and {USER_KEY} > ? order by {USER_KEY} limit ?",
                [name, after, limit + 1],
            )
        ]
        page, more = keys[:limit], len(keys) > limit
        return JSONResponse(
            {
                "segment": name,
                "members": page,
                "next_cursor": encode_cursor(page[-1]) if more else None,
                "version_id": snapshot.version_id,
            }
        )

    async def health(_: Request) -> JSONResponse:
        version = store.snapshot.version_id if store.snapshot else None
        return JSONResponse({"ok": version is not None, "version_id": version})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await store.start()
        try:
            yield
        finally:
            await store.stop()

    routes = [
        Route("/v1/profiles/{user_id:str}", get_profile, methods=["GET"]),
        Route("/v1/segments", list_segments, methods=["GET"]),
        Route("/v1/segments/{name:str}/members", segment_members, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.store = store
    return app
