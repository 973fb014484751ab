"""Issue 16, correctness first: events landed as many micro-batches give the marts a full refresh
gives, column by column.

The micro-batches run as the Dagster micro-batch job runs them: `dbt build --selector
microbatch_sensor` (selectors.yml: the job's models, with the folded key guards a sensor batch
runs, guard_keys over the rows each batch wrote, in place of dbt's whole-table key tests), at
the tightest incremental setting (lookback_hours 0). In between come a late event (a day older
than the batch it arrives in), an identity stitched retroactively (an anonymous visitor of the first
batch identifies later), a shared device (an anonymous id a second user identifies on: its
events leave the first user, who brings no line of their own) and a consent withdrawal.

The touched-user models (int_touched_users) recompute only users whose output can change. The
last two batches bring no generator line and move as_of forward (to 10 minutes before, then 10
minutes after, 30 days after an untouched user's only events): that user crosses a segment window
(feature_power_users, 30d), catalogue windows (30d) and a lifecycle threshold (at_risk -> lapsed
at 30 days) between them, with no line of their own, so only the as_of bands
(touched_as_of_bands) can mark them touched. A band a day short, or a stitched user's old owner
left out of the touched set, fails this test. On the last batch the models that read events must
read int_touched_events (the touched users' events, built once per run: their compiled SQL), and
it must hold touched users only; its anonymous ids left out of int_touched_identities, or
int_user_consent reading only the userId lines of the touched identities, fail the comparison.

The reference is a `--full-refresh` of the same
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

MICROBATCH = ["build", "--selector", "microbatch_sensor"]
# the touched path on every batch (the switch, touched_full_rebuild_share, never fires: its
# early batches touch every user), so the touched-set rules are what this test guards; the
# switch itself: tests/test_touched_switch.py
TIGHTEST = {"lookback_hours": 0, "touched_full_rebuild_share": 1}
# path-dependent by design (one row per change each build observed): compared on current state
HISTORY_MARTS = {"fct_segment_membership_history", "fct_segment_events"}
GRANT = {"personalization": True, "advertising": True, "analytics": True}
WITHDRAW = {"personalization": False, "advertising": False}
# as_of of the two last batches: 30 days (the longest window, touched_as_of_bands) and 10 minutes
# before, then 10 minutes after, the lapsing user's only events (2026-01-01 12:20:00-20): the
# 30-day band of the last step is 20 minutes wide and holds few other users
STEP_AS_OF = ("2026-01-31T12:10:00Z", "2026-01-31T12:30:00Z")
LAPSING_AT = "2026-01-01T12:20:{second:02d}.000Z"
# the touched-user models that read events: on a micro-batch, from int_touched_events
TOUCHED_EVENT_READERS = {
    "int_user_attribute_observations",
    "int_user_catalogue_traits",
    "int_user_behaviour_totals",
    "fct_sessions",
    "fct_segment_membership",
}


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


def order(message_id: str, event: str, at: str, received: str, **fields: Any) -> str:
    return message(
        message_id, at, received, type="track", event=event,
        context={"consent": {"categoryPreferences": GRANT}}, **fields,
    )  # fmt: skip


def planted_lines(batches: int) -> dict[int, list[str]]:
    """The cases the issue names, each in its own batch (the generator's as_of is 2026-01-05;
    the last two batches move it, see STEP_AS_OF)."""
    stitch, withdraw = (batches - 2) // 2, batches - 2
    return {
        0: [
            # an anonymous visitor (no userId yet) and a known user, both granting every consent
            view("eq-anon-1", "2026-01-01T09:00:00.000Z", "2026-01-01T09:00:01.000Z",
                 anonymousId="eq-anon"),
            view("eq-user-1", "2026-01-02T09:00:00.000Z", "2026-01-02T09:00:01.000Z",
                 userId="eq-user"),
            # the withdrawing user grants consent first
            view("eq-withdrawn-1", "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000Z",
                 userId="eq-withdrawn"),
            # a device first identified as eq-first (who takes its view)
            view("eq-shared-1", "2026-01-01T11:00:00.000Z", "2026-01-01T11:00:01.000Z",
                 anonymousId="eq-shared"),
            message("eq-first", "2026-01-01T11:05:00.000Z", "2026-01-01T11:05:01.000Z",
                    type="identify", userId="eq-first", anonymousId="eq-shared"),
            # a refund naming no amount: it reverses the whole order, whose Order Completed
            # arrives late, in the last batch (int_order_amounts recomputes the order's lines)
            order("eq-refund", "Order Refunded", "2026-01-03T09:00:00.000Z",
                  "2026-01-03T09:00:01.000Z", userId="eq-buyer",
                  properties={"order_id": "eq-order-1"}),
            # an anonymous order, its visitor identified in the stitch batch
            order("eq-anon-order", "Order Completed", "2026-01-02T09:00:00.000Z",
                  "2026-01-02T09:00:01.000Z", anonymousId="eq-anon-buyer",
                  properties={"order_id": "eq-order-2", "revenue": 30.0, "currency": "EUR",
                              "products": [{"product_id": "P00133"}]}),
            # an id first seen as an anonymousId, sent as a userId in the stitch batch
            view("eq-both-1", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
                 anonymousId="eq-both"),
            # a visitor identified on a line stamped after the generator's as_of, loaded now:
            # the link comes into view only when as_of passes it (the last two batches)
            view("eq-future-anon-1", "2026-01-02T11:00:00.000Z", "2026-01-02T11:00:01.000Z",
                 anonymousId="eq-future-anon"),
            message("eq-future-identify", "2026-01-20T09:00:00.000Z",
                    "2026-01-20T09:00:01.000Z", type="identify", userId="eq-future",
                    anonymousId="eq-future-anon"),
            # the lapsing user: one view and 20 feature uses on day one, then nothing
            view("eq-lapsing-view", LAPSING_AT.format(second=0), LAPSING_AT.format(second=0),
                 userId="eq-lapsing"),
            *(
                message(f"eq-lapsing-{second}", LAPSING_AT.format(second=second),
                        LAPSING_AT.format(second=second), type="track", event="Feature Used",
                        userId="eq-lapsing", properties={"feature_name": "export"})
                for second in range(1, 21)
            ),
        ],
        stitch: [
            # retroactive stitch: the visitor of batch 0 identifies as eq-user
            message("eq-identify", "2026-01-03T09:00:00.000Z", "2026-01-03T09:00:01.000Z",
                    type="identify", userId="eq-user", anonymousId="eq-anon",
                    traits={"country": "DE"}),
            # a second user on eq-first's device: a shared device, its view leaves eq-first
            message("eq-second", "2026-01-03T10:00:00.000Z", "2026-01-03T10:00:01.000Z",
                    type="identify", userId="eq-second", anonymousId="eq-shared"),
            message("eq-buyer-identify", "2026-01-03T11:00:00.000Z", "2026-01-03T11:00:01.000Z",
                    type="identify", userId="eq-buyer-2", anonymousId="eq-anon-buyer"),
            view("eq-both-2", "2026-01-03T12:00:00.000Z", "2026-01-03T12:00:01.000Z",
                 userId="eq-both"),
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
            order("eq-late-order", "Order Completed", "2026-01-01T09:00:00.000Z",
                  "2026-01-04T23:00:00.000Z", userId="eq-buyer",
                  properties={"order_id": "eq-order-1", "revenue": 50.0, "currency": "EUR",
                              "products": [{"product_id": "P00133"}]}),
        ],
    }  # fmt: skip


def batch_files(generated: Path, batches: int) -> list[list[str]]:
    """The generator's lines (late events, duplicates and defects included) dealt round-robin
    into all but the last two files, with the planted lines added: every such batch spans every
    day, so every batch after the first brings events older than the last build's high-water
    mark. The last two batches bring planted lines only."""
    lines: list[str] = []
    for path in sorted(generated.glob("dt=*/*.jsonl.gz")):
        lines += gzip.decompress(path.read_bytes()).decode().splitlines()
    slices = [lines[i :: batches - 2] for i in range(batches - 2)] + [[], []]
    for index, extra in planted_lines(batches).items():
        slices[index] += extra
    return slices


def batch_as_of(generated: Path, batches: int) -> list[str]:
    """The as_of of each batch: the generator's, then the two steps."""
    as_of = json.loads((generated / "manifest.json").read_text())["as_of"]
    return [as_of] * (batches - 2) + list(STEP_AS_OF)


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


def compiled_reads(warehouse: Warehouse, relation: str) -> set[str]:
    """Models of the last dbt invocation whose compiled SQL names `relation`."""
    assert warehouse.target_path is not None
    results = json.loads((warehouse.target_path / "run_results.json").read_text())["results"]
    return {
        r["unique_id"].split(".")[-1]
        for r in results
        if r["unique_id"].startswith("model.") and relation in (r.get("compiled_code") or "")
    }


def assert_touched_events_read(warehouse: Warehouse, touched: set[str]) -> None:
    """On a micro-batch the event-reading touched-user models read int_touched_events (the
    touched users' events, built once per run), not the whole stitched view, and it holds
    events of touched users only."""
    readers = compiled_reads(warehouse, '"int_touched_events"')
    assert readers >= TOUCHED_EVENT_READERS, TOUCHED_EVENT_READERS - readers
    assert not TOUCHED_EVENT_READERS & compiled_reads(warehouse, '"int_events_stitched"')
    events = "select distinct canonical_user_id from intermediate.int_touched_events"
    users = {key for (key,) in query(warehouse.db_path, events)}
    assert users and users <= touched, (len(users), len(touched))


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


def lapsing_user(db: Path) -> tuple:
    """The lapsing user's lifecycle stage, 30-day catalogue traits and feature_power_users
    membership."""
    key = user_key("eq-lapsing")
    profile = query(
        db,
        "select lifecycle_stage, product_views_30d, feature_uses_30d from marts.dim_user_profiles"
        " where canonical_user_id = ?",
        [key],
    )
    member = query(
        db,
        "select count(*) from marts.fct_segment_membership where canonical_user_id = ?"
        " and segment_name = 'feature_power_users' and status = 'member'",
        [key],
    )
    return (*profile[0], member[0][0])


def touched_users(db: Path) -> set[str]:
    """The users the last run recomputed (int_touched_users); none of them a full rebuild."""
    rows = query(
        db, "select canonical_user_id, is_full_rebuild from intermediate.int_touched_users"
    )
    return {key for key, full in rows if not full}


def run_microbatches(
    root: Path, generated: Path, batches: int, lookup_by_range_max: int
) -> tuple[Warehouse, Warehouse]:
    """Batch 0 by a full build (the daily build), every other batch by a micro-batch; then the
    reference: a full refresh of the micro-batch selection on a copy of the result.
    lookup_by_range_max: var touched_lookup_by_range_max, which decides how the touched-user
    models look their lines up (touched_lines(): one id column at a time, or both at once)."""
    dbt_vars = {**TIGHTEST, "touched_lookup_by_range_max": lookup_by_range_max}
    landing = root / "landing"
    as_of = batch_as_of(generated, batches)
    stitch = (batches - 2) // 2
    for index, lines in enumerate(batch_files(generated, batches)):
        land(landing, index, lines)
        warehouse = make_warehouse(root / "microbatch", landing, as_of=as_of[index])
        run_dbt(["build"] if index == 0 else MICROBATCH, warehouse, dbt_vars=dbt_vars)
        touched = touched_users(warehouse.db_path)
        if index == stitch:
            # the shared device's first user brought no line: touched as its old owner, and its
            # session of the device's view is gone now (later as_of steps would hide a stale one)
            assert user_key("eq-first") in touched
            assert_shared_device_split(warehouse.db_path)
        if index == batches - 2:
            # the untouched lapsing user, 10 minutes before its windows close
            assert lapsing_user(warehouse.db_path) == ("at_risk", 1, 20, 1)
    # ... and 10 minutes after, from the as_of bands alone: the last batch (one late event)
    # recomputes a few users, not everyone
    assert lapsing_user(warehouse.db_path) == ("lapsed", 0, 0, 0)
    profiles = query(warehouse.db_path, "select count(*) from marts.dim_user_profiles")[0][0]
    assert {user_key("eq-user"), user_key("eq-lapsing")} <= touched
    assert len(touched) < profiles / 2, (len(touched), profiles)
    assert_touched_events_read(warehouse, touched)
    reference = make_warehouse(root / "reference", landing, as_of=as_of[-1])
    reference.db_path.parent.mkdir(parents=True)
    shutil.copy(warehouse.db_path, reference.db_path)
    run_dbt([*MICROBATCH, "--full-refresh"], reference, dbt_vars=dbt_vars)
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


# the models incremental by load high-water mark (load_mark_state()), compared row for row with
# the full refresh; their bookkeeping differs by design (build_id, built_as_of: the run that wrote
# a row; the load stamps: the reference's full refresh loads every line again)
LOAD_MARK_TABLES = {
    "restricted.restricted_identity_keys": "* exclude (last_loaded_at)",
    "intermediate.int_identity_links": "* exclude (last_loaded_at, built_as_of)",
    "intermediate.int_order_amounts": "* exclude (build_id, loaded_at)",
}


def assert_load_mark_tables_equal(warehouse: Warehouse, reference: Warehouse) -> None:
    for table, columns in LOAD_MARK_TABLES.items():
        sql = f"select {columns} from {table} order by all"
        got, want = query(warehouse.db_path, sql), query(reference.db_path, sql)
        assert len(got) == len(want), f"{table}: {len(got)} rows vs {len(want)}"
        assert got == want, f"{table} differs from the full refresh"


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
    assert_shared_device_split(db)
    # the refund of day three got its amount from the Order Completed that came last
    profile = (
        "select orders, revenue, refunds, refunded_amount from marts.dim_user_profiles"
        " where canonical_user_id = ?"
    )
    assert query(db, profile, [user_key("eq-buyer")]) == [(1, 50.0, 1, 50.0)]
    # the anonymous order went to the user its visitor identified as
    assert query(db, profile, [user_key("eq-buyer-2")]) == [(1, 30.0, 0, 0.0)]
    # an id sent as a userId after an anonymousId is a user id
    # (and it stays known as an anonymous id: touched_lines() looks it up in both columns)
    kind = (
        "select identity_type, is_anonymous_id from restricted.restricted_identity_keys"
        " where raw_identity = ?"
    )
    assert query(db, kind, ["eq-both"]) == [("user_id", True)]
    assert query(db, kind, ["eq-buyer"]) == [("user_id", False)]
    # the link stamped after the first as_of came into view with the later one
    keys = "select canonical_user_id from marts.dim_user_profiles where canonical_user_id in (?, ?)"
    assert query(db, keys, [user_key("eq-future"), user_key("eq-future-anon")]) == [
        (user_key("eq-future"),)
    ]


def assert_shared_device_split(db: Path) -> None:
    """The shared device's view went back to the device's own key, away from eq-first."""
    sessions = query(
        db,
        "select canonical_user_id, count(*) from marts.fct_sessions"
        " where canonical_user_id in (?, ?) group by all",
        [user_key("eq-first"), user_key("eq-shared")],
    )
    assert sessions == [(user_key("eq-shared"), 1)], sessions


@pytest.fixture(scope="module")
def generated_small(tmp_path_factory: pytest.TempPathFactory, generate: Callable) -> Path:
    return generate(
        tmp_path_factory.mktemp("microbatch_generated"), events=1500, users=40, days=4, seed=3
    )


def test_five_microbatches_equal_a_full_refresh(tmp_path: Path, generated_small: Path) -> None:
    # every batch looks lines up one id column at a time (a var far above any batch's identities)
    warehouse, reference = run_microbatches(
        tmp_path, generated_small, batches=5, lookup_by_range_max=1_000_000
    )
    assert_planted_cases(warehouse)
    assert_marts_equal(warehouse, reference)
    assert_load_mark_tables_equal(warehouse, reference)


@pytest.mark.slow
def test_twenty_microbatches_equal_a_full_refresh(tmp_path: Path, generated_small: Path) -> None:
    # every batch looks lines up in both id columns at once (the path of large batches)
    warehouse, reference = run_microbatches(
        tmp_path, generated_small, batches=20, lookup_by_range_max=0
    )
    assert_planted_cases(warehouse)
    assert_marts_equal(warehouse, reference)
    assert_load_mark_tables_equal(warehouse, reference)
