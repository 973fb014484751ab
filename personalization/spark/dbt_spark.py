"""dbt on the `spark` target with the project's functions registered on the session.

dbt-spark's `session` method runs its SparkSession in the dbt process (getOrCreate). This entry
point creates that session first, with the target's parameters, registers the pseudonymisation
functions DuckDB gets from personalization.duckdb_plugin (`user_pseudonym`, `pseudonymise`: the
same Python code, so the same pseudonyms), then runs dbt in the same process, whose session is
this one. The key stays in the process environment (PERSONALIZATION_HMAC_KEY, else the
development key with a warning, as the dev target): it never reaches the SQL or the warehouse.

    python -m personalization.spark.dbt_spark build --select ... [dbt arguments]

The functions are temporary (session) functions: a model that calls them must be a table, never
a view (Spark refuses a permanent view over a temporary function), as on DuckDB.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from personalization.dbt_runner import DbtError, Warehouse
from personalization.pii_guard import scrub_expression
from personalization.privacy import pseudonymise, resolve_key, user_pseudonym
from personalization.spark.session import WAREHOUSE_ENV
from personalization.tracking_plan import PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# the JVM's output of a dbt run on Spark, in the warehouse folder (main)
DRIVER_LOG = "spark-driver.log"

# The PII guard's scrub as DuckDB SQL over a column `value` (what personalization.duckdb_plugin
# registers as the scrub_pii macro)
SCRUB_SQL = scrub_expression("value")


def scrub_texts(values: pd.Series) -> pd.Series:
    """personalization.pii_guard's scrub (the SQL DuckDB's plugin registers as `scrub_pii`) over a
    batch of texts, evaluated by an in-memory DuckDB: the same expression, so the same output
    byte for byte on both engines; null stays null."""
    import duckdb

    frame = pd.DataFrame({"value": values.astype(object)})
    with duckdb.connect() as con:
        con.register("batch", frame)
        scrubbed = con.execute(f"select {SCRUB_SQL} as value from batch").df()["value"]
    return scrubbed.astype(object).where(values.notna(), None)


def register_functions(spark: SparkSession, key: bytes) -> None:
    """Register user_pseudonym(text) and pseudonymise(text) on the session: Python UDFs calling
    personalization.privacy with `key` (row-at-a-time Python UDFs; their cost at scale is in
    docs/scale-out.md); and scrub_pii(text), a vectorised (Arrow) UDF running the PII guard's
    DuckDB expression over each batch (scrub_texts)."""
    from pyspark.sql.functions import pandas_udf, udf

    spark.udf.register("user_pseudonym", udf(lambda value: user_pseudonym(value, key), "string"))
    spark.udf.register("pseudonymise", udf(lambda value: pseudonymise(value, key), "string"))
    spark.udf.register("scrub_pii", pandas_udf(scrub_texts, "string"))


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 of this process go to `path` inside the block (the JVM that
    pyspark starts in it inherits them for good); the process's own output is restored after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    try:
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    """Run dbt (the given arguments, `--target spark` added when missing) in this process, on a
    session that has the project's functions.

    The JVM's own output (log4j lines, the console progress bar's carriage returns) goes to
    DRIVER_LOG in the warehouse folder, not to this process's output: dagster-dbt reads dbt's
    JSON log lines from stdout with stderr merged in, and a progress bar written into the middle
    of a line made it drop that node's event (a skipped downstream step)."""
    from dbt.cli.main import dbtRunner

    from personalization.spark.session import spark_session, warehouse_dir

    args = list(sys.argv[1:] if argv is None else argv)
    if "--target" not in args:
        args += ["--target", "spark"]
    with output_to(Path(warehouse_dir()) / DRIVER_LOG):
        spark = spark_session()
    register_functions(spark, resolve_key(require_key=False))
    result = dbtRunner().invoke(args)
    if result.exception is not None:
        log.error("dbt failed: %s", result.exception)
        return 2
    return 0 if result.success else 1


def run_dbt_spark(
    command: list[str],
    warehouse: Warehouse,
    spark_warehouse: Path,
    dbt_vars: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`dbt <command> --target spark` through this entry point, in a process of its own (the
    embedded metastore is open in one JVM at a time), with the vars of `warehouse` (landing
    folder, as_of) as run_dbt passes them; raise DbtError with dbt's output tail on failure."""
    args = [
        sys.executable, "-m", "personalization.spark.dbt_spark", *command,
        "--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT),
        "--target", "spark", "--vars", json.dumps(warehouse.dbt_vars(dbt_vars)),
    ]  # fmt: skip
    env = {"DBT_INDIRECT_SELECTION": "buildable", **os.environ, WAREHOUSE_ENV: str(spark_warehouse)}
    if warehouse.target_path is not None:
        args += ["--target-path", str(warehouse.target_path)]
        env["DBT_LOG_PATH"] = str(warehouse.target_path / "logs")
    result = subprocess.run(
        args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join(
            line for line in result.stdout.splitlines()[-60:] if "ERROR" in line or "FAIL" in line
        )
        raise DbtError(f"dbt {' '.join(command)} --target spark failed:\n{tail}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
