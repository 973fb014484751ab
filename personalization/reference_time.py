"""The reference time (as_of) of a build, resolved the same way by every entry point.

The rule (docs/architecture.md, "Reference time"):

1. an explicit value: the as_of var, `--as-of`, a Dagster resource's `as_of`;
2. else the PERSONALIZATION_AS_OF environment variable;
3. else, for an existing warehouse whose last successful build was pinned to an as_of (by 1 or
   2, as `make demo` pins the end of its sample data): that as_of again, so a later build does
   not jump to now and lapse every profile of historical data;
4. else now (the time of the run).

Plain `dbt build` applies 1, 2 and 4 (macros/as_of.sql). Every build records the as_of it used in
raw.dbt_builds, and refuses one that would move it backwards (macros/build_log.sql).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

AS_OF_ENV = "PERSONALIZATION_AS_OF"
BUILD_LOG = "raw.dbt_builds"


@dataclass(frozen=True)
class ReferenceTime:
    as_of: str | None  # ISO timestamp; None = now
    source: str  # explicit, environment, warehouse, now

    def describe(self) -> str:
        return f"{self.as_of or 'now'} ({self.source})"


def pinned_as_of(db_path: Path) -> str | None:
    """The as_of of the warehouse's last successful build, when that build was pinned to one."""
    if not Path(db_path).exists():
        return None
    try:
        with duckdb.connect(str(db_path), read_only=True) as con:
            row = con.execute(
                f"select strftime(as_of, '%Y-%m-%dT%H:%M:%S.%fZ'), as_of_pinned from {BUILD_LOG} "
                "where status = 'success' order by started_at desc limit 1"
            ).fetchone()
    except duckdb.CatalogException:
        return None  # no build log yet
    if row is None or not row[1]:
        return None
    return str(row[0])


def resolve_as_of(explicit: str | None, db_path: Path | None) -> ReferenceTime:
    """Apply the rule above; db_path None skips step 3 (no warehouse)."""
    if explicit:
        return ReferenceTime(explicit, "explicit")
    from_env = os.environ.get(AS_OF_ENV)
    if from_env:
        return ReferenceTime(from_env, "environment")
    if db_path is not None:
        pinned = pinned_as_of(db_path)
        if pinned:
            return ReferenceTime(pinned, "warehouse")
    return ReferenceTime(None, "now")
