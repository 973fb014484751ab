"""Issue 16: the folded key guards a sensor-started micro-batch runs (guard_keys).

One `guard_keys` test per table folds the table's key tests (unique, unique_combination_of_columns,
not_null, relationships) into one query over the rows the run wrote. On a copy of the fixture
warehouse whose touched set is a few users (one per touched-user table), the guards and dbt's own
`unique_fct_sessions_session_id` are compiled once by dbt (the scope is rendered against the
build log, as on a micro-batch); then every folded rule gets one planted bad row among the written
rows, in its own transaction that is rolled back, and the table's guard must name that rule.
A duplicate between a written and an unwritten row fails too; a duplicate between two unwritten
rows passes the guard and fails dbt's whole-table test (the hourly and daily runs keep it).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import duckdb
import pytest
from conftest import make_warehouse

from orchestration import dbt_assets
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import PROJECT_ROOT

MANIFEST = json.loads((PROJECT_ROOT / "target" / "manifest.json").read_text())
NODES = MANIFEST["nodes"]
KEY_KINDS = ("unique", "unique_combination_of_columns", "not_null", "relationships")
WHOLE_TABLE_SESSIONS_KEY = "unique_fct_sessions_session_id"


def guard_tests() -> dict[str, dict[str, Any]]:
    """The guard_keys test of each model, by model name."""
    found: dict[str, dict[str, Any]] = {}
    for props in NODES.values():
        if (props.get("test_metadata") or {}).get("name") == "guard_keys":
            model = NODES[props["attached_node"]]["name"]
            assert model not in found, f"{model} has two guard_keys tests"
            found[model] = props
    return found


def key_rules(model: str) -> list[tuple[str, list[str], str]]:
    """(kind, columns, expected reason) of each key test the model declares."""
    rules = []
    for props in NODES.values():
        meta = props.get("test_metadata") or {}
        if (
            meta.get("name") not in KEY_KINDS
            or NODES.get(props.get("attached_node") or "", {}).get("name") != model
        ):
            continue
        kwargs = meta["kwargs"]
        if meta["name"] == "unique_combination_of_columns":
            columns = list(kwargs["combination_of_columns"])
        else:
            columns = [kwargs["column_name"]]
        if meta["name"] == "relationships":
            parent = kwargs["to"].split("'")[1]
            reason = f"relationships({columns[0]} -> {parent}.{kwargs['field']})"
        else:
            kind = "not_null" if meta["name"] == "not_null" else "unique"
            reason = f"{kind}({', '.join(columns)})"
        rules.append((meta["name"], columns, reason))
    return rules


def scope_of(model: str) -> str:
    rows = (guard_tests()[model]["test_metadata"]["kwargs"] or {}).get("rows", "all")
    return str(rows)


def test_every_key_tested_table_a_micro_batch_writes_has_one_guard() -> None:
    """Every written table (not a view) with a key test has a guard_keys test, and only those:
    a table without one would lose its keys on sensor batches."""
    keyed = {
        NODES[props["attached_node"]]["name"]
        for props in NODES.values()
        if (props.get("test_metadata") or {}).get("name") in KEY_KINDS
        and NODES[props["attached_node"]]["config"]["materialized"] not in dbt_assets.NOT_WRITTEN
        and dbt_assets.LANDING_INDEPENDENT_TAG
        not in NODES[props["attached_node"]]["config"]["tags"]
        and not dbt_assets.is_daily_only(NODES[props["attached_node"]])
        and NODES[props["attached_node"]]["resource_type"] == "model"
    }
    guarded = set(guard_tests())
    # what is keyed but not guarded is never on a micro-batch (reports, clusters, seeds)
    micro = set(dbt_assets_micro_models())
    assert keyed & micro == guarded
    assert len(guarded) == 26
    scopes = {model: scope_of(model) for model in guarded}
    assert {m for m, s in scopes.items() if s == "loaded"} == {
        "raw_landing_events",
        "stg_landing__events_checked",
    }
    touched_users_models = {
        props["name"]
        for props in NODES.values()
        if props["resource_type"] == "model" and props["config"]["materialized"] == "touched_users"
    }
    assert {m for m, s in scopes.items() if s == "touched_users"} == touched_users_models


def dbt_assets_micro_models() -> list[str]:
    """The models of the micro-batch job (the dbt selector, resolved by dagster-dbt)."""
    from orchestration.definitions import defs

    selected = defs.resolve_job_def("microbatch_job").asset_layer.selected_asset_keys
    ids = dbt_assets.selected_unique_ids(dbt_assets.DBT_MANIFEST, selected)
    return [NODES[uid]["name"] for uid in ids if uid in NODES]


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, fixture_warehouse: Warehouse
) -> tuple[Warehouse, dict[str, str], dict[str, str]]:
    """A copy of the fixture warehouse whose touched set is one user per touched-user table; the
    guards' and the whole-table session key's SQL as dbt compiles them there (by model / name),
    and that user per table."""
    root = tmp_path_factory.mktemp("guard_keys")
    warehouse = make_warehouse(root, fixture_warehouse.landing_path)
    shutil.copy(fixture_warehouse.db_path, warehouse.db_path)
    touched: dict[str, str] = {}
    with duckdb.connect(str(warehouse.db_path)) as con:
        for model in guard_tests():
            if scope_of(model) == "touched_users":
                (user,) = con.sql(
                    f"select min(canonical_user_id) from {relation(model)}"  # noqa: S608
                ).fetchone()
                assert user is not None, model
                touched[model] = user
        con.execute(f"delete from {relation('int_touched_users')}")
        con.execute(
            f"insert into {relation('int_touched_users')} by name "  # noqa: S608
            "select distinct unnest($users) as canonical_user_id, false as is_full_rebuild",
            {"users": sorted(set(touched.values()))},
        )
    run_dbt(["compile", "--select", "test_name:guard_keys", WHOLE_TABLE_SESSIONS_KEY], warehouse)
    assert warehouse.target_path is not None
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    compiled = {NODES[r["unique_id"]]["name"]: r["compiled_code"] for r in results}
    sql = {model: compiled[props["name"]] for model, props in guard_tests().items()}
    sql[WHOLE_TABLE_SESSIONS_KEY] = compiled[WHOLE_TABLE_SESSIONS_KEY]
    return warehouse, sql, touched


def relation(model: str) -> str:
    props = next(p for p in NODES.values() if p["resource_type"] == "model" and p["name"] == model)
    return f"{props['schema']}.{props['alias']}"


def written_row(con: duckdb.DuckDBPyConnection, model: str, touched: dict[str, str]) -> str:
    """A condition selecting one row the run wrote (by the guard's scope); for append-only
    tables a copy of the latest line, loaded a day later (after the load high-water mark)."""
    table = relation(model)
    scope = scope_of(model)
    if scope == "touched_users":
        return f"canonical_user_id = '{touched[model]}'"
    if scope == "loaded":
        con.execute(
            f"insert into {table} select * replace (loaded_at + interval 1 day as loaded_at) "  # noqa: S608
            f"from {table} where loaded_at = (select max(loaded_at) from {table}) limit 1"
        )
        return f"loaded_at > (select max(loaded_at) - interval 1 hour from {table})"
    if model == "int_touched_events":  # empty after a full build: a touched user's event
        con.execute(
            f"insert into {table} by name select * from {relation('int_events_stitched')} "  # noqa: S608
            "where canonical_user_id is not null limit 1"
        )
        return "true"
    if model == "int_touched_user_runs":  # a build the log never recorded: state ignores it
        con.execute(
            f"insert into {table} select * replace ('planted-build' as build_id) "  # noqa: S608
            f"from {table} limit 1"
        )
        return "build_id = 'planted-build'"
    return "true"


def violations(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str | None]]:
    return [tuple(row) for row in con.sql(sql).fetchall()]  # type: ignore[misc]


def test_the_guards_pass_on_the_clean_warehouse(
    guarded: tuple[Warehouse, dict[str, str], dict[str, str]],
) -> None:
    warehouse, sql, touched = guarded
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        for model in guard_tests():
            assert violations(con, sql[model]) == [], model
    # the scopes were rendered as on a micro-batch (not the whole table): the touched set and the
    # previous run's load high-water mark
    assert "int_touched_users" in sql["fct_sessions"]
    assert "loaded_at >" in sql["raw_landing_events"]
    assert "int_touched_users" not in sql["int_user_scores"]  # rebuilt whole: every row


def test_each_folded_rule_fails_on_its_planted_row(
    guarded: tuple[Warehouse, dict[str, str], dict[str, str]],
) -> None:
    """One bad row per folded rule, among the rows the run wrote: the table's one guard names
    that rule (and, for a key, the planted key)."""
    warehouse, sql, touched = guarded
    checked = 0
    with duckdb.connect(str(warehouse.db_path)) as con:
        for model in sorted(guard_tests()):
            rules = key_rules(model)
            assert rules, model
            for kind, columns, reason in rules:
                con.execute("begin transaction")
                try:
                    where = written_row(con, model, touched)
                    table = relation(model)
                    if kind == "not_null":
                        change = f" replace (null as {columns[0]})"
                    elif kind == "relationships":
                        change = f" replace ('planted-missing' as {columns[0]})"
                    else:
                        change = ""
                    base = con.sql(
                        f"select {', '.join(columns)} from {table} where {where} limit 1"  # noqa: S608
                    ).fetchone()
                    assert base is not None, (model, reason)
                    con.execute(
                        f"insert into {table} select *{change} from {table} "  # noqa: S608
                        f"where {where} limit 1"
                    )
                    found = violations(con, sql[model])
                finally:
                    con.execute("rollback")
                assert reason in {r for r, _ in found}, (model, reason, found)
                if kind in ("unique", "unique_combination_of_columns"):
                    keys = {k for r, k in found if r == reason}
                    planted = ", ".join("null" if v is None else str(v) for v in base)
                    assert planted in keys, (model, reason, found)
                checked += 1
    assert checked == 66  # every key test of the 26 tables a micro-batch writes


def test_a_duplicate_of_an_unwritten_row_fails_one_among_unwritten_rows_is_left_to_hourly_runs(
    guarded: tuple[Warehouse, dict[str, str], dict[str, str]],
) -> None:
    warehouse, sql, touched = guarded
    user = touched["fct_sessions"]
    table = relation("fct_sessions")
    with duckdb.connect(str(warehouse.db_path)) as con:
        (other,) = con.sql(
            f"select min(session_id) from {table} where canonical_user_id != '{user}'"  # noqa: S608
        ).fetchone()
        assert other is not None
        # a touched user's written row takes an untouched user's session id
        con.execute("begin transaction")
        con.execute(
            f"insert into {table} select * replace ('{user}' as canonical_user_id, "  # noqa: S608
            f"-1 as session_number) from {table} where session_id = '{other}'"
        )
        found = violations(con, sql["fct_sessions"])
        con.execute("rollback")
        assert ("unique(session_id)", other) in found
        # two untouched rows share a key: the micro-batch's guard does not read them; dbt's
        # whole-table test (hourly and daily runs) fails on it
        con.execute("begin transaction")
        con.execute(
            f"insert into {table} select * from {table} where session_id = '{other}'"  # noqa: S608
        )
        folded = violations(con, sql["fct_sessions"])
        whole = con.sql(sql[WHOLE_TABLE_SESSIONS_KEY]).fetchall()
        con.execute("rollback")
        assert folded == []
        assert [row[0] for row in whole] == [other]
