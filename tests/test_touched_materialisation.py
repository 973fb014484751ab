"""Issue 16: the touched_users materialisation (macros/materializations/touched_users.sql).

On an incremental run it deletes the touched users' rows and inserts them again in one
transaction, after a schema guard that fails loudly on a column change (what
on_schema_change='fail' gave under dbt's incremental materialisation) and rewrites the table's
comments only when they differ from the descriptions. The micro-batch equivalence tests prove
the rows; these plant what the guard and the comment check must catch, on a copy of the fixture
warehouse (one run of two models each).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
from conftest import make_warehouse, query

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.tracking_plan import PROJECT_ROOT

MODELS = ("marts.fct_sessions", "marts.fct_user_activity_daily")  # neither reads the other
TOUCHED_USER_MODELS = (
    "int_user_consent",
    "int_user_attribute_observations",
    "int_user_attributes",
    "int_user_behaviour_totals",
    "int_user_catalogue_traits",
    "fct_user_activity_daily",
    "fct_sessions",
    "fct_segment_membership",
)


def copy_of(fixture_warehouse: Warehouse, root: Path) -> Warehouse:
    warehouse = make_warehouse(root, fixture_warehouse.landing_path)
    root.mkdir(exist_ok=True)
    shutil.copy(fixture_warehouse.db_path, warehouse.db_path)
    return warehouse


def rows(warehouse: Warehouse, table: str) -> list[tuple]:
    return sorted(query(warehouse, f"select * from {table}"), key=repr)


def run_models(warehouse: Warehouse) -> tuple[int, str]:
    """`dbt run` of the two models at the tightest lookback; (return code, output + dbt.log)."""
    done = run_dbt(
        ["run", "--select", "fct_sessions", "fct_user_activity_daily"],
        warehouse,
        dbt_vars={"lookback_hours": 0},
        check=False,
    )
    assert warehouse.target_path is not None
    log = (warehouse.target_path / "logs" / "dbt.log").read_text()
    return done.returncode, done.stdout + done.stderr + log


def test_touched_user_models_use_the_touched_users_materialisation() -> None:
    manifest = json.loads((PROJECT_ROOT / "target" / "manifest.json").read_text())
    found = {
        props["name"]: props["config"]["materialized"]
        for props in manifest["nodes"].values()
        if props["resource_type"] == "model" and props["config"]["materialized"] == "touched_users"
    }
    assert sorted(found) == sorted(TOUCHED_USER_MODELS)
    # the delete is the materialisation's: no model keeps the old pre-hook
    hooks = [
        props["name"]
        for props in manifest["nodes"].values()
        if any(
            "delete_touched_users" in hook["sql"] for hook in props["config"].get("pre-hook", [])
        )
    ]
    assert hooks == []


def test_a_column_change_fails_the_run_before_any_row_changes(
    tmp_path: Path, fixture_warehouse: Warehouse
) -> None:
    warehouse = copy_of(fixture_warehouse, tmp_path)
    with duckdb.connect(str(warehouse.db_path)) as con:
        con.execute("alter table marts.fct_sessions add column planted_column varchar")
        con.execute("alter table marts.fct_user_activity_daily alter column revenue type varchar")
    before = {table: rows(warehouse, table) for table in MODELS}
    code, output = run_models(warehouse)
    assert code != 0
    assert "fct_sessions: the model's columns differ from the table's" in output
    assert "planted_column (model missing, table VARCHAR)" in output
    assert "fct_user_activity_daily: the model's columns differ from the table's" in output
    assert "revenue (model DOUBLE, table VARCHAR)" in output
    # the guard runs before the delete: nothing was deleted or inserted
    assert {table: rows(warehouse, table) for table in MODELS} == before


def test_an_incremental_run_keeps_the_rows_and_rewrites_only_stale_comments(
    tmp_path: Path, fixture_warehouse: Warehouse
) -> None:
    warehouse = copy_of(fixture_warehouse, tmp_path)
    (described,) = query(
        warehouse,
        "select comment from duckdb_columns() where schema_name = 'marts'"
        " and table_name = 'fct_sessions' and column_name = 'session_id'",
    )
    assert described[0], "the fixture build wrote no column comments"
    with duckdb.connect(str(warehouse.db_path)) as con:
        con.execute("comment on column marts.fct_sessions.session_id is 'stale'")
    before = {table: rows(warehouse, table) for table in MODELS}
    code, output = run_models(warehouse)
    assert code == 0, output[-3000:]
    # every user deleted and inserted again (the fixture's touched set is every user): the same rows
    assert {table: rows(warehouse, table) for table in MODELS} == before
    assert query(
        warehouse,
        "select comment from duckdb_columns() where schema_name = 'marts'"
        " and table_name = 'fct_sessions' and column_name = 'session_id'",
    ) == [described]
    # the stale comment was rewritten; fct_user_activity_daily's equal comments were left alone
    assert '"marts"."fct_sessions".session_id is $dbt_comment_literal_block$' in output
    assert '"marts"."fct_user_activity_daily".revenue is' not in output
    # the incremental path: a delete and an insert by name, no temporary table
    assert 'insert into "' in output and "by name" in output
    assert "__dbt_tmp" not in output
