"""Volume anomaly check: daily event counts in staging.stg_events against a trailing baseline.

The latest complete day before as_of (or now) is compared with the median of the days before it
(up to BASELINE_DAYS, counting days without events as 0 once history has started). The check fails
(severity WARN, not blocking) when the ratio latest / median is below LOW_RATIO or above HIGH_RATIO,
or when the latest day has no events at all while the baseline has. With fewer than
MIN_BASELINE_DAYS of history it passes and says so.
"""

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import duckdb

from orchestration.resources import DUCKDB_POOL, WarehouseResource

STG_EVENTS_KEY = dg.AssetKey(["staging", "stg_events"])
BASELINE_DAYS = 7
MIN_BASELINE_DAYS = 3
LOW_RATIO = 0.5  # a day with under half the usual events: a lost feed or a broken collector
HIGH_RATIO = 3.0  # three times the usual: a replay, a bot or a duplicated feed


@dataclass(frozen=True)
class VolumeVerdict:
    passed: bool
    day: date
    events: int
    baseline_median: float | None
    ratio: float | None
    baseline_days: int
    reason: str


def reference_date(as_of: str | None) -> date:
    """The first day not yet complete: the day of as_of (UTC), or today."""
    if not as_of:
        return datetime.now(UTC).date()
    stamp = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
    return stamp.date()


def judge_volume(daily_counts: dict[date, int], as_of_day: date) -> VolumeVerdict:
    """Compare the last complete day before as_of_day with its trailing baseline."""
    day = as_of_day - timedelta(days=1)
    events = daily_counts.get(day, 0)
    history_start = min(daily_counts, default=day)
    baseline = [
        daily_counts.get(day - timedelta(days=offset), 0)
        for offset in range(1, BASELINE_DAYS + 1)
        if day - timedelta(days=offset) >= history_start
    ]
    if len(baseline) < MIN_BASELINE_DAYS:
        return VolumeVerdict(
            True, day, events, None, None, len(baseline),
            f"insufficient history: {len(baseline)} baseline day(s), need {MIN_BASELINE_DAYS}",
        )  # fmt: skip
    median = float(statistics.median(baseline))
    if median == 0:
        passed = events == 0
        return VolumeVerdict(
            passed, day, events, median, None, len(baseline),
            "no events in the baseline" + ("" if passed else f" but {events} on {day}"),
        )  # fmt: skip
    ratio = events / median
    passed = LOW_RATIO <= ratio <= HIGH_RATIO
    reason = (
        f"{events} events on {day} = {ratio:.2f} x the trailing median {median:g} "
        f"(allowed {LOW_RATIO}-{HIGH_RATIO})"
    )
    return VolumeVerdict(passed, day, events, median, ratio, len(baseline), reason)


def daily_event_counts(db_path: str, since: date, until: date) -> dict[date, int]:
    with duckdb.connect(db_path, read_only=True) as con:
        rows = con.execute(
            "select cast(event_at as date) as event_date, count(*) from staging.stg_events "
            "where event_at >= ? and event_at < ? group by 1",
            [since, until],
        ).fetchall()
    return {row[0]: int(row[1]) for row in rows}


@dg.asset_check(
    asset=STG_EVENTS_KEY,
    name="daily_volume_anomaly",
    description=__doc__,
    blocking=False,
    pool=DUCKDB_POOL,
)
def daily_volume_anomaly(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    as_of_day = reference_date(warehouse.reference_time())
    since = as_of_day - timedelta(days=BASELINE_DAYS + 1)
    counts = daily_event_counts(str(warehouse.db()), since, as_of_day)
    verdict = judge_volume(counts, as_of_day)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict.reason,
        metadata={
            "day": verdict.day.isoformat(),
            "events": verdict.events,
            "baseline_median": verdict.baseline_median,
            "ratio": verdict.ratio,
            "baseline_days": verdict.baseline_days,
            "low_ratio": LOW_RATIO,
            "high_ratio": HIGH_RATIO,
        },
    )
