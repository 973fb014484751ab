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


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.key = resolve_key(require_key=bool(plugin_config.get("require_key", False)))
        _preload_python_model_libraries()

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        key = self.key
        conn.create_function(
            "pseudonymise",
            lambda value: pseudonymise(value, key),
            ["VARCHAR"],
            "VARCHAR",
            side_effects=False,
        )
