"""The one volume check (rpt_event_volume_daily and its two dbt tests) on uneven, known volumes.

Five weeks of events with a weekly rhythm (weekdays 100, Saturdays 60, Sundays 20) and one
Wednesday without any event. Only the model and its tests are built, on a bare stg_events table.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from personalization.dbt_runner import Warehouse, run_dbt

FIRST_DAY = "2026-01-26"  # a Monday
LAST_DAY = "2026-03-01"  # a Sunday
EMPTY_WEDNESDAY = "2026-02-11"
PER_WEEKDAY = {5: 60, 6: 20}  # isodow - 1: Saturday, Sunday; every other day 100


def build(root: Path, as_of: str) -> tuple[int, str]:
    warehouse = Warehouse(root / "warehouse.duckdb", root / "landing", root / "target", as_of)
    result = run_dbt(
        ["build", "--select", "rpt_event_volume_daily"],
        warehouse,
        # each test judges another day of the same events (no membership history is built here)
        dbt_vars={"volume_check_severity": "error", "allow_as_of_rewind": True},
        check=False,
    )
    return result.returncode, result.stdout


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("volume")
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("create schema staging")
        con.execute("create table staging.stg_events (event_at timestamp)")
        con.execute(
            f"""
            insert into staging.stg_events
            select day + interval (n * 10) second
            from (
                select day, case isodow(day) when 6 then 60 when 7 then 20 else 100 end as events
                from range(timestamp '{FIRST_DAY}', timestamp '{LAST_DAY} 23:00:00',
                           interval 1 day) as days (day)
                where cast(day as date) != date '{EMPTY_WEDNESDAY}'
            ) as days
            cross join range(0, 100) as lines (n)
            where n < events
            """
        )
    return root


def days(root: Path) -> dict[str, tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "select cast(event_date as varchar), events, baseline_days, is_anomaly, "
            "is_latest_day, is_dead_feed from marts.rpt_event_volume_daily"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_calendar_has_empty_days_and_sundays_are_judged_against_sundays(root: Path) -> None:
    code, output = build(root, "2026-03-02T06:00:00Z")
    assert code == 0, output[-2000:]
    result = days(root)
    assert len(result) == 35  # every day of five weeks, the empty Wednesday included
    assert result[EMPTY_WEDNESDAY] == (0, 2, True, False, False)
    anomalies = sorted(day for day, row in result.items() if row[2])
    assert anomalies == [EMPTY_WEDNESDAY]  # no ordinary Sunday or Saturday is flagged
    assert result[LAST_DAY] == (20, 4, False, True, False)  # the latest day, a normal Sunday
    assert "PASS volume_latest_day_within_baseline" in output
    assert "PASS feed_alive" in output


def test_a_latest_day_without_events_fails_the_volume_check(root: Path) -> None:
    code, output = build(root, f"{EMPTY_WEDNESDAY}T12:00:00Z".replace("11T", "12T"))
    assert code != 0
    assert "FAIL 1 volume_latest_day_within_baseline_rpt_event_volume_daily_" in output
    assert "PASS feed_alive" in output  # newest event on the Tuesday: 36 hours, still alive


def test_a_dead_feed_fails_loudly(root: Path) -> None:
    # the newest event ten months before as_of: baselines of zeros, but the feed is dead
    code, output = build(root, "2026-12-31T00:00:00Z")
    assert code != 0
    assert "FAIL 1 feed_alive_rpt_event_volume_daily_" in output
    assert days(root)["2026-12-30"] == (0, 4, False, True, True)
