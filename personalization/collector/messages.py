"""Segment HTTP tracking API payloads -> landing lines: limits, validation, server stamps."""

from __future__ import annotations

import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson

# Segment's limits: 32 KB per message, 500 KB per batch request (the SDKs use the same numbers)
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MESSAGE_TYPES = ("track", "identify", "page", "screen", "alias", "group")
# batch-level fields that apply to every message of the batch (a message's own value wins)
BATCH_DEFAULTS = ("context", "integrations", "sentAt")
# never written to the landing files
DROPPED_FIELDS = ("writeKey",)


class PayloadError(ValueError):
    """A request the collector refuses with 400; `code` and `message` go into the body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_large_batch(size: int) -> PayloadError:
    return PayloadError(
        "batch_too_large",
        f"request body is {size} bytes: the limit is {MAX_BATCH_BYTES} bytes (500 KB) per request",
    )


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The request body, gunzipped when sent with Content-Encoding: gzip, within 500 KB."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise PayloadError("unsupported_encoding", f"Content-Encoding {encoding!r} is not gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        # at most one byte past the limit: a gzip bomb never inflates in memory
        plain = inflater.decompress(body, MAX_BATCH_BYTES + 1)
    except zlib.error as error:
        raise PayloadError("invalid_gzip", f"body is not valid gzip: {error}") from error
    if len(plain) > MAX_BATCH_BYTES:
        raise too_large_batch(len(plain) + len(inflater.unconsumed_tail))
    return plain


def _parse_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PayloadError("invalid_json", f"body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise PayloadError(
            "invalid_json", f"body must be a JSON object, not {type(payload).__name__}"
        )
    return payload


def received_at_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def compact_json(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; orjson for speed, the standard library for what orjson refuses
    (integers beyond 64 bits, which json.loads keeps exact)."""
    try:
        return orjson.dumps(message)
    except TypeError:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def _line(message: dict[str, Any], where: str, received_at: str) -> bytes:
    size = len(compact_json(message))
    if size > MAX_MESSAGE_BYTES:
        raise PayloadError(
            "message_too_large",
            f"{where} is {size} bytes: the limit is {MAX_MESSAGE_BYTES} bytes (32 KB) per message",
        )
    for field in DROPPED_FIELDS:
        message.pop(field, None)
    message["receivedAt"] = received_at  # the server's clock, never the client's
    if not message.get("messageId"):
        message["messageId"] = f"collector-{uuid.uuid4()}"
    return compact_json(message) + b"\n"


def to_lines(body: bytes, message_type: str | None, received_at: str) -> tuple[bytes, int]:
    """Landing lines (JSON, newline-terminated) of one request and their count.

    `message_type` None is /v1/batch (a `batch` list of typed messages); otherwise the body is
    one message of that type. Raises PayloadError for anything Segment would refuse with 400.
    """
    if len(body) > MAX_BATCH_BYTES:
        raise too_large_batch(len(body))
    payload = _parse_object(body)
    if message_type is not None:
        payload["type"] = message_type
        return _line(payload, "message", received_at), 1
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise PayloadError("invalid_batch", "body must have a `batch` list of messages")
    defaults = {key: payload[key] for key in BATCH_DEFAULTS if key in payload}
    lines = []
    for index, message in enumerate(batch):
        where = f"batch[{index}]"
        if not isinstance(message, dict):
            raise PayloadError("invalid_message", f"{where} is not a JSON object")
        if message.get("type") not in MESSAGE_TYPES:
            raise PayloadError(
                "invalid_message",
                f"{where} has type {message.get('type')!r}: expected one of "
                + ", ".join(MESSAGE_TYPES),
            )
        lines.append(_line({**defaults, **message}, where, received_at))
    return b"".join(lines), len(lines)
