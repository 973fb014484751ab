"""dbt-duckdb plugin: registers the project's SQL functions on every connection dbt opens.

- pseudonymise(text) -> text: keyed HMAC-SHA256 (personalization.privacy), so the key stays in
  the process environment and never reaches the database file.

Enabled in profiles.yml with `plugins: [{module: personalization.duckdb_plugin, config: {...}}]`.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from personalization.privacy import pseudonymise, resolve_key


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.key = resolve_key(require_key=bool(plugin_config.get("require_key", False)))

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        key = self.key
        conn.create_function(
            "pseudonymise",
            lambda value: pseudonymise(value, key),
            ["VARCHAR"],
            "VARCHAR",
            side_effects=False,
        )
