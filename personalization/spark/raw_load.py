"""The raw load on Spark: landing files into raw.raw_landing_events and raw.landing_file_log.

dbt-spark runs Python models only on Databricks, so on the `spark` target this PySpark job takes
the place of python_models/raw_landing_events.py (the same tables, columns and grain: one row per
(file_path, line_number)). The driver lists the landing folder and hashes each file (the
manifest, personalization.raw_load.scan_landing / file_hash); Spark reads the content with its
text reader, one file per record (gzip by suffix, as the DuckDB load), split into numbered lines
kept verbatim: invalid JSON is staged for quarantine downstream, invalid UTF-8 is kept with
replacement characters and flagged.

A full load (every settled file, replacing the tables); the incremental plan of the DuckDB load
(grown, changed, re-delivered, missing files) is not ported yet (docs/scale-out.md).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from personalization.raw_load import (
    DEFAULT_SETTLE_SECONDS,
    LandingFolderError,
    file_hash,
    reported_files,
    scan_landing,
    settled,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
EVENTS_TABLE = f"{RAW_SCHEMA}.raw_landing_events"
FILE_LOG_TABLE = f"{RAW_SCHEMA}.landing_file_log"
REPLACEMENT_CHARACTER = "\ufffd"


@dataclass(frozen=True)
class SparkLoadResult:
    files: int
    lines: int


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of a naive UTC datetime (no local time zone involved)."""
    return round(moment.replace(tzinfo=UTC).timestamp() * 1_000_000)


def read_landing_lines(spark: SparkSession, root: Path, paths: list[str]) -> DataFrame:
    """(file_path, line_number, raw_line, has_encoding_error) of the landing files `paths`
    (relative to root): one record per file, split on newlines; a final newline ends the last
    line, a byte-order mark before the first line and a carriage return before a newline are
    dropped (as personalization.raw_load.read_lines)."""
    from pyspark.sql import functions as F

    root_uri = root.resolve().as_uri().rstrip("/") + "/"
    files = (
        spark.read.text([str(root / path) for path in paths], wholetext=True)
        .withColumn("uri", F.input_file_name())
        # the URI Spark reports is percent-encoded as Path.as_uri is: strip the root, decode
        .withColumn(
            "file_path", F.url_decode(F.substring(F.col("uri"), len(root_uri) + 1, 1 << 20))
        )
        .withColumn("pieces", F.split(F.col("value"), "\n", -1))
        # a file ending with a newline leaves an empty last piece, which is not a line
        .withColumn(
            "pieces",
            F.when(
                F.element_at("pieces", -1) == "",
                F.slice("pieces", 1, F.greatest(F.size("pieces") - 1, F.lit(0))),
            ).otherwise(F.col("pieces")),
        )
    )
    lines = files.select("file_path", F.posexplode("pieces").alias("position", "line"))
    line = F.regexp_replace(F.col("line"), "\r$", "")
    line = F.when(F.col("position") == 0, F.regexp_replace(line, "^\ufeff", "")).otherwise(line)
    return lines.select(
        "file_path",
        (F.col("position") + 1).cast("bigint").alias("line_number"),
        line.alias("raw_line"),
        F.contains(line, F.lit(REPLACEMENT_CHARACTER)).alias("has_encoding_error"),
    )


def load_landing(
    spark: SparkSession,
    root: Path,
    loaded_at: datetime,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
) -> SparkLoadResult:
    """Replace raw.raw_landing_events with every line of every settled landing file under root
    and append what happened to each file to raw.landing_file_log. loaded_at (naive UTC) is the
    run's time: pass it explicitly (tests pin it)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    root = root.resolve()
    if not root.is_dir():
        raise LandingFolderError(f"landing folder {root} does not exist")
    listing = scan_landing(root)
    ready = settled(listing.candidates, loaded_at, settle_seconds)
    if not ready:
        raise LandingFolderError(f"no settled landing file (.jsonl, .ndjson, .gz) under {root}")

    manifest = spark.createDataFrame(
        [(f.path, f.size, _micros(f.modified_at), file_hash(root / f.path)) for f in ready],
        "file_path string, file_size bigint, modified_micros bigint, file_hash string",
    ).select(
        "file_path",
        "file_size",
        F.timestamp_micros("modified_micros").alias("file_modified_at"),
        "file_hash",
    )
    lines = read_landing_lines(spark, root, [f.path for f in ready])
    events = lines.join(manifest, "file_path", "inner").select(
        "file_path",
        "file_size",
        "file_modified_at",
        "file_hash",
        "line_number",
        "raw_line",
        "has_encoding_error",
        F.timestamp_micros(F.lit(_micros(loaded_at))).alias("loaded_at"),
    )
    spark.sql(f"create database if not exists {RAW_SCHEMA}")
    events.write.mode("overwrite").format("parquet").saveAsTable(EVENTS_TABLE)

    counts = {
        row["file_path"]: row["lines"]
        for row in spark.table(EVENTS_TABLE).groupBy("file_path").agg(F.count("*").alias("lines"))
        .collect()
    }  # fmt: skip
    load_id = uuid.uuid4().hex
    log_rows = [
        (load_id, _micros(loaded_at), f.path, f.size, _micros(f.modified_at),
         file_hash(root / f.path), "loaded", counts.get(f.path, 0), "")
        for f in ready
    ] + [
        (load_id, _micros(loaded_at), e.path, e.size,
         _micros(e.modified_at) if e.modified_at else None, e.file_hash, e.status,
         e.lines_loaded, e.detail)
        for e in reported_files(listing, [])
    ]  # fmt: skip
    log_schema = T.StructType(
        [
            T.StructField("load_id", T.StringType()),
            T.StructField("logged_micros", T.LongType()),
            T.StructField("file_path", T.StringType()),
            T.StructField("file_size", T.LongType()),
            T.StructField("modified_micros", T.LongType()),
            T.StructField("file_hash", T.StringType()),
            T.StructField("status", T.StringType()),
            T.StructField("lines_loaded", T.LongType()),
            T.StructField("detail", T.StringType()),
        ]
    )
    file_log = spark.createDataFrame(log_rows, log_schema).select(
        "load_id",
        F.timestamp_micros("logged_micros").alias("logged_at"),
        "file_path",
        "file_size",
        F.timestamp_micros("modified_micros").alias("file_modified_at"),
        "file_hash",
        "status",
        "lines_loaded",
        "detail",
    )
    file_log.write.mode("append").format("parquet").saveAsTable(FILE_LOG_TABLE)
    total = sum(counts.values())
    log.info("spark raw load: %d files, %d lines from %s", len(ready), total, root)
    return SparkLoadResult(files=len(ready), lines=total)


def main(argv: list[str] | None = None) -> int:
    """`python -m personalization.spark.raw_load --landing DIR --loaded-at ISO [--warehouse DIR]`:
    the load in a process of its own (its JVM holds the embedded metastore until it exits, so
    dbt's session can open it afterwards)."""
    import argparse

    from personalization.spark.session import spark_session

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--loaded-at", required=True, help="naive UTC ISO time of the run")
    parser.add_argument("--warehouse", default=None)
    parser.add_argument("--settle-seconds", type=float, default=DEFAULT_SETTLE_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    loaded_at = datetime.fromisoformat(args.loaded_at.replace("Z", "+00:00"))
    if loaded_at.tzinfo is not None:
        loaded_at = loaded_at.astimezone(UTC).replace(tzinfo=None)
    spark = spark_session(args.warehouse)
    try:
        load_landing(spark, args.landing, loaded_at, args.settle_seconds)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
