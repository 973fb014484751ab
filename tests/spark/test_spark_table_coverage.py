"""No table escapes the Spark lane's comparison (personalization/spark/tables.py): the set it
compares is derived from dbt's manifest, and every relation the project materialises is compared,
excluded with a reason, or seeded from DuckDB. Cheap (the manifest pytest_configure parsed; no
JVM, no dbt run): part of make test, not marked `spark`."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from personalization.spark.seed_from_duckdb import SEEDED_TABLES
from personalization.spark.tables import (
    EMPTY_ON_THE_FIXTURE,
    NOT_COMPARED,
    RAW_LOAD_TABLES,
    RUN_COLUMNS,
    built_relations,
    compared_tables,
    escaped_relations,
    selected_nodes,
)
from personalization.tracking_plan import PROJECT_ROOT


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The project's manifest, parsed by tests/conftest.py's pytest_configure (read only)."""
    return json.loads((PROJECT_ROOT / "target" / "manifest.json").read_text())


def _model(name: str, path: str, materialized: str, schema: str = "marts") -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "alias": name,
        "schema": schema,
        "original_file_path": path,
        "config": {"materialized": materialized},
        "depends_on": {"nodes": []},
    }


def test_every_relation_is_compared_excluded_or_seeded(manifest: dict[str, Any]) -> None:
    compared = [table for table, _ in compared_tables(manifest)]
    assert escaped_relations(manifest) == []
    assert len(compared) == len(set(compared))
    # the tables the hand list missed (issue 17) are compared now
    for table in (
        "intermediate.int_touched_users", "intermediate.int_touched_identities",
        "intermediate.int_touched_events", "intermediate.int_touched_user_runs",
        "intermediate.int_user_behaviour_totals", "privacy.privacy_requests",
        "marts.fct_sessions", "intermediate.int_user_catalogue_traits",
        "intermediate.int_user_attribute_observations", "marts.fct_segment_membership",
    ):  # fmt: skip
        assert table in compared, table
    assert set(RAW_LOAD_TABLES) <= set(compared)
    assert not set(SEEDED_TABLES) & set(compared)
    # no stale names: every listed relation is one the lane builds, every exclusion has a reason
    built = set(built_relations(manifest)) | set(RAW_LOAD_TABLES)
    for listed in (NOT_COMPARED, RUN_COLUMNS, EMPTY_ON_THE_FIXTURE):
        assert set(listed) <= built, sorted(set(listed) - built)
    assert all(reason.strip() for reason in NOT_COMPARED.values())
    assert set(EMPTY_ON_THE_FIXTURE) <= set(compared)


def test_a_model_outside_the_selection_escapes(manifest: dict[str, Any]) -> None:
    """Planted: a table model on a path SPARK_SELECTION does not cover is reported; a view under
    models/marts is compared; an ephemeral model leaves no relation."""
    planted = copy.deepcopy(manifest)
    planted["nodes"]["model.personalization.elsewhere"] = _model(
        "elsewhere", "models/elsewhere/elsewhere.sql", "table"
    )
    planted["nodes"]["model.personalization.a_view"] = _model(
        "a_view", "models/marts/a_view.sql", "view"
    )
    planted["nodes"]["model.personalization.inlined"] = _model(
        "inlined", "models/marts/inlined.sql", "ephemeral"
    )
    assert escaped_relations(planted) == ["marts.elsewhere"]
    compared = dict(compared_tables(planted))
    assert "marts.a_view" in compared
    assert "marts.inlined" not in compared


def test_the_selection_resolves_as_dbt_selects(manifest: dict[str, Any]) -> None:
    """`+name` takes the model and its ancestors, `--exclude` removes names (unit tests
    included), and a selector form the resolver does not know, or one that matches nothing,
    raises instead of selecting nothing."""
    names = {
        node["name"]
        for node in selected_nodes(
            manifest, ["--select", "+restricted_identity_keys", "--exclude", "raw_landing_events"]
        ).values()
    }
    assert {"restricted_identity_keys", "stg_events", "ref_countries"} <= names
    assert "raw_landing_events" not in names
    assert "dim_user_profiles" not in names  # downstream, not upstream
    spark = {node["name"] for node in selected_nodes(manifest).values()}
    assert "int_user_age_knn" not in spark and "raw_landing_events" not in spark
    assert "ref_countries" in spark  # resource_type:seed
    for selection in (
        ["--select", "tag:daily"],
        ["--select", "stg_events+"],
        ["--select", "no_such_model"],
        ["--exclude", "stg_events"],
    ):
        with pytest.raises(ValueError):
            selected_nodes(manifest, selection)
