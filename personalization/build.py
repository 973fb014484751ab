"""Build the warehouse with dbt at the project's one reference time (as_of), and say which.

`personalization build [--as-of T] [--full-refresh] [--select ...] [--development-key]`: the
landing folder and the database come from PERSONALIZATION_LANDING / PERSONALIZATION_DB; as_of from
--as-of, else PERSONALIZATION_AS_OF, else the warehouse's pinned as_of, else now
(personalization.reference_time). The build uses the prod target, whose pseudonyms need
PERSONALIZATION_HMAC_KEY (or PERSONALIZATION_DBT_TARGET's target); --development-key asks for the
dev target, which falls back to the public development key (demo data only).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from personalization.dbt_runner import DbtError, Warehouse, run_dbt
from personalization.raw_load import DEFAULT_SETTLE_SECONDS
from personalization.reference_time import resolve_as_of

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", default=None, help="reference time (ISO); see above")
    parser.add_argument(
        "--full-refresh", action="store_true", help="rebuild incremental models and history"
    )
    parser.add_argument("--select", nargs="*", default=None, help="dbt selection")
    parser.add_argument(
        "--development-key",
        action="store_true",
        help="build on the dev target, which falls back to the public development key when "
        "PERSONALIZATION_HMAC_KEY is unset (demo data only)",
    )


def warehouse_from_environment(as_of: str | None) -> Warehouse:
    db = Path(os.environ.get("PERSONALIZATION_DB") or "data/warehouse.duckdb")
    landing = Path(os.environ.get("PERSONALIZATION_LANDING") or "data/landing")
    reference = resolve_as_of(as_of, db)
    log.info("as_of %s", reference.describe())
    # a live landing folder: files still being written wait (the dbt default settle time)
    settle = DEFAULT_SETTLE_SECONDS
    return Warehouse(db.resolve(), landing.resolve(), as_of=reference.as_of, settle_seconds=settle)


def run(args: argparse.Namespace) -> int:
    warehouse = warehouse_from_environment(args.as_of)
    command = ["build"]
    if args.full_refresh:
        command.append("--full-refresh")
    if args.select:
        command += ["--select", *args.select]
    target = "dev" if args.development_key else os.environ.get("PERSONALIZATION_DBT_TARGET", "prod")
    try:
        result = run_dbt(command, warehouse, target=target)
    except DbtError as error:
        log.error("%s", error)
        return 1
    log.info("%s", result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "done")
    return 0
