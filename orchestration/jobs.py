"""Jobs: the daily full build and the incremental micro-batch (raw load -> staging -> marts)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from orchestration.dbt_assets import TRANSLATOR, dbt_models, is_daily_only, is_report, layer
from orchestration.publish import published_marts
from orchestration.resources import DBT_PROJECT

SEGMENTS_PATH = "models/marts/segments/"


def _manifest() -> dict[str, Any]:
    return json.loads(DBT_PROJECT.manifest_path.read_text())


def microbatch_unique_ids(manifest: Mapping[str, Any]) -> set[str]:
    """dbt models a micro-batch rebuilds: the profile and segment marts and everything upstream.

    Targets: every model under models/marts except reports (rpt_*, audits: daily) and marts fed
    by daily-only models (clustering refits, models tagged `daily`); every non-report model
    under models/marts/segments/ (even one that reads cluster membership). Upstream: the
    targets' ancestors, minus seeds and daily-only models (rebuilt by the daily build; the
    micro-batch reads their last tables).
    """
    nodes = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] in ("model", "seed")}
    parents = manifest["parent_map"]

    def ancestors(unique_id: str) -> set[str]:
        seen: set[str] = set()
        stack = [unique_id]
        while stack:
            for parent in parents.get(stack.pop(), []):
                if parent in nodes and parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    daily_only = {k for k, v in nodes.items() if is_daily_only(v)}
    targets = set()
    for unique_id, props in nodes.items():
        if props["resource_type"] != "model" or layer(props) != "marts":
            continue
        if is_report(props):
            continue
        in_segments = str(props.get("original_file_path", "")).startswith(SEGMENTS_PATH)
        if in_segments or not ancestors(unique_id) & daily_only:
            targets.add(unique_id)
    selected = set(targets)
    for unique_id in targets:
        selected |= ancestors(unique_id)
    return {k for k in selected if nodes[k]["resource_type"] == "model" and k not in daily_only}


def microbatch_selection() -> dg.AssetSelection:
    manifest = _manifest()
    keys = [TRANSLATOR.get_asset_key(manifest["nodes"][k]) for k in microbatch_unique_ids(manifest)]
    return dg.AssetSelection.assets(*sorted(keys, key=lambda key: key.to_user_string()))


MICROBATCH_TAGS = {"personalization/kind": "incremental"}

microbatch_job = dg.define_asset_job(
    name="microbatch_job",
    selection=microbatch_selection(),
    description=(
        "Incremental micro-batch: raw load of new landing files -> staging -> profiles -> "
        "segments, with their dbt tests as (blocking) checks. Started by the landing sensor and "
        "the hourly schedule."
    ),
    tags=MICROBATCH_TAGS,
)

daily_full_build_job = dg.define_asset_job(
    name="daily_full_build_job",
    selection=dg.AssetSelection.assets(dbt_models, published_marts),
    description=(
        "Full build: every dbt model and test (seeds, clustering refit, audits), the volume "
        "check, then publish the marts."
    ),
    tags={"personalization/kind": "full"},
)
