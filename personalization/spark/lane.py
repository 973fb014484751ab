"""Build a landing folder on Spark, the way the Spark lane and the benchmark do.

1. the PySpark raw load (personalization.spark.raw_load);
2. the stop-gap: the Python models' tables (age kNN, clusters) seeded from a DuckDB build of the
   same folder (personalization.spark.seed_from_duckdb; docs/scale-out.md);
3. `dbt build` (or `run`) on the spark target of SPARK_SELECTION: seeds, the privacy tables,
   staging from the raw load's table, the restricted identity keys (the HMAC on Spark), every
   intermediate and mart SQL model.

Each step is a process of its own (the embedded metastore is open in one JVM at a time); each is
timed in wall and CPU seconds (`Measured`: the CPU of the step's whole process tree, the JVM
included, sampled from /proc).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from personalization.spark.seed_from_duckdb import seeded_models
from personalization.spark.session import WAREHOUSE_ENV

# Unit tests whose given rows are DuckDB SQL (a list literal, `cast(... as varchar)`): the models
# they test build and compare on Spark; their fixtures would need Spark SQL. Every Spark build
# leaves them out (the lane, the bench, the Dagster Spark definitions).
DUCKDB_ONLY_UNIT_TESTS = (
    "identified_users_with_missing_imputed_or_stale_key_attributes_need_a_refresh",
    "segment_composition_audit_known_skew",
)

# What dbt builds on Spark: seeds, the privacy tables, every staging model (the raw load's
# manifest view, the tracking plan, the checked lines and the views over them), the restricted
# identity keys and every intermediate and mart model but the seeded ones.
SPARK_SELECTION = [
    "--select", "resource_type:seed", "path:models/staging",
    "+privacy_suppression_list", "privacy_requests", "restricted_identity_keys",
    "path:models/intermediate", "path:models/marts",
    "--exclude", "raw_landing_events", *seeded_models(), *DUCKDB_ONLY_UNIT_TESTS,
]  # fmt: skip

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One step: wall seconds, CPU seconds (user + system of its process tree)."""

    step: str
    wall_s: float
    cpu_s: float


def _proc_stats() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds) of every process /proc shows."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after the command name
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        stats[int(entry)] = (ppid, (utime + stime) / CLOCK_TICKS)
    return stats


def run_measured(step: str, argv: list[str], env: dict[str, str], cwd: Path) -> Measured:
    """Run argv; sample its process tree's CPU every half second (the last sample of each
    process counts: a few tenths of a second per process may be missed)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd)
    seen: dict[int, float] = {}
    while process.poll() is None:
        stats = _proc_stats()
        tree = {process.pid}
        grown = True
        while grown:
            grown = False
            for pid, (ppid, _) in stats.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    grown = True
        for pid in tree:
            if pid in stats:
                seen[pid] = max(seen.get(pid, 0.0), stats[pid][1])
        time.sleep(0.5)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, argv)
    return Measured(step, round(wall, 1), round(sum(seen.values()), 1))


def build_on_spark(
    landing: Path,
    duckdb_path: Path,
    spark_warehouse: Path,
    dbt_vars_json: str,
    loaded_at: str,
    dbt_command: tuple[str, ...] = ("build",),
    target_path: Path | None = None,
) -> list[Measured]:
    """The three steps above into `spark_warehouse` (`dbt_command`: the dbt command and its
    options, e.g. build without tests); returns each step's figures."""
    from personalization.tracking_plan import PROJECT_ROOT

    env = {
        **os.environ,
        WAREHOUSE_ENV: str(spark_warehouse),
        "DBT_INDIRECT_SELECTION": "buildable",
    }
    python = sys.executable
    dbt_args = [
        python, "-m", "personalization.spark.dbt_spark", *dbt_command, *SPARK_SELECTION,
        "--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT),
        "--target", "spark", "--vars", dbt_vars_json,
    ]  # fmt: skip
    if target_path is not None:
        dbt_args += ["--target-path", str(target_path)]
        env["DBT_LOG_PATH"] = str(target_path / "logs")
    steps = [
        ("raw load (PySpark)", [
            python, "-m", "personalization.spark.raw_load", "--landing", str(landing),
            "--loaded-at", loaded_at, "--warehouse", str(spark_warehouse),
            "--settle-seconds", "0",
        ]),
        ("Python models' tables seeded from DuckDB", [
            python, "-m", "personalization.spark.seed_from_duckdb", "--duckdb", str(duckdb_path),
            "--warehouse", str(spark_warehouse),
        ]),
        (f"dbt {' '.join(dbt_command)} (staging, intermediate, marts)", dbt_args),
    ]  # fmt: skip
    return [run_measured(step, argv, env, PROJECT_ROOT) for step, argv in steps]
