"""Warehouse access for the thin dbt Python models: the previous run's tables, if any."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)


def read_previous(session: Any, database: str, schema: str, table: str) -> pd.DataFrame | None:
    """The current content of database.schema.table (the previous run's output while a model
    rebuilds it), or None when it does not exist yet."""
    exists = session.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_name = ?",
        [database, schema, table],
    ).fetchone()[0]
    if not exists:
        log.info("no previous %s.%s: cluster ids start afresh", schema, table)
        return None
    return session.sql(f'select * from "{database}"."{schema}"."{table}"').df()


def fitted_at(as_of: str | None) -> pd.Timestamp:
    """The reference time of the run as a naive UTC timestamp: the as_of var, else now (the
    same fallback as the as_of() macro)."""
    if as_of in (None, "", "None", "none", "null"):
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    from personalization.clustering.pipeline import naive_utc

    return naive_utc(as_of)
