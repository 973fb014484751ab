"""Issue 16: the touched-user models' adaptive switch (int_touched_users).

A run that touches more than var('touched_full_rebuild_share') of every identity key recomputes
every user through the plain path (is_full_rebuild, no touched-events copy); at or below it, only
the touched users through int_touched_events. One new user's line lands on a copy of the fixture
warehouse; the share is set either side of that one touched user, at 1.5 and 0.75 users of every
identity key, so a switch that never fires, always fires or compares the wrong counts fails one
side, and so does a share (or a touched count) planted at twice or half its value: 1.5 halved is
0.75 users (the one touched user is past it), 0.75 doubled is 1.5 (it is not). Half a user on the
full side would put a doubled share exactly on the boundary (1 > 1.0 is false only while the
floating-point product rounds down), so the planted 2x fault went unnoticed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_warehouse, query, user_key

from personalization.dbt_runner import Warehouse, run_dbt

NEW_USER = "switch-new-user"
LINE = {
    "messageId": "switch-new-1",
    "type": "track",
    "event": "Product Viewed",
    "userId": NEW_USER,
    "timestamp": "2026-01-02T12:00:00.000Z",
    "sentAt": "2026-01-02T12:00:01.000Z",
    "receivedAt": "2026-01-02T12:00:01.000Z",
    "properties": {"product_id": "P00133", "category": "furniture", "price": 120.0},
}


def run_with_share(root: Path, fixture_warehouse: Warehouse, share: float) -> Warehouse:
    """The fixture warehouse plus one new user's line, with int_touched_events (and what it
    reads) rebuilt at the tightest lookback and the given switch share."""
    landing = root / "landing"
    shutil.copytree(fixture_warehouse.landing_path, landing)
    (landing / "dt=2026-01-02" / "switch.jsonl").write_text(json.dumps(LINE) + "\n")
    warehouse = make_warehouse(root, landing)
    root.mkdir(exist_ok=True)
    shutil.copy(fixture_warehouse.db_path, warehouse.db_path)
    run_dbt(
        ["run", "--select", "+int_touched_events"],
        warehouse,
        dbt_vars={"lookback_hours": 0, "touched_full_rebuild_share": share},
    )
    return warehouse


@pytest.fixture(scope="module")
def identity_keys(fixture_warehouse: Warehouse) -> int:
    """Every identity key after the new line lands: the fixture's and the new user's."""
    (count,) = query(fixture_warehouse, "select count(*) from restricted.restricted_identity_keys")
    return count[0] + 1


def test_one_touched_user_at_the_share_takes_the_touched_path(
    tmp_path: Path, fixture_warehouse: Warehouse, identity_keys: int
) -> None:
    warehouse = run_with_share(tmp_path, fixture_warehouse, 1.5 / identity_keys)
    touched = query(
        warehouse,
        "select canonical_user_id, is_full_rebuild, touched_reason"
        " from intermediate.int_touched_users",
    )
    assert touched == [(user_key(NEW_USER), False, "incremental")]
    events = query(
        warehouse, "select distinct canonical_user_id from intermediate.int_touched_events"
    )
    assert events == [(user_key(NEW_USER),)]


def test_one_touched_user_past_the_share_recomputes_every_user(
    tmp_path: Path, fixture_warehouse: Warehouse, identity_keys: int
) -> None:
    warehouse = run_with_share(tmp_path, fixture_warehouse, 0.75 / identity_keys)
    (summary,) = query(
        warehouse,
        "select count(*), count(distinct canonical_user_id), bool_and(is_full_rebuild),"
        " any_value(touched_reason) from intermediate.int_touched_users",
    )
    assert summary == (
        identity_keys,
        identity_keys,
        True,
        "touched share above touched_full_rebuild_share",
    )
    # every model reads the plain path: no copy of the events is written
    assert query(warehouse, "select count(*) from intermediate.int_touched_events") == [(0,)]
