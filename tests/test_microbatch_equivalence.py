"""Issue 16, correctness first: events landed as many micro-batches give the marts a full refresh
gives, column by column.

The micro-batches run as the Dagster micro-batch job runs them: `dbt build --selector
microbatch` (selectors.yml; the job's asset selection is the same selector), at the tightest
incremental setting (lookback_hours 0). In between come a late event (a day older than the
batch it arrives in), an identity stitched retroactively (an anonymous visitor of the first
batch identifies later) and a consent withdrawal. The reference is a `--full-refresh` of the same
selection on a copy of the warehouse: every model rebuilt from all landed files, reading the same
daily-only tables (imputation and clustering fits) the micro-batches read. A full refresh of
everything in one build is the "one batch" case.

History marts (fct_segment_membership_history, fct_segment_events) record what each build saw,
so a series of builds and one build differ by design: they are compared on their current state
(the open spells equal the current membership) rather than row for row.

The suite runs 5 batches (about 2 minutes); the 20-batch version the issue names is marked slow.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import make_warehouse, user_key

from personalization.dbt_runner import Warehouse, run_dbt

MICROBATCH = ["build", "--selector", "microbatch"]
TIGHTEST = {"lookback_hours": 0}
# path-dependent by design (one row per change each build observed): compared on current state
HISTORY_MARTS = {"fct_segment_membership_history", "fct_segment_events"}
GRANT = {"personalization": True, "advertising": True, "analytics": True}
WITHDRAW = {"personalization": False, "advertising": False}


def message(message_id: str, at: str, received: str, **fields: Any) -> str:
    return json.dumps(
        {"messageId": message_id, "timestamp": at, "sentAt": received, "receivedAt": received,
         **fields}
    )  # fmt: skip


def view(message_id: str, at: str, received: str, **who: Any) -> str:
    return message(
        message_id, at, received, type="track", event="Product Viewed",
        properties={"product_id": "P00133", "category": "furniture", "price": 120.0},
        context={"consent": {"categoryPreferences": GRANT}}, **who,
    )  # fmt: skip


def planted_lines(batches: int) -> dict[int, list[str]]:
    """The cases the issue names, each in its own batch (as_of is 2026-01-05)."""
    stitch, withdraw = batches // 2, batches // 2 + 1
    return {
        # an anonymous visitor (no userId yet) and a known user, both granting every consent
        0: [
            view("eq-anon-1", "2026-01-01T09:00:00.000Z", "2026-01-01T09:00:01.000Z",
                 anonymousId="eq-anon"),
            view("eq-user-1", "2026-01-02T09:00:00.000Z", "2026-01-02T09:00:01.000Z",
                 userId="eq-user"),
        ],
        # retroactive stitch: the visitor of batch 0 identifies as eq-user
        stitch: [
            message("eq-identify", "2026-01-03T09:00:00.000Z", "2026-01-03T09:00:01.000Z",
                    type="identify", userId="eq-user", anonymousId="eq-anon",
                    traits={"country": "DE"}),
        ],
        # consent withdrawal by a Consent Updated event
        withdraw: [
            message("eq-withdraw", "2026-01-04T09:00:00.000Z", "2026-01-04T09:00:01.000Z",
                    type="track", event="Consent Updated", userId="eq-withdrawn",
                    properties=WITHDRAW),
        ],
        # a late event: happened on day one, received at the end (after every high-water mark)
        batches - 1: [
            view("eq-late", "2026-01-01T08:00:00.000Z", "2026-01-04T23:00:00.000Z",
                 userId="eq-user"),
        ],
    } | {
        # the withdrawing user granted consent in the first batch (merged below)
        -1: [
            view("eq-withdrawn-1", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000Z",
                 userId="eq-withdrawn"),
        ]
    }  # fmt: skip


def batch_files(generated: Path, batches: int) -> list[list[str]]:
    """The generator's lines (late events, duplicates and defects included) dealt round-robin
    into `batches` files, with the planted lines added: every batch spans every day, so every
    batch after the first brings events older than the last build's high-water mark."""
    lines: list[str] = []
    for path in sorted(generated.glob("dt=*/*.jsonl.gz")):
        lines += gzip.decompress(path.read_bytes()).decode().splitlines()
    slices = [lines[i::batches] for i in range(batches)]
    for index, extra in planted_lines(batches).items():
        slices[max(index, 0)] += extra
    return slices


def land(landing: Path, index: int, lines: list[str]) -> None:
    path = landing / "dt=microbatch" / f"part-{index:04d}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def built_models(warehouse: Warehouse) -> set[str]:
    """Models the last dbt invocation built successfully (its run_results.json)."""
    assert warehouse.target_path is not None
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]
        for r in results
        if r["unique_id"].startswith("model.") and r["status"] == "success"
    }


def mart_rows(db: Path, table: str) -> tuple[list[str], list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        columns = [
            row[0]
            for row in con.execute(
                "select column_name from information_schema.columns where table_schema = 'marts'"
                " and table_name = ? order by ordinal_position",
                [table],
            ).fetchall()
        ]
        rows = con.sql(f"select * from marts.{table}").fetchall()
    return columns, sorted(rows, key=repr)


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def run_microbatches(root: Path, generated: Path, batches: int) -> tuple[Warehouse, Warehouse]:
    """Batch 0 by a full build (the daily build), every other batch by a micro-batch; then the
    reference: a full refresh of the micro-batch selection on a copy of the result."""
    as_of = json.loads((generated / "manifest.json").read_text())["as_of"]
    landing = root / "landing"
    warehouse = make_warehouse(root / "microbatch", landing, as_of=as_of)
    for index, lines in enumerate(batch_files(generated, batches)):
        land(landing, index, lines)
        run_dbt(["build"] if index == 0 else MICROBATCH, warehouse, dbt_vars=TIGHTEST)
    reference = make_warehouse(root / "reference", landing, as_of=as_of)
    reference.db_path.parent.mkdir(parents=True)
    shutil.copy(warehouse.db_path, reference.db_path)
    run_dbt([*MICROBATCH, "--full-refresh"], reference, dbt_vars=TIGHTEST)
    return warehouse, reference


def assert_marts_equal(warehouse: Warehouse, reference: Warehouse) -> None:
    marts = {
        row[0]
        for row in query(
            reference.db_path,
            "select table_name from information_schema.tables where table_schema = 'marts'",
        )
    }
    rebuilt = built_models(reference) & marts
    # the selection rebuilds the profile and segment marts: the comparison is about them
    assert {"dim_user_profiles", "fct_segment_membership", "fct_sessions", "people"} <= rebuilt
    for table in sorted(rebuilt - HISTORY_MARTS):
        columns, rows = mart_rows(warehouse.db_path, table)
        ref_columns, ref_rows = mart_rows(reference.db_path, table)
        assert columns == ref_columns, table
        assert len(rows) == len(ref_rows), f"{table}: {len(rows)} rows vs {len(ref_rows)}"
        for name_index, name in enumerate(columns):
            got = sorted(repr(r[name_index]) for r in rows)
            want = sorted(repr(r[name_index]) for r in ref_rows)
            assert got == want, f"{table}.{name} differs from the full refresh"
        assert rows == ref_rows, f"{table}: same columns, rows paired differently"
    # history marts: their open spells are the current membership, in both
    for db in (warehouse.db_path, reference.db_path):
        open_spells = query(
            db,
            "select canonical_user_id, segment_name from marts.fct_segment_membership_history"
            " where valid_to is null except select canonical_user_id, segment_name"
            " from marts.fct_segment_membership",
        )
        assert open_spells == [], db


def assert_planted_cases(warehouse: Warehouse) -> None:
    """The planted cases took effect in the micro-batched warehouse (the comparison is not
    between two equally empty results)."""
    db = warehouse.db_path
    user = user_key("eq-user")
    # the stitch moved the anonymous view of day one to eq-user; the late view counts too
    days = query(
        db,
        "select activity_date::varchar, events from marts.fct_user_activity_daily"
        " where canonical_user_id = ? order by 1",
        [user],
    )
    day_one = dict(days).get("2026-01-01")
    assert day_one is not None and day_one >= 2, days  # anonymous view + late view
    assert query(
        db,
        "select count(*) from marts.people where id = ?",
        [user_key("eq-withdrawn")],
    ) == [(0,)]


@pytest.fixture(scope="module")
def generated_small(tmp_path_factory: pytest.TempPathFactory, generate: Callable) -> Path:
    return generate(
        tmp_path_factory.mktemp("microbatch_generated"), events=1500, users=40, days=4, seed=3
    )


def test_five_microbatches_equal_a_full_refresh(tmp_path: Path, generated_small: Path) -> None:
    warehouse, reference = run_microbatches(tmp_path, generated_small, batches=5)
    assert_planted_cases(warehouse)
    assert_marts_equal(warehouse, reference)


@pytest.mark.slow
def test_twenty_microbatches_equal_a_full_refresh(tmp_path: Path, generated_small: Path) -> None:
    warehouse, reference = run_microbatches(tmp_path, generated_small, batches=20)
    assert_planted_cases(warehouse)
    assert_marts_equal(warehouse, reference)
