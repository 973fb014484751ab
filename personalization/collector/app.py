"""The collector's ASGI app (Starlette): Segment's HTTP tracking API in front of a LandingWriter."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from personalization.collector.messages import (
    MAX_BATCH_BYTES,
    MESSAGE_TYPES,
    PayloadError,
    decode_body,
    received_at_now,
    to_lines,
    too_large_batch,
)
from personalization.collector.writer import LandingWriter, WriterUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectorSettings:
    landing_dir: Path
    write_keys: frozenset[str]
    rotate_bytes: int = 16 << 20
    rotate_seconds: float = 5.0
    max_pending_bytes: int = 32 << 20


def error(status: int, code: str, message: str) -> JSONResponse:
    """Segment's error shape: the SDKs read `code` and `message`."""
    headers = {"WWW-Authenticate": 'Basic realm="collector"'} if status == 401 else None
    return JSONResponse(
        {"success": False, "code": code, "message": message}, status_code=status, headers=headers
    )


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an HTTP Basic Authorization header (Segment: the write key), or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def parse_keys(text: str | None) -> frozenset[str]:
    """Keys from a comma-separated setting (blanks ignored)."""
    return frozenset(key.strip() for key in (text or "").split(",") if key.strip())


def key_allowed(candidate: str | None, keys: frozenset[str]) -> bool:
    """Constant-time comparison against every configured key."""
    if candidate is None:
        return False
    return any(hmac.compare_digest(candidate.encode(), key.encode()) for key in keys)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (400) as soon as it passes `limit` bytes: never buffered beyond it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large_batch(int(declared))
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large_batch(size)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: CollectorSettings) -> Starlette:
    if not settings.write_keys:
        raise ValueError("the collector needs at least one write key")
    writer = LandingWriter(
        settings.landing_dir,
        rotate_bytes=settings.rotate_bytes,
        rotate_seconds=settings.rotate_seconds,
        max_pending_bytes=settings.max_pending_bytes,
    )

    async def ingest(request: Request, message_type: str | None) -> JSONResponse:
        if not key_allowed(
            basic_auth_user(request.headers.get("authorization")), settings.write_keys
        ):
            return error(401, "unauthorized", "missing or unknown write key (HTTP Basic auth)")
        try:
            # a gzipped body is limited before and after inflating
            body = await read_body(request, MAX_BATCH_BYTES)
            body = decode_body(body, request.headers.get("content-encoding"))
            lines, count = to_lines(body, message_type, received_at_now())
        except PayloadError as refused:
            return error(400, refused.code, refused.message)
        if count:
            try:
                await writer.append(lines)
            except WriterUnavailableError as failure:
                return error(503, "unavailable", str(failure))
        return JSONResponse({"success": True})

    def endpoint(message_type: str | None):  # noqa: ANN202 - a Starlette endpoint
        async def handle(request: Request) -> JSONResponse:
            return await ingest(request, message_type)

        return handle

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "lines_written": writer.lines_written})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await writer.start()
        log.info("collector writing to %s", settings.landing_dir)
        try:
            yield
        finally:
            await writer.close()  # graceful shutdown: flush and publish the open file
            log.info("collector stopped: %d line(s) written", writer.lines_written)

    routes = [Route("/v1/batch", endpoint(None), methods=["POST"])]
    routes += [Route(f"/v1/{kind}", endpoint(kind), methods=["POST"]) for kind in MESSAGE_TYPES]
    routes.append(Route("/health", health, methods=["GET"]))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.writer = writer
    return app
