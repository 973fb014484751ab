"""Resources: where the warehouse lives (DuckDB file, landing folder, as_of) and the dbt CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from personalization.dbt_runner import dbt_executable
from personalization.raw_load import DEFAULT_SETTLE_SECONDS
from personalization.reference_time import ReferenceTime, resolve_as_of
from personalization.tracking_plan import PROJECT_ROOT

# The pool of every step that opens the DuckDB build file (dbt runs, publish, the volume check).
# The instance limits it to 1 (orchestration/dagster_home/dagster.yaml): one writer at a time.
DUCKDB_POOL = "duckdb_writer"

DBT_PROJECT = DbtProject(project_dir=PROJECT_ROOT, profiles_dir=PROJECT_ROOT)


def env_path(name: str, default: str) -> Path:
    """A path from the environment (or the default); relative paths are from the project root."""
    path = Path(os.environ.get(name) or default)
    return path if path.is_absolute() else PROJECT_ROOT / path


def landing_root() -> Path:
    return env_path("PERSONALIZATION_LANDING", "data/landing")


def landing_settle_seconds() -> int:
    """Seconds a landing file must be left unmodified before it is taken (its writer is done):
    PERSONALIZATION_LANDING_SETTLE_SECONDS, else the dbt var's default. The micro-batch sensor
    and the builds it starts use the same value, so the sensor never hands over a file the raw
    load would skip."""
    value = os.environ.get("PERSONALIZATION_LANDING_SETTLE_SECONDS")
    return int(value) if value else DEFAULT_SETTLE_SECONDS


class WarehouseResource(dg.ConfigurableResource):
    """Where a run reads landing files and writes the DuckDB database.

    Unset fields come from the environment at run time: PERSONALIZATION_DB
    (data/warehouse.duckdb), PERSONALIZATION_LANDING (data/landing), PERSONALIZATION_PUBLISH
    (data/published), as_of by personalization.reference_time (PERSONALIZATION_AS_OF, else the
    warehouse's pinned as_of, else the time of the run),
    PERSONALIZATION_DBT_TARGETS (data/dbt_runs: dbt's artefacts, one folder per invocation).

    dbt runs on the `prod` target (PERSONALIZATION_HMAC_KEY required) unless development_key is
    set or PERSONALIZATION_DBT_TARGET names another target: orchestrated runs never fall back to
    the public development key by accident (docs/privacy.md).
    """

    db_path: str | None = None
    landing_path: str | None = None
    publish_root: str | None = None
    as_of: str | None = None
    target_root: str | None = None
    development_key: bool = False
    # the dbt var lookback_hours of every run (None: the project's default)
    lookback_hours: int | None = None

    def db(self) -> Path:
        return (
            Path(self.db_path)
            if self.db_path
            else env_path("PERSONALIZATION_DB", "data/warehouse.duckdb")
        )

    def landing(self) -> Path:
        return Path(self.landing_path) if self.landing_path else landing_root()

    def published(self) -> Path:
        if self.publish_root:
            return Path(self.publish_root)
        return env_path("PERSONALIZATION_PUBLISH", "data/published")

    def reference_time(self) -> ReferenceTime:
        """as_of by the project's one rule (personalization.reference_time)."""
        return resolve_as_of(self.as_of, self.db())

    def targets(self) -> Path:
        if self.target_root:
            return Path(self.target_root)
        return env_path("PERSONALIZATION_DBT_TARGETS", "data/dbt_runs")

    def dbt_vars(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "landing_path": str(self.landing()),
            "landing_settle_seconds": landing_settle_seconds(),
        }
        reference = self.reference_time()
        if reference.as_of is not None:
            values["as_of"] = reference.as_of
        if self.lookback_hours is not None:
            values["lookback_hours"] = self.lookback_hours
        return values

    def dbt_target(self) -> str:
        """The profile target of dbt runs: dev only when asked for, else prod by default."""
        if self.development_key:
            return "dev"
        return os.environ.get("PERSONALIZATION_DBT_TARGET") or "prod"

    @contextmanager
    def dbt_env(self) -> Iterator[None]:
        """The environment of a dbt subprocess started in the block (profiles.yml reads the DB)."""
        # a subset runs the tests whose parents are all selected or built ("buildable"), not a
        # test that also reads a model the subset leaves out (clusters in a micro-batch)
        values = {
            "PERSONALIZATION_DB": str(self.db()),
            "PERSONALIZATION_DBT_TARGET": self.dbt_target(),
            "DBT_INDIRECT_SELECTION": os.environ.get("DBT_INDIRECT_SELECTION", "buildable"),
        }
        saved = {name: os.environ.get(name) for name in values}
        self.db().parent.mkdir(parents=True, exist_ok=True)
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=DBT_PROJECT, profiles_dir=str(PROJECT_ROOT), dbt_executable=dbt_executable()
    )
