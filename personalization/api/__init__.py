"""Run the profile API: who is this user, which segments is she in (published snapshot).

`GET /v1/profiles/{user_id}` (traits, segments, clusters, consent, freshness),
`GET /v1/segments` and `GET /v1/segments/{name}/members?cursor=`, with read keys as Bearer
tokens, served from the published marts (read-only) and switching version when a publish does.
See docs/collector.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

READ_KEYS_ENV = "PERSONALIZATION_API_KEYS"
DEFAULT_PORT = 8089


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--published",
        type=Path,
        default=None,
        help="the publish folder (default: PERSONALIZATION_PUBLISH or data/published)",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=0.5, help="how often to look for a new version"
    )
    parser.add_argument(
        "--development-key",
        action="store_true",
        help="turn raw ids into mart keys with the public development key when "
        "PERSONALIZATION_HMAC_KEY is unset (the demo's marts only)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from personalization.api.app import ApiSettings, create_app
    from personalization.collector.app import parse_keys
    from personalization.privacy import MissingKeyError, WeakKeyError, resolve_key
    from personalization.publish import DEFAULT_OUT

    try:
        # the marts' pseudonyms need the warehouse's key: the public one only when asked for
        resolve_key(require_key=not args.development_key)
    except (MissingKeyError, WeakKeyError) as error:
        log.error("%s", error)
        return 2
    keys = parse_keys(os.environ.get(READ_KEYS_ENV))
    if not keys:
        log.error(
            "%s is not set: give the profile API one or more read keys (a,b,c)", READ_KEYS_ENV
        )
        return 2
    published = args.published or Path(os.environ.get("PERSONALIZATION_PUBLISH") or DEFAULT_OUT)
    settings = ApiSettings(published.resolve(), keys, args.poll_seconds)
    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False
    )
    return 0
