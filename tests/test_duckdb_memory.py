"""DuckDB's memory limit on the connections dbt opens (personalization/duckdb_plugin.py): the
PERSONALIZATION_DUCKDB_MEMORY_LIMIT variable when set, else two thirds of the machine's memory,
and nothing in profiles.yml that sets it back on dbt's cursors."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURE_LANDING, make_warehouse

from personalization.dbt_runner import run_dbt
from personalization.duckdb_plugin import MEMORY_LIMIT_ENV, memory_limit


def duckdb_shows(limit: str) -> str:
    """How DuckDB reports a memory limit it was given (its own units and rounding)."""
    with duckdb.connect(config={"memory_limit": limit}) as con:
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def limit_in_dbt(tmp_path: Path, env: dict[str, str]) -> str:
    result = run_dbt(
        ["show", "--inline", "select current_setting('memory_limit') as m", "--output", "json",
         "--log-format", "json"],
        make_warehouse(tmp_path, FIXTURE_LANDING),
        env=env,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        preview = json.loads(line).get("data", {}).get("preview") if line.startswith("{") else None
        if preview:
            return json.loads(preview)[0]["m"]
    raise AssertionError(f"no preview in dbt's output:\n{result.stdout[-2000:]}")


def test_the_limit_is_two_thirds_of_the_machine_unless_set() -> None:
    assert memory_limit({MEMORY_LIMIT_ENV: " 3GB "}) == "3GB"
    default = memory_limit({MEMORY_LIMIT_ENV: ""})
    assert default.endswith("MiB")
    # the kernel's own figure (MemTotal leaves out memory the kernel reserves: within 5%)
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    share = int(default.removesuffix("MiB")) / (total_kib / 1024)
    assert share == pytest.approx(2 / 3, rel=0.05)


@pytest.mark.parametrize("configured", ["3GB", ""])
def test_dbt_connections_use_the_limit(tmp_path: Path, configured: str) -> None:
    """Through a real dbt command: the variable's limit, or the default one; a profile setting
    applied to dbt's cursors (it used to be a fixed 8GB there) would show instead."""
    shown = limit_in_dbt(tmp_path, {MEMORY_LIMIT_ENV: configured})
    expected = configured or memory_limit({MEMORY_LIMIT_ENV: ""})
    assert shown == duckdb_shows(expected)
    assert shown != duckdb_shows("8GB")
