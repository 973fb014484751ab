"""The same build on DuckDB and on local Spark, side by side (issue 17, docs/scale-out.md).

    python bench/bench_spark.py --events 1000000 [--out bench_spark.json] [--keep]

1. generate --events lines (users = events / 100, 30 days, seed 11);
2. DuckDB: `dbt build` without tests (BUILD) of every model (raw load, staging, intermediate,
   marts, the Python models), then again, with --full-refresh, of what Spark builds
   (SPARK_SELECTION: seeds, staging, intermediate and marts) on the built warehouse, so the two
   engines' figures cover the same models and the same work (Spark's incremental models are
   tables);
3. Spark: the PySpark raw load, the Python models' tables seeded from step 2's build (so the
   dbt build runs in one go), BUILD of SPARK_SELECTION on the spark target (local[2], Parquet),
   then the Python models' own steps on Spark (age kNN, MLlib clustering: what the Dagster engine
   switch runs), timed and counted in Spark's whole build.

Each step is timed in wall and CPU seconds (the step's whole process tree, the JVM included:
personalization.spark.lane.run_measured); the load average before and after is reported, as
the machine may be shared. Events per CPU-second give the per-core throughput the capacity
estimate of docs/scale-out.md uses. Prints one JSON object (also written to --out).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import emit  # noqa: E402
from personalization import cli  # noqa: E402
from personalization.dbt_runner import Warehouse, dbt_executable  # noqa: E402
from personalization.spark.lane import SPARK_SELECTION, build_on_spark, run_measured  # noqa: E402
from personalization.spark.python_steps import STEPS  # noqa: E402
from personalization.spark.session import WAREHOUSE_ENV  # noqa: E402

log = logging.getLogger("bench_spark")


# the dbt command both engines run: models and seeds, no data or unit tests
BUILD = ("build", "--exclude-resource-type", "test", "unit_test")


def duckdb_steps(warehouse: Warehouse, vars_json: str, target: Path) -> list[dict[str, Any]]:
    """BUILD of every model, then of Spark's selection again, on DuckDB (dev target)."""
    env = {**os.environ, "PERSONALIZATION_DB": str(warehouse.db_path),
           "DBT_LOG_PATH": str(target / "logs")}  # fmt: skip
    common = ["--project-dir", str(ROOT), "--profiles-dir", str(ROOT), "--target", "dev",
              "--vars", vars_json, "--target-path", str(target)]  # fmt: skip
    steps = [
        ("dbt build, every model (raw load to marts)", [*BUILD]),
        # --full-refresh: the incremental models rebuilt in full, as the tables they are on Spark
        (
            "dbt build --full-refresh (staging, intermediate, marts)",
            [*BUILD, "--full-refresh", *SPARK_SELECTION],
        ),
    ]
    return [
        vars(run_measured(name, [dbt_executable(), *command, *common], env, ROOT))
        for name, command in steps
    ]


def python_steps_on_spark(spark_warehouse: Path, vars_json: str) -> list[dict[str, Any]]:
    """The dbt Python models' work on Spark (personalization.spark.python_steps, what the
    Dagster engine switch runs): the age kNN and the clustering (MLlib K-Means, Ward on a sample
    with a distributed assignment), each a process of its own, on the built warehouse."""
    env = {**os.environ, WAREHOUSE_ENV: str(spark_warehouse)}
    return [
        vars(run_measured(f"Python step on Spark: {step}", [
            sys.executable, "-m", "personalization.spark.python_steps", step,
            "--vars", vars_json, "--warehouse", str(spark_warehouse),
        ], env, ROOT))
        for step in STEPS
    ]  # fmt: skip


def _totals(
    lines: int, duckdb_step: dict[str, Any], spark_steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per-engine totals, their ratio and events per CPU-second."""
    spark_wall = round(sum(step["wall_s"] for step in spark_steps), 1)
    spark_cpu = round(sum(step["cpu_s"] for step in spark_steps), 1)
    return {
        "duckdb_wall_s": duckdb_step["wall_s"],
        "duckdb_cpu_s": duckdb_step["cpu_s"],
        "spark_wall_s": spark_wall,
        "spark_cpu_s": spark_cpu,
        "spark_over_duckdb_wall": round(spark_wall / duckdb_step["wall_s"], 2),
        "spark_over_duckdb_cpu": round(spark_cpu / duckdb_step["cpu_s"], 2),
        "duckdb_events_per_cpu_s": round(lines / duckdb_step["cpu_s"]),
        "spark_events_per_cpu_s": round(lines / spark_cpu),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    landing = work / "landing"
    users = max(1, args.events // 100)
    code = cli.main(["generate", "--quiet", f"--out={landing}", f"--events={args.events}",
                     f"--users={users}", "--days=30", "--seed=11"])  # fmt: skip
    assert code == 0
    manifest = json.loads((landing / "manifest.json").read_text())
    warehouse = Warehouse(db_path=work / "warehouse.duckdb", landing_path=landing,
                          as_of=manifest["as_of"])  # fmt: skip
    vars_json = json.dumps(warehouse.dbt_vars())
    load_before = os.getloadavg()
    duck = duckdb_steps(warehouse, vars_json, work / "target-duckdb")
    loaded_at = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    spark = [
        vars(f)
        for f in build_on_spark(
            landing, warehouse.db_path, work / "spark-warehouse", vars_json, loaded_at,
            dbt_command=BUILD, target_path=work / "target-spark",
        )
    ]  # fmt: skip
    spark += python_steps_on_spark(work / "spark-warehouse", vars_json)
    load_after = os.getloadavg()
    lines = int(manifest["lines_total"])
    duck_models = duck[1]
    spark_models = spark[2]
    figures = {
        "events": lines,
        "duckdb": duck,
        "spark": spark,
        "same_models": {
            "duckdb_wall_s": duck_models["wall_s"],
            "spark_wall_s": spark_models["wall_s"],
            "duckdb_cpu_s": duck_models["cpu_s"],
            "spark_cpu_s": spark_models["cpu_s"],
            "spark_over_duckdb_wall": round(spark_models["wall_s"] / duck_models["wall_s"], 2),
            "spark_over_duckdb_cpu": round(spark_models["cpu_s"] / duck_models["cpu_s"], 2),
            "duckdb_events_per_cpu_s": round(lines / duck_models["cpu_s"]),
            "spark_events_per_cpu_s": round(lines / spark_models["cpu_s"]),
        },
        # each engine's whole build of the events: DuckDB every model (raw load to marts, the
        # Python models included), Spark the PySpark raw load, the dbt build and the Python
        # models' steps on Spark (age kNN, MLlib clustering); the seeding from DuckDB, which
        # only lets the dbt build run in one go, is not counted
        "totals": _totals(lines, duck[0], [spark[0], spark[2], *spark[3:]]),
        "raw_load": {
            "spark_wall_s": spark[0]["wall_s"],
            "spark_cpu_s": spark[0]["cpu_s"],
            "spark_events_per_cpu_s": round(lines / spark[0]["cpu_s"]),
        },
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "cores": os.cpu_count(),
    }
    if args.keep:
        figures["work"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    return emit(run(args), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
