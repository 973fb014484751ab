"""Which tables the Spark lane compares: every relation both engines build, derived from dbt's
manifest, not a hand list (issue 17: no table escapes the comparison).

A relation is compared when dbt builds it on Spark (a node of SPARK_SELECTION, resolved here on
the manifest as dbt resolves it: `selected_nodes`) and it is materialised (table, incremental,
touched_users, view, seed; not ephemeral), plus the raw load's tables (the PySpark raw load
writes them on Spark, not dbt: RAW_LOAD_TABLES). NOT_COMPARED names what cannot be compared,
each with its reason; RUN_COLUMNS the columns that hold each run's own time or id (never equal
across two runs), left out of a compared table.

The selection is resolved without dbt (the manifest's JSON is enough: a test of make test reads
the parsed manifest, no JVM, no dbt start-up). Only the selector forms SPARK_SELECTION uses are
understood; any other raises, so a new form cannot silently select nothing. The Spark lane
checks the resolution against dbt's own: the relations its Spark build ran (run_results.json)
are exactly `built_relations`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from personalization.spark.lane import SPARK_SELECTION

# The raw load's tables: raw_landing_events (a dbt Python model on DuckDB, left out of the Spark
# selection) and landing_file_log (a source the load writes) are the PySpark raw load's on Spark
RAW_LOAD_TABLES = ("raw.raw_landing_events", "raw.landing_file_log")

# Relations dbt builds on both engines that the comparison leaves out, with the reason. Empty
# today: every relation of the selection compares.
NOT_COMPARED: dict[str, str] = {}

# Relations the fixture's build leaves empty on both engines: compared (both empty); the lane
# asserts that these, and only these, are empty.
EMPTY_ON_THE_FIXTURE: dict[str, str] = {
    "intermediate.int_touched_events": (
        "the touched users' stitched events: empty when every user is recomputed (a first build; "
        "Spark's touched-user models are plain tables and read int_events_stitched)"
    ),
    "privacy.privacy_requests": "the fixture files no privacy request",
    "privacy.privacy_suppression_list": "the fixture files no privacy request",
    "marts.rpt_privacy_requests": "the fixture files no privacy request",
}

# Each run's own load stamps and build ids, per relation (DuckDB's raw load stamps the wall
# clock, the lane's PySpark load as_of; dbt's invocation id differs per run)
_LOADED_AT = ("loaded_at",)
RUN_COLUMNS: dict[str, tuple[str, ...]] = {
    "raw.raw_landing_events": _LOADED_AT,
    "raw.landing_file_log": ("load_id", "logged_at"),
    "raw.raw_landing_files": _LOADED_AT,
    "staging.stg_landing__events_checked": _LOADED_AT,
    "staging.stg_events": _LOADED_AT,
    "staging.quarantined_events": _LOADED_AT,
    "staging.stg_duplicate_events": _LOADED_AT,
    "restricted.restricted_identity_keys": ("last_loaded_at",),
    "intermediate.int_events_stitched": _LOADED_AT,
    "intermediate.int_identity_activity_daily": _LOADED_AT,
    "intermediate.int_identity_links": ("last_loaded_at",),
    # input_fingerprint (the rates a DuckDB incremental run compares) is null on Spark, where
    # the model is a plain table rebuilt every run
    "intermediate.int_order_amounts": ("loaded_at", "build_id", "input_fingerprint"),
    # the run's invocation id, and the latest load stamp it read
    "intermediate.int_touched_user_runs": ("build_id", "loaded_high_water_mark"),
}

# materialisations that leave a relation behind (ephemeral models are inlined: no relation)
MATERIALISED = frozenset({"table", "incremental", "touched_users", "view", "seed"})
BUILT_RESOURCE_TYPES = frozenset({"model", "seed"})


def relation_name(node: Mapping[str, Any]) -> str:
    """schema.alias: the relation's name on both engines (generate_schema_name gives every layer
    the same plain schema on every target)."""
    return f"{node['schema']}.{node['alias']}"


def _matches(node: Mapping[str, Any], selector: str) -> bool:
    """Whether a node matches one selector without graph operators."""
    method, _, value = selector.rpartition(":")
    if method == "path":
        path = node["original_file_path"]
        return path == value or path.startswith(value.rstrip("/") + "/")
    if method == "resource_type":
        return node["resource_type"] == value
    if method == "":
        return node["name"] == value
    raise ValueError(f"selector {selector!r}: only path:, resource_type: and names are resolved")


def _ancestors(nodes: Mapping[str, Mapping[str, Any]], unique_ids: Iterable[str]) -> set[str]:
    """Every node upstream of unique_ids (through depends_on.nodes), the nodes themselves not."""
    seen: set[str] = set()
    stack = list(unique_ids)
    while stack:
        for parent in nodes[stack.pop()].get("depends_on", {}).get("nodes", []):
            if parent in nodes and parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def selected_nodes(
    manifest: Mapping[str, Any], selection: Sequence[str] = tuple(SPARK_SELECTION)
) -> dict[str, Mapping[str, Any]]:
    """The models and seeds a `--select ... --exclude ...` selection picks, as dbt resolves it
    for the forms used (path:, resource_type:, a name, a leading `+` for its ancestors):
    unique_id -> manifest node."""
    if not selection or selection[0] != "--select" or selection.count("--exclude") > 1:
        raise ValueError(f"expected --select ... [--exclude ...], got {list(selection)}")
    split = selection.index("--exclude") if "--exclude" in selection else len(selection)
    includes, excludes = selection[1:split], selection[split + 1 :]
    # every node a selector may name (unit tests too: the selection excludes some), though
    # only models and seeds are returned
    nodes = {**manifest["nodes"], **manifest.get("unit_tests", {})}

    def resolve(selectors: Sequence[str]) -> set[str]:
        chosen: set[str] = set()
        for selector in selectors:
            plain = selector.removeprefix("+")
            if plain.endswith("+") or "," in plain or "*" in plain:
                raise ValueError(f"selector {selector!r}: operator not resolved here")
            matched = {uid for uid, node in nodes.items() if _matches(node, plain)}
            if not matched:
                raise ValueError(f"selector {selector!r} matches no node")
            chosen |= matched
            if selector.startswith("+"):
                chosen |= _ancestors(nodes, matched)
        return chosen

    chosen = resolve(includes) - resolve(excludes)
    return {
        uid: nodes[uid]
        for uid in sorted(chosen)
        if nodes[uid]["resource_type"] in BUILT_RESOURCE_TYPES
    }


def built_relations(
    manifest: Mapping[str, Any], selection: Sequence[str] = tuple(SPARK_SELECTION)
) -> list[str]:
    """The relations dbt builds for `selection` (schema.alias, sorted), ephemeral models left
    out."""
    return sorted(
        relation_name(node)
        for node in selected_nodes(manifest, selection).values()
        if node["config"]["materialized"] in MATERIALISED
    )


def compared_tables(
    manifest: Mapping[str, Any], selection: Sequence[str] = tuple(SPARK_SELECTION)
) -> list[tuple[str, tuple[str, ...]]]:
    """(relation, columns to leave out) of every relation the lane compares: the raw load's and
    every built relation but NOT_COMPARED."""
    relations = [*RAW_LOAD_TABLES, *built_relations(manifest, selection)]
    return [
        (relation, RUN_COLUMNS.get(relation, ()))
        for relation in dict.fromkeys(relations)
        if relation not in NOT_COMPARED
    ]


def escaped_relations(manifest: Mapping[str, Any]) -> list[str]:
    """The relations the project materialises (every model and seed of the manifest, on any
    path) that the lane neither compares nor excludes with a reason, nor seeds from DuckDB (the
    Python models' tables, SEEDED_TABLES): what a model outside SPARK_SELECTION's paths would
    be. Empty when no table escapes the comparison."""
    from personalization.spark.seed_from_duckdb import SEEDED_TABLES

    accounted = {table for table, _ in compared_tables(manifest)}
    accounted |= set(NOT_COMPARED) | set(SEEDED_TABLES)
    every = {
        relation_name(node)
        for node in manifest["nodes"].values()
        if node["resource_type"] in BUILT_RESOURCE_TYPES
        and node["config"]["materialized"] in MATERIALISED
    }
    return sorted(every - accounted)
