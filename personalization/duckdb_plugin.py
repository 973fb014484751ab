"""dbt-duckdb plugin: registers the project's SQL functions on every connection dbt opens.

- pseudonymise(text) -> text: keyed HMAC-SHA256 (personalization.privacy), so the key stays in
  the process environment and never reaches the database file.
- user_pseudonym(text) -> text: the marts' user key of a raw userId / anonymousId
  (personalization.privacy.user_pseudonym), computed once per distinct identity
  (restricted.restricted_identity_keys).
- scrub_pii(text) -> text: a SQL macro (vectorised, no Python per row) generated from the PII
  guard's own patterns (personalization.pii_guard.scrub_expression): e-mails, phone numbers and
  IPs in free text, percent-encoded ones included, become placeholders. Temporary (per
  cursor): only tables may call it, never a view read by another connection.

On every connection it also checks the key's fingerprint against the one stored with the
warehouse (privacy.key_fingerprint): the first build records it, a build with another key is
refused unless it is a full refresh (key rotation), which records the new one.

Before the connection opens it sets the storage format a new warehouse file is created in
(table_storage.STORAGE_VERSION: ZSTD for long text) and DuckDB's memory limit (memory_limit): the
PERSONALIZATION_DUCKDB_MEMORY_LIMIT environment variable when set (DuckDB's units: '8GB',
'2GiB'), else two thirds of the machine's memory, a third left to the Python models, the
readers and the system (memory_limit()).

Enabled in profiles.yml with `plugins: [{module: personalization.duckdb_plugin, config: {...}}]`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from personalization.pii_guard import scrub_expression
from personalization.privacy import KeyMismatchError, Pseudonymiser, key_fingerprint, resolve_key
from personalization.table_storage import STORAGE_VERSION

log = logging.getLogger(__name__)

FINGERPRINT_TABLE = "privacy.key_fingerprint"
MEMORY_LIMIT_ENV = "PERSONALIZATION_DUCKDB_MEMORY_LIMIT"
MEMORY_SHARE = 2 / 3  # of the machine's memory, when MEMORY_LIMIT_ENV is not set
SCRUB_SQL = scrub_expression("value")


def _flag(value: Any) -> bool:
    """A config flag that may arrive as a bool or as rendered text ('true', 'False', '1')."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes")


def _full_refresh() -> bool:
    try:
        from dbt.flags import get_flags

        return bool(getattr(get_flags(), "FULL_REFRESH", False))
    except Exception:  # noqa: BLE001 - outside a dbt invocation there is no flag
        return False


def check_fingerprint(conn: DuckDBPyConnection, key: bytes, full_refresh: bool) -> None:
    """Record the key's fingerprint in a new warehouse; refuse another key unless full_refresh."""
    fingerprint = key_fingerprint(key)
    conn.execute("create schema if not exists privacy")
    conn.execute(
        f"create table if not exists {FINGERPRINT_TABLE} "
        "(fingerprint varchar not null, recorded_at timestamp not null)"
    )
    stored = conn.execute(f"select fingerprint from {FINGERPRINT_TABLE}").fetchall()
    if stored == [(fingerprint,)]:
        return
    if stored and not full_refresh:
        raise KeyMismatchError(
            f"this warehouse was built with another pseudonymisation key (fingerprint "
            f"{stored[0][0]}, this key {fingerprint}): pseudonyms made with two keys never join. "
            "Use the warehouse's key, or rotate: run `dbt build --full-refresh` with the new key "
            "(see docs/privacy.md, key rotation)."
        )
    if stored:
        log.warning("key rotated: fingerprint %s -> %s (full refresh)", stored[0][0], fingerprint)
    conn.execute(f"delete from {FINGERPRINT_TABLE}")
    conn.execute(
        f"insert into {FINGERPRINT_TABLE} values (?, current_timestamp::timestamp)", [fingerprint]
    )


def _preload_python_model_libraries() -> None:
    """Import scikit-learn once, before dbt starts its threads.

    dbt runs Python models in parallel threads of one process; two models importing scikit-learn
    for the first time at the same moment can see it half-initialised ("cannot import name
    'clone' from partially initialized module"). Importing it here, single-threaded, avoids that.
    """
    import sklearn.cluster  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.neighbors  # noqa: F401


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit(env: Mapping[str, str] = os.environ) -> str:
    """DuckDB's memory limit: MEMORY_LIMIT_ENV when set, else MEMORY_SHARE of the machine's
    memory in MiB. A fixed 8GB spilled a 10M-event full build to disk on a 24 GiB machine (the
    staging model 114 s against 67 s at 16GB); DuckDB's own default, 80%, leaves too little to
    the Python models that run in the same process."""
    configured = (env.get(MEMORY_LIMIT_ENV) or "").strip()
    if configured:
        return configured
    return f"{int(machine_memory_bytes() * MEMORY_SHARE) >> 20}MiB"


class Plugin(BasePlugin):
    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        config.setdefault("memory_limit", memory_limit())
        # a new warehouse file in the storage format that can hold ZSTD text (table_storage);
        # an existing file keeps its own format
        config.setdefault("storage_compatibility_version", STORAGE_VERSION)

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.key = resolve_key(require_key=_flag(plugin_config.get("require_key", True)))
        _preload_python_model_libraries()

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        # scalar functions (one Python call per row): DuckDB's Arrow UDFs return text whose
        # buffers can be freed before DuckDB copies them (duckdb/duckdb#15626): tried, and a
        # build failed on corrupt pseudonyms ("Invalid unicode ... in segment statistics").
        # A blank value has no pseudonym: the function returns NULL for it, which DuckDB
        # accepts only with null_handling 'special' (by default it stops the query).
        pseudonymiser = Pseudonymiser(self.key)
        for name, function in (
            ("pseudonymise", pseudonymiser.pseudonymise),
            ("user_pseudonym", pseudonymiser.user_pseudonym),
        ):
            conn.create_function(
                name, function, ["VARCHAR"], "VARCHAR", null_handling="special",
                side_effects=False,
            )  # fmt: skip
        # a read-only connection (dagster-dbt's row counts and column schemas after a build)
        # writes nothing, so there is no key to check and no fingerprint table it could create
        (read_only,) = conn.execute(
            "select readonly from duckdb_databases() where database_name = current_database()"
        ).fetchone()
        if not read_only:
            check_fingerprint(conn, self.key, _full_refresh())

    def configure_cursor(self, cursor: DuckDBPyConnection) -> None:
        # temporary objects belong to one connection, and dbt runs SQL on cursors of it
        cursor.execute(f"create or replace temp macro scrub_pii(value) as ({SCRUB_SQL})")
