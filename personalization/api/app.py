"""The profile API's ASGI app (Starlette): profiles and segments from the published snapshot."""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from personalization.api.keys import mart_key
from personalization.api.snapshot import Snapshot, SnapshotStore, SnapshotUnavailableError
from personalization.collector.app import key_allowed

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class ApiSettings:
    published_root: Path
    read_keys: frozenset[str]
    poll_seconds: float = 0.5


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
        # the caller's raw userId becomes the mart key here, and only here
        document = snapshot.documents.get(mart_key(request.path_params["user_id"]))
        if document is None:  # unknown, or erased (gone from the published marts)
            return error(404, "not_found", "no profile for this user")
        return Response(document, media_type="application/json")

    async def list_segments(request: Request) -> JSONResponse:
        snapshot = snapshot_or_error(request)
        if isinstance(snapshot, JSONResponse):
            return snapshot
        return Response(snapshot.segments, media_type="application/json")

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
        keys = snapshot.members.get(name)
        if keys is None:
            return error(404, "not_found", f"no segment {name!r}")
        # keyset pagination over the sorted keys of the members the segment's consent allows
        start = bisect.bisect_right(keys, after) if after else 0
        page, more = keys[start : start + limit], start + limit < len(keys)
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
