"""Run dbt commands against this project from Python (demo, tests, benchmarks, orchestration)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalization import warm_dbt
from personalization.reference_time import resolve_as_of
from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    """A dbt command failed; the message carries dbt's own output tail."""


class DbtVarsError(DbtError):
    """A var that replaces a YAML file (segment_definitions, trait_catalogue) is invalid: found
    before dbt starts, with the var, the key path and a suggestion."""


def check_file_vars(dbt_vars: dict[str, Any] | None) -> None:
    """Raise DbtVarsError listing every problem of the vars segment_definitions and
    trait_catalogue (the checks of `personalization segments validate`), without dbt."""
    if not dbt_vars or not any(
        name in dbt_vars for name in ("segment_definitions", "trait_catalogue")
    ):
        return
    from personalization.segments.validate import check_dbt_vars

    problems = check_dbt_vars(dbt_vars)
    if problems:
        raise DbtVarsError("invalid dbt vars:\n" + "\n".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class Warehouse:
    """Where a build reads landing files and writes its DuckDB database."""

    db_path: Path
    landing_path: Path
    target_path: Path | None = None  # dbt's target/ folder; None = the project's own
    # the reference time (ISO); None = resolved by personalization.reference_time (environment,
    # the warehouse's pinned as_of, else the time of the run)
    as_of: str | None = None
    # files written completely before the build (generator, fixtures) need no settle time
    settle_seconds: int = 0

    def dbt_vars(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        fixed: dict[str, Any] = {
            "landing_path": str(self.landing_path),
            "landing_settle_seconds": self.settle_seconds,
        }
        reference = resolve_as_of(self.as_of, self.db_path)
        if reference.as_of is not None:
            fixed["as_of"] = reference.as_of
        return {**fixed, **(extra or {})}


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    command: list[str],
    warehouse: Warehouse,
    dbt_vars: dict[str, Any] | None = None,
    target: str = "dev",
    env: dict[str, str] | None = None,
    check: bool = True,
    stream: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `dbt <command>` in the project directory; raise DbtError on failure when check.

    With stream, dbt's per-node lines are logged as they come (see stream_dbt_output). The vars
    that replace a YAML file are validated first (DbtVarsError, no dbt start-up)."""
    check_file_vars(dbt_vars)
    warehouse.db_path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        dbt_executable(),
        *command,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
        "--target",
        target,
        "--vars",
        json.dumps(warehouse.dbt_vars(dbt_vars)),
    ]
    if warehouse.target_path is not None:
        args += ["--target-path", str(warehouse.target_path)]
    process_env = {
        # a selection runs the tests whose every parent is selected or built (not tests that
        # would read models the selection left out, such as the conservation test)
        "DBT_INDIRECT_SELECTION": "buildable",
        **os.environ,
        "PERSONALIZATION_DB": str(warehouse.db_path),
        **(env or {}),
    }
    if warehouse.target_path is not None:
        process_env["DBT_LOG_PATH"] = str(warehouse.target_path / "logs")
    log.debug("running %s", " ".join(args))
    warm = None
    if warm_dbt.enabled() and not stream:  # the test suite's forking server (warm_dbt.py)
        warm = warm_dbt.run(args[1:], process_env, PROJECT_ROOT)
    if warm is not None:
        result = warm
    elif stream:
        result = stream_dbt_output(args, process_env)
    else:
        result = subprocess.run(
            args, cwd=PROJECT_ROOT, env=process_env, capture_output=True, text=True, check=False
        )
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise DbtError(f"dbt {' '.join(command)} failed (exit {result.returncode}):\n{tail}")
    return result


# dbt's line for a finished node: "12 of 230 OK created sql table model staging.x ... [OK in 0.51s]"
# and its summary: "Finished running 120 table models ...", "Done. PASS=300 WARN=0 ERROR=0 ..."
_PROGRESS = re.compile(r"\b\d+ of \d+ (?!START\b)[A-Z]+|Finished running|Done\. PASS=|Completed ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
progress_log = logging.getLogger("personalization.dbt")


def stream_dbt_output(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run dbt, logging each finished node ("12 of 230 OK created ...") and the final summary
    as dbt prints them, so a long build shows progress; returns the whole output as run() would.
    """
    lines: list[str] = []
    with subprocess.Popen(
        args,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            text = _ANSI.sub("", line.rstrip())
            if _PROGRESS.search(text):
                progress_log.info("%s", text)
    return subprocess.CompletedProcess(args, process.returncode, "".join(lines), "")
