"""Documented, typed marts (issue 19): every published column has a description, carried as a
DuckDB comment into the build and the published file; money columns are numbers for pandas."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from personalization import column_docs
from personalization.dbt_runner import Warehouse
from personalization.publish import META_SCHEMA, PUBLISHED_DB_NAME, publish
from personalization.tracking_plan import PROJECT_ROOT, DeclaredTrait

# a published column whose name says it holds an amount of money
MONEY_PATTERN = r"(revenue|amount|price|order_value)"


def undocumented(con: duckdb.DuckDBPyConnection, database: str) -> list[str]:
    """Published relations and columns of `database` without a comment (publish_meta aside)."""
    relations = con.execute(
        "select schema_name || '.' || view_name from duckdb_views() "
        "where database_name = $db and not internal and schema_name <> $meta "
        "and coalesce(comment, '') = '' "
        "union all select schema_name || '.' || table_name from duckdb_tables() "
        "where database_name = $db and schema_name <> $meta and coalesce(comment, '') = ''",
        {"db": database, "meta": META_SCHEMA},
    ).fetchall()
    columns = con.execute(
        "select schema_name || '.' || table_name || '.' || column_name from duckdb_columns() "
        "where database_name = $db and schema_name <> $meta and coalesce(comment, '') = '' "
        "order by 1",
        {"db": database, "meta": META_SCHEMA},
    ).fetchall()
    return [name for (name,) in relations + columns]


@pytest.fixture(scope="module")
def published(fixture_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's fixture warehouse published once; the version folder."""
    return publish(fixture_warehouse.db_path, tmp_path_factory.mktemp("docs_published"))


def test_every_published_column_has_a_description(published: Path) -> None:
    """Computed from a real build: a new mart or column without a description fails here."""
    with duckdb.connect(str(published / PUBLISHED_DB_NAME), read_only=True) as con:
        database = con.execute("select current_database()").fetchone()[0]
        missing = undocumented(con, database)
        published_columns = con.execute(
            "select count(*) from duckdb_columns() where database_name = $db "
            "and schema_name <> $meta",
            {"db": database, "meta": META_SCHEMA},
        ).fetchone()[0]
        # the generated trait descriptions and a hand-written one reach the published file
        comments = dict(
            con.execute(
                "select column_name, comment from duckdb_columns() "
                "where schema_name = 'marts' and table_name = 'dim_user_profiles'"
            ).fetchall()
        )
        (table_comment,) = con.execute(
            "select comment from duckdb_views() where view_name = 'dim_user_profiles'"
        ).fetchone()
    assert missing == [], f"{len(missing)} published columns lack a description: {missing}"
    assert published_columns > 250
    assert comments["large_orders"] == column_docs.trait_column_descriptions()["large_orders"]
    assert comments["revenue"].startswith("Gross: sum of Order Completed revenue")
    assert "Grain: one row per canonical_user_id" in table_comment


def test_the_check_finds_an_undocumented_column(tmp_path: Path) -> None:
    """The check above is not vacuous: an uncommented column or table is reported."""
    with duckdb.connect(str(tmp_path / "x.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.t (a integer, b integer)")
        con.execute("comment on table marts.t is 'a table'")
        con.execute("comment on column marts.t.a is 'documented'")
        con.execute("create view marts.v as select 1 as c")
        assert undocumented(con, "x") == ["marts.v", "marts.t.b", "marts.v.c"]


def test_build_database_carries_the_comments(fixture_warehouse: Warehouse) -> None:
    """persist_docs: the build's own tables carry the descriptions (BI tools on the warehouse)."""
    with duckdb.connect(str(fixture_warehouse.db_path), read_only=True) as con:
        (comment,) = con.execute(
            "select comment from duckdb_columns() where schema_name = 'marts' "
            "and table_name = 'fct_sessions' and column_name = 'session_number'"
        ).fetchone()
    assert comment == "1 for the user's first session, then in order of start."


def test_trait_column_docs_are_current() -> None:
    """The generated block in _profiles__models.yml matches the catalogue and the plan
    (`make column-docs` rewrites it)."""
    assert column_docs.write(check=True), "run `make column-docs`"
    generated = column_docs.trait_column_descriptions()
    assert set(generated) >= {t["name"] for t in column_docs.load_catalogue()}


def test_trait_descriptions_say_what_the_definition_says() -> None:
    windowed = {
        "name": "premium_views_30d",
        "type": "counter",
        "event": "Product Viewed",
        "where": [{"property": "category", "op": "not_in", "value": ["books", "toys"]}],
        "window": "30d",
    }
    assert column_docs.describe_trait(windowed) == (
        "Number of Product Viewed events with category not in books, toys in the 30d before "
        "as_of; 0 when there are none. Catalogue trait (trait_catalogue.yml)."
    )
    latest = {"name": "x", "type": "last", "event": "page", "property": "path"}
    assert column_docs.describe_trait(latest).startswith(
        "The path of the latest of the page views up to as_of; null when there are none."
    )
    declared = column_docs.describe_declared(
        DeclaredTrait(name="income_band", type="string", accepted=("low", "high"), pii=False)
    )
    assert declared == {
        "income_band": "The user's income_band (string; one of low, high): a declared custom "
        "trait (tracking_plan.yml traits).",
        "income_band_source": "Where income_band came from: user_feedback or declared.",
        "income_band_observed_at": "When the income_band value in use was observed.",
    }


def test_a_missing_generated_block_is_an_error() -> None:
    with pytest.raises(column_docs.ColumnDocsError, match="BEGIN generated"):
        column_docs.updated_text("models: []\n", {"a": "b"})


def test_money_columns_are_numbers_for_pandas(published: Path) -> None:
    """Every published money column reads as float64 in pandas, from Parquet and from DuckDB,
    and no published column is DECIMAL (pandas would give Python Decimal objects)."""
    with duckdb.connect(str(published / PUBLISHED_DB_NAME), read_only=True) as con:
        decimals = con.execute(
            "select table_name || '.' || column_name from duckdb_columns() "
            "where data_type like 'DECIMAL%'"
        ).fetchall()
        money = con.execute(
            "select table_name, column_name from duckdb_columns() "
            "where schema_name = 'marts' and regexp_matches(column_name, $p) "
            "and data_type not in ('VARCHAR', 'BOOLEAN') order by 1, 2",
            {"p": MONEY_PATTERN},
        ).fetchall()
        via_duckdb = {
            (table, column): con.execute(f'select "{column}" from marts.{table}').df()[column]
            for table, column in money
        }
    assert decimals == []
    assert ("dim_user_profiles", "net_revenue") in money
    assert ("fct_user_activity_daily", "refunded_amount") in money
    assert ("people", "revenue") in money
    for (table, column), series in via_duckdb.items():
        from_parquet = pd.read_parquet(published / "marts" / f"{table}.parquet", columns=[column])
        assert from_parquet[column].dtype == "float64", (table, column)
        assert series.dtype == "float64", (table, column)


def test_money_sums_agree_to_the_cent(fixture_warehouse: Warehouse) -> None:
    """The profile's revenue is the sum of its days' revenue, to the cent, in DOUBLE."""
    with duckdb.connect(str(fixture_warehouse.db_path), read_only=True) as con:
        rows = con.execute(
            """
            select p.canonical_user_id, p.revenue, p.net_revenue, p.refunded_amount,
                   round(sum(d.revenue), 2)
            from marts.dim_user_profiles as p
            inner join marts.fct_user_activity_daily as d using (canonical_user_id)
            group by all
            """
        ).fetchall()
    paying = [row for row in rows if row[1] > 0]
    assert paying, "the fixture has paying users"
    for _, revenue, net, refunded, days in rows:
        assert revenue == days
        assert net == round(revenue - refunded, 2)


OLDEST_DUCKDB = "1.0.0"  # the oldest the README promises (Makefile OLDEST_DUCKDB)


def test_oldest_claimed_duckdb_reads_every_published_view(published: Path) -> None:
    """DuckDB 1.0.0 (its package installed by `make install` in .venv/duckdb-1.0.0, nothing
    downloaded here) opens the real published file read-only and reads every view in full,
    rpt_cluster_quality's timestamps included, and sees the column comments."""
    installed = PROJECT_ROOT / ".venv" / f"duckdb-{OLDEST_DUCKDB}" / ".installed"
    assert installed.is_file(), "run `make install` (it installs the oldest DuckDB checked)"
    result = subprocess.run(
        [
            "bash",
            str(PROJECT_ROOT / "scripts" / "check_bi_compat.sh"),
            str(published / PUBLISHED_DB_NAME),
            OLDEST_DUCKDB,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with duckdb.connect(str(published / PUBLISHED_DB_NAME), read_only=True) as con:
        views, comments = con.execute(
            "select count(distinct table_name), count(comment) from duckdb_columns() "
            "where schema_name = 'marts'"
        ).fetchone()
    assert f"duckdb {OLDEST_DUCKDB} read {views} views" in result.stdout
    assert "ok marts.rpt_cluster_quality: 2 rows" in result.stdout
    assert f"{comments} column comments" in result.stdout
