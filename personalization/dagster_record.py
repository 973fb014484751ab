"""Record a dbt build that ran outside Dagster in the Dagster instance that `make ui` opens.

`make demo` builds with the dbt CLI (it must work without a Dagster daemon), so without this the
UI would list every asset as "never materialized" next to a built warehouse. Each model or seed
dbt built becomes a run-less materialisation of its asset (with its column types and, for a
table, its row count, read from the warehouse), and each test a result of its asset check, with
the same asset and check keys the Dagster definitions use (dagster-dbt's translator with asset
checks on, as `orchestration.dbt_assets`), dbt's own timing and status as metadata.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings
from dagster_dbt.asset_utils import get_asset_check_key_for_test

from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)
INSTANCE_SETTINGS = PROJECT_ROOT / "orchestration" / "dagster.yaml"
BUILT = {"model", "seed", "snapshot"}
# dbt's test statuses as Dagster check results: (passed, severity)
TEST_OUTCOMES = {
    "pass": (True, dg.AssetCheckSeverity.ERROR),
    "warn": (False, dg.AssetCheckSeverity.WARN),
    "fail": (False, dg.AssetCheckSeverity.ERROR),
    "error": (False, dg.AssetCheckSeverity.ERROR),
}


@dataclass(frozen=True)
class Recorded:
    materialisations: int
    check_results: int


def _metadata(result: dict[str, Any], as_of: str) -> dict[str, Any]:
    response = result.get("adapter_response") or {}
    metadata: dict[str, Any] = {
        "dbt unique_id": result["unique_id"],
        "dbt status": str(result["status"]),
        "execution seconds": round(float(result.get("execution_time") or 0.0), 3),
        "as_of": as_of,
        "recorded from": "a dbt build outside Dagster (make demo)",
    }
    if response.get("rows_affected") is not None:
        metadata["rows affected"] = int(response["rows_affected"])
    return metadata


def is_counted_view(node: dict[str, Any]) -> bool:
    """A view whose rows Dagster shows: a mart (models/marts), what a person opens in the UI.
    dagster-dbt counts no view (a view's query may be costly); the marts' views are joins on the
    user key (dim_user_profiles: 0.1 s to count at 10M events). Other views get a schema only."""
    return node.get("config", {}).get("materialized") == "view" and node.get(
        "original_file_path", ""
    ).startswith("models/marts/")


def _table_metadata(warehouse: duckdb.DuckDBPyConnection, node: dict[str, Any]) -> dict[str, Any]:
    """Dagster's standard table metadata: the relation's columns and types, and the rows of a
    table or a mart view (is_counted_view)."""
    schema, name = node["schema"], node.get("alias") or node["name"]
    columns = warehouse.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    ).fetchall()
    if not columns:
        return {}
    metadata: dict[str, Any] = {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=column, type=kind) for column, kind in columns]
        )
    }
    kind = warehouse.execute(
        "select table_type from information_schema.tables"
        " where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchone()
    if kind and (kind[0] == "BASE TABLE" or is_counted_view(node)):
        relation = f'"{schema}"."{name}"'
        metadata["dagster/row_count"] = warehouse.execute(
            f"select count(*) from {relation}"
        ).fetchone()[0]
    return metadata


def record_dbt_build(
    target_path: Path, dagster_home: Path, warehouse: Path, as_of: str
) -> Recorded:
    """Report target_path's run_results.json (read with its manifest.json) to the instance in
    dagster_home, created with the project's instance settings if it does not exist yet; the
    tables' columns and row counts are read from the warehouse file the build wrote."""
    manifest = json.loads((target_path / "manifest.json").read_text())
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings = dagster_home / "dagster.yaml"
    if not settings.exists():
        shutil.copyfile(INSTANCE_SETTINGS, settings)
    translator = DagsterDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
    )
    materialisations = check_results = 0
    with (
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
        duckdb.connect(str(warehouse), read_only=True) as tables,
    ):
        for result in results:
            unique_id = result["unique_id"]
            resource_type = unique_id.split(".", 1)[0]
            metadata = _metadata(result, as_of)
            if resource_type in BUILT and result["status"] == "success":
                key = translator.get_asset_spec(manifest, unique_id, None).key
                metadata |= _table_metadata(tables, manifest["nodes"][unique_id])
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key=key, metadata=metadata)
                )
                materialisations += 1
            elif resource_type == "test" and result["status"] in TEST_OUTCOMES:
                check = get_asset_check_key_for_test(manifest, translator, unique_id, None)
                if check is None:
                    continue  # a test dagster-dbt attaches to no single asset (no check either)
                passed, severity = TEST_OUTCOMES[result["status"]]
                if result.get("failures"):
                    metadata["failing rows"] = int(result["failures"])
                instance.report_runless_asset_event(
                    dg.AssetCheckEvaluation(
                        asset_key=check.asset_key,
                        check_name=check.name,
                        passed=passed,
                        severity=severity,
                        metadata=metadata,
                    )
                )
                check_results += 1
    log.info(
        "recorded in Dagster (%s): %d materialisations, %d check results",
        dagster_home,
        materialisations,
        check_results,
    )
    return Recorded(materialisations, check_results)
