"""Table-by-table equality of the same build on two engines (DuckDB and Spark).

Each table is read into pandas on both sides, sorted on every compared column and compared row
count first, then column by column (floating point within a tolerance; Spark DECIMAL columns at
their scale). The report is one line per table; `differences` lists what is not equal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

FLOAT_TOLERANCE = 1e-9


@dataclass
class TableComparison:
    table: str
    duckdb_rows: int
    spark_rows: int
    columns: list[str]
    differences: list[str] = field(default_factory=list)
    rounded: list[str] = field(default_factory=list)  # decimal columns compared at Spark's scale

    @property
    def equal(self) -> bool:
        return not self.differences

    def line(self) -> str:
        verdict = "EQUAL" if self.equal else "DIFFERENT: " + "; ".join(self.differences)
        if self.equal and self.rounded:
            verdict += " (Spark decimals at their scale: " + ", ".join(self.rounded) + ")"
        return (
            f"{self.table:<34} duckdb {self.duckdb_rows:>6} rows  spark {self.spark_rows:>6} "
            f"rows  {len(self.columns):>3} columns  {verdict}"
        )


def _normalised(value: object) -> object:
    """One representation per value across engines: missing values as None, numbers as float,
    timestamps as pandas Timestamps, arrays as tuples, everything else as text."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None) if value.tzinfo else value
    if hasattr(value, "isoformat"):
        return pd.Timestamp(value)
    if hasattr(value, "asDict"):  # a Spark struct (Row) compares as DuckDB's struct (a dict)
        value = value.asDict()
    elif isinstance(value, list | tuple | np.ndarray):
        return tuple(_normalised(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _normalised(v)) for k, v in value.items()))
    return str(value)


def _sort_key(value: object) -> tuple[bool, str]:
    # floats by 6 significant digits: a value Spark rounded sorts where DuckDB's does
    return (value is None, f"{value:.6g}" if isinstance(value, float) else str(value))


def _same(left: object, right: object, tolerance: float = FLOAT_TOLERANCE) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=FLOAT_TOLERANCE, abs_tol=tolerance)
    if isinstance(left, tuple) and isinstance(right, tuple):
        return len(left) == len(right) and all(
            _same(a, b, tolerance) for a, b in zip(left, right, strict=True)
        )
    return left == right


def compare_frames(
    table: str,
    duckdb_frame: pd.DataFrame,
    spark_frame: pd.DataFrame,
    ignore: tuple[str, ...] = (),
    decimal_scales: dict[str, int] | None = None,
    json_columns: tuple[str, ...] = (),
) -> TableComparison:
    """Compare two frames of the same table: the same columns (apart from `ignore`, columns
    that hold each run's own time or id), the same row count, then every column row by row
    after sorting on all compared columns.

    Floats agree within FLOAT_TOLERANCE; a column that is a DECIMAL of scale s on Spark (its
    decimal arithmetic rounds a division or an average to the result's scale, at least 6
    digits, where DuckDB computes a double) agrees within half a unit of its last digit.

    `json_columns` hold JSON text written by each engine's JSON writer: compared as JSON values
    (key order kept), because Spark's (Jackson) writes a character outside the Basic
    Multilingual Plane as a surrogate-pair escape where DuckDB writes the character."""
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
        frame = frame[columns].copy()
        for column in json_columns:
            if column in frame.columns:
                frame[column] = frame[column].map(_json_value)
        values = [tuple(_normalised(v) for v in row) for row in frame.itertuples(False)]
        return sorted(values, key=lambda row: tuple(_sort_key(v) for v in row))

    scales = decimal_scales or {}
    left, right = rows(duckdb_frame), rows(spark_frame)
    for index, column in enumerate(columns):
        tolerance = (
            max(FLOAT_TOLERANCE, 0.5000001 * 10 ** -scales[column]) if column in scales else 0.0
        )
        unequal = [
            (a[index], b[index])
            for a, b in zip(left, right, strict=True)
            if not _same(a[index], b[index], tolerance or FLOAT_TOLERANCE)
        ]
        if unequal:
            result.differences.append(
                f"{column}: {len(unequal)} rows differ "
                f"(first: duckdb {unequal[0][0]!r}, spark {unequal[0][1]!r})"
            )
        elif column in scales and scales[column] < 9:
            result.rounded.append(f"{column}@{scales[column]}")
    return result


def _json_value(text: object) -> object:
    """A JSON text re-written canonically (its value, key order kept); other values as they are."""
    if not isinstance(text, str):
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return text


def decimal_scales(schema: object) -> dict[str, int]:
    """{column: scale} of the DECIMAL columns of a Spark schema (a pyspark StructType)."""
    from pyspark.sql.types import DecimalType

    return {
        field.name: field.dataType.scale
        for field in schema.fields  # type: ignore[attr-defined]
        if isinstance(field.dataType, DecimalType)
    }


def report(comparisons: list[TableComparison]) -> str:
    """The equality report: one line per table and a summary line."""
    equal = sum(c.equal for c in comparisons)
    lines = [c.line() for c in comparisons]
    lines.append(f"{equal} of {len(comparisons)} tables equal on DuckDB and Spark")
    return "\n".join(lines)
