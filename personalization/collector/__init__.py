"""Run the event collector: Segment's HTTP tracking API writing durable landing files.

Apps send events with the Segment (or RudderStack) SDKs they already use, pointed at this server;
`/v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/alias` and
`/v1/group` take Segment-spec JSON with a write key as HTTP Basic user name, and every
acknowledged message is a line of a landing file the raw load reads. See docs/collector.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

WRITE_KEYS_ENV = "PERSONALIZATION_WRITE_KEYS"
DEFAULT_PORT = 8088
# requests in flight beyond this get 503 from uvicorn: with 500 KB bodies, memory stays bounded
DEFAULT_LIMIT_CONCURRENCY = 200


def default_landing_dir() -> Path:
    """`collector/` under the landing folder the micro-batch sensor watches."""
    from orchestration.resources import landing_root

    return landing_root() / "collector"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--landing-dir",
        type=Path,
        default=None,
        help="where landing files go (default: PERSONALIZATION_LANDING/collector)",
    )
    parser.add_argument("--rotate-mb", type=float, default=16.0, help="rotate files at this size")
    parser.add_argument(
        "--rotate-seconds", type=float, default=5.0, help="publish the open file after this age"
    )
    parser.add_argument("--max-pending-mb", type=float, default=32.0)
    parser.add_argument("--limit-concurrency", type=int, default=DEFAULT_LIMIT_CONCURRENCY)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from personalization.collector.app import CollectorSettings, create_app, parse_keys

    keys = parse_keys(os.environ.get(WRITE_KEYS_ENV))
    if not keys:
        log.error(
            "%s is not set: give the collector one or more write keys (a,b,c)", WRITE_KEYS_ENV
        )
        return 2
    settings = CollectorSettings(
        landing_dir=(args.landing_dir or default_landing_dir()).resolve(),
        write_keys=keys,
        rotate_bytes=int(args.rotate_mb * (1 << 20)),
        rotate_seconds=args.rotate_seconds,
        max_pending_bytes=int(args.max_pending_mb * (1 << 20)),
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        limit_concurrency=args.limit_concurrency,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0
