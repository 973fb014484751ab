"""Table-by-table equality of the same build on two engines (DuckDB and Spark).

Each table is read into pandas on both sides, sorted on every compared column and compared row
count first, then column by column (floating point within a relative tolerance). The report is
one line per table; `differences` lists what is not equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

FLOAT_TOLERANCE = 1e-9


@dataclass
class TableComparison:
    table: str
    duckdb_rows: int
    spark_rows: int
    columns: list[str]
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences

    def line(self) -> str:
        verdict = "EQUAL" if self.equal else "DIFFERENT: " + "; ".join(self.differences)
        return (
            f"{self.table:<34} duckdb {self.duckdb_rows:>6} rows  spark {self.spark_rows:>6} "
            f"rows  {len(self.columns):>3} columns  {verdict}"
        )


def _normalised(value: object) -> object:
    """One representation per value across engines: missing values as None, numbers as float,
    timestamps as pandas Timestamps, everything else as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if hasattr(value, "is_integer") and hasattr(value, "as_tuple"):  # Decimal
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None) if value.tzinfo else value
    if hasattr(value, "isoformat"):
        return pd.Timestamp(value)
    return str(value)


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return left == right


def compare_frames(
    table: str, duckdb_frame: pd.DataFrame, spark_frame: pd.DataFrame, ignore: tuple[str, ...] = ()
) -> TableComparison:
    """Compare two frames of the same table: the same columns (apart from `ignore`, columns
    that hold each run's own time or id), the same row count, then every column row by row
    after sorting on all compared columns."""
    columns = [c for c in duckdb_frame.columns if c not in ignore]
    result = TableComparison(table, len(duckdb_frame), len(spark_frame), columns)
    missing = sorted(set(columns) - set(spark_frame.columns))
    extra = sorted(set(spark_frame.columns) - set(duckdb_frame.columns) - set(ignore))
    if missing or extra:
        result.differences.append(f"columns only on duckdb {missing}, only on spark {extra}")
        return result
    if len(duckdb_frame) != len(spark_frame):
        result.differences.append(f"row counts {len(duckdb_frame)} != {len(spark_frame)}")
        return result

    def rows(frame: pd.DataFrame) -> list[tuple]:
        values = [tuple(_normalised(v) for v in row) for row in frame[columns].itertuples(False)]
        return sorted(values, key=lambda row: tuple((v is None, str(v)) for v in row))

    left, right = rows(duckdb_frame), rows(spark_frame)
    for index, column in enumerate(columns):
        unequal = sum(1 for a, b in zip(left, right, strict=True) if not _same(a[index], b[index]))
        if unequal:
            first = next(
                (a[index], b[index])
                for a, b in zip(left, right, strict=True)
                if not _same(a[index], b[index])
            )
            result.differences.append(
                f"{column}: {unequal} rows differ (first: duckdb {first[0]!r}, spark {first[1]!r})"
            )
    return result


def report(comparisons: list[TableComparison]) -> str:
    """The equality report: one line per table and a summary line."""
    equal = sum(c.equal for c in comparisons)
    lines = [c.line() for c in comparisons]
    lines.append(f"{equal} of {len(comparisons)} tables equal on DuckDB and Spark")
    return "\n".join(lines)
