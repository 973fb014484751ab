"""Where a dbt model's time goes on local Spark (issue 17, docs/scale-out.md, "Staging on Spark:
where the time goes").

    python bench/profile_spark_model.py --warehouse DIR --sql COMPILED.sql [--out profile.json]
        [--inputs-from-duckdb WAREHOUSE.duckdb --inputs raw.raw_landing_events,...] [--runs N]

Runs a model's compiled SELECT (dbt's target/compiled/.../model.sql of a spark-target build) on
a warehouse that holds its inputs (e.g. the Spark lane's, or a new one seeded with the input
tables of a DuckDB build: --inputs-from-duckdb), without writing a table, and reports:
the query planner's phases (parsing, analysis, optimisation, physical planning: Spark's own
QueryPlanningTracker), the size of the analysed and optimised plans and of the whole-stage
generated Java code, the Python UDF nodes, and the execution (a `noop` write) with whole-stage
code generation on and off. The project's functions are registered first, as dbt_spark does.
Prints one JSON object (also written to --out).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

log = logging.getLogger("profile_spark_model")


def jvm_cpu_seconds(spark: Any) -> float:
    """CPU seconds (user + system) the session's JVM has used so far (/proc: Linux), so the
    figures hold on a loaded machine where wall seconds stretch."""
    import os

    pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())  # noqa: SLF001 - py4j
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plan_phases(spark: Any, sql: str) -> dict[str, Any]:
    """Plan `sql` (no execution): each planner phase's milliseconds, plan text sizes, UDF nodes."""
    started, cpu = time.perf_counter(), jvm_cpu_seconds(spark)
    frame = spark.sql(sql)
    execution = frame._jdf.queryExecution()  # noqa: SLF001 - py4j: Spark's QueryExecution
    executed = execution.executedPlan().toString()
    wall, cpu = time.perf_counter() - started, jvm_cpu_seconds(spark) - cpu
    phases = execution.tracker().phases()
    names = phases.keys().toList()
    phase_ms = {
        str(names.apply(i)): int(phases.apply(names.apply(i)).durationMs())
        for i in range(names.size())
    }
    codegen = execution.debug().codegenToSeq()
    code_chars = sum(len(str(codegen.apply(i)._2())) for i in range(codegen.size()))
    return {
        "planning_wall_s": round(wall, 2),
        "planning_jvm_cpu_s": round(cpu, 2),
        "phase_ms": phase_ms,
        "analyzed_plan_chars": len(execution.analyzed().toString()),
        "optimized_plan_chars": len(execution.optimizedPlan().toString()),
        "executed_plan_chars": len(executed),
        "whole_stage_subtrees": int(codegen.size()),
        "generated_java_chars": code_chars,
        "python_udf_nodes": executed.count("BatchEvalPython") + executed.count("ArrowEvalPython"),
    }


def execute(spark: Any, sql: str) -> dict[str, float]:
    """Wall and JVM CPU seconds of planning and running `sql` to the `noop` sink (every row
    computed)."""
    started, cpu = time.perf_counter(), jvm_cpu_seconds(spark)
    spark.sql(sql).write.format("noop").mode("overwrite").save()
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "jvm_cpu_s": round(jvm_cpu_seconds(spark) - cpu, 2),
    }


def profile(
    warehouse: Path, sql: str, runs: int = 1, inputs: dict[str, Path] | None = None
) -> dict[str, Any]:
    """The report above; `inputs` (table -> Parquet file) are registered as tables first."""
    from personalization.privacy import resolve_key
    from personalization.spark.dbt_spark import register_functions
    from personalization.spark.seed_from_duckdb import register_tables
    from personalization.spark.session import spark_session

    spark = spark_session(warehouse)
    try:
        if inputs:
            register_tables(spark, inputs)
        register_functions(spark, resolve_key(require_key=False))
        result: dict[str, Any] = {"sql_chars": len(sql), "plan": plan_phases(spark, sql)}
        result["run_codegen_on_s"] = [execute(spark, sql) for _ in range(runs)]
        spark.conf.set("spark.sql.codegen.wholeStage", "false")
        result["run_codegen_off_s"] = [execute(spark, sql) for _ in range(runs)]
        result["rows"] = spark.sql(sql).count()
    finally:
        spark.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--sql", type=Path, required=True, help="a compiled model's SELECT")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--runs", type=int, default=1, help="executions per code-generation mode")
    parser.add_argument("--inputs-from-duckdb", type=Path, help="a DuckDB warehouse file")
    parser.add_argument("--inputs", default="", help="its tables to register (comma-separated)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    inputs = None
    if args.inputs_from_duckdb:
        from personalization.spark.seed_from_duckdb import export_tables

        tables = tuple(name for name in args.inputs.split(",") if name)
        inputs = export_tables(args.inputs_from_duckdb, args.warehouse.parent / "inputs", tables)
    result = profile(args.warehouse, args.sql.read_text(), args.runs, inputs)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    log.info("profile:\n%s", text)


if __name__ == "__main__":
    main()
