"""A warm dbt: one process imports dbt and builds its schema validators once, then forks a child
per command, so each command skips the 4-5 s every new `dbt` process spends on imports and on
generating JSON schemas before it parses the project.

The test suite (tests/conftest.py) turns it on for its own process with enable(): its dbt
commands are mostly parsing. `run_dbt` sends a command here when it is on, and falls back to a
plain subprocess when the server cannot start (processes the tests start run dbt as usual).
The server has no threads and opens no database before it forks (neither survives a fork):
children open their own.

Protocol (one JSON object per line): request {"args", "env", "cwd", "out"}, where args are
dbt's arguments without the executable and `out` the file for the child's stdout and stderr;
answer {"returncode"}.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

_enabled = False


# The dbt classes a parse of this project validates (found by recording json_schema calls): each
# builds its JSON schema on first use and caches it per process. Building them here is what the
# children inherit; a class that moved in a later dbt only costs its child the build.
SCHEMA_CLASSES = (
    "dbt.adapters.duckdb.credentials.DuckDBCredentials",
    "dbt.artifacts.resources.v1.components.Contract",
    "dbt.artifacts.resources.v1.config.NodeConfig",
    "dbt.artifacts.resources.v1.config.TestConfig",
    "dbt.artifacts.resources.v1.exposure.ExposureConfig",
    "dbt.artifacts.resources.v1.model.ModelConfig",
    "dbt.artifacts.resources.v1.seed.SeedConfig",
    "dbt.artifacts.resources.v1.source_definition.SourceConfig",
    "dbt.artifacts.resources.v1.unit_test_definition.UnitTestConfig",
    "dbt.contracts.graph.nodes.GenericTestNode",
    "dbt.contracts.graph.nodes.HookNode",
    "dbt.contracts.graph.nodes.ModelNode",
    "dbt.contracts.graph.nodes.SeedNode",
    "dbt.contracts.graph.nodes.SingularTestNode",
    "dbt.contracts.graph.unparsed.UnparsedExposure",
    "dbt.contracts.graph.unparsed.UnparsedMacroUpdate",
    "dbt.contracts.graph.unparsed.UnparsedModelUpdate",
    "dbt.contracts.graph.unparsed.UnparsedNodeUpdate",
    "dbt.contracts.graph.unparsed.UnparsedSourceDefinition",
    "dbt.contracts.graph.unparsed.UnparsedUnitTest",
    "dbt.contracts.project.Configuration",
    "dbt.contracts.project.PackageConfig",
    "dbt.contracts.project.ProfileConfig",
    "dbt.contracts.project.Project",
    "dbt.contracts.project.ProjectFlags",
    "dbt.contracts.selection.SelectorFile",
)


def _warm() -> None:
    """Import dbt, its tasks and the DuckDB adapter, and build the schemas a parse validates."""
    import dbt.adapters.duckdb  # noqa: F401
    import dbt.cli.main  # noqa: F401
    import dbt.parser.manifest  # noqa: F401
    import dbt.task.build  # noqa: F401

    for name in SCHEMA_CLASSES:
        module, _, qualname = name.rpartition(".")
        with contextlib.suppress(ImportError, AttributeError):
            getattr(importlib.import_module(module), qualname).json_schema()


def _close_databases() -> None:
    """Close dbt-duckdb's database as a dbt process does when it exits: closing the last
    connection checkpoints the write-ahead log into the file (os._exit alone would leave the
    build in warehouse.duckdb.wal, and a copy of the .duckdb file would miss it)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment = DuckDBConnectionManager._ENV  # noqa: SLF001 - dbt-duckdb keeps one per process
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()
    gc.collect()


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the command's process and run dbt; never returns."""
    code = 1
    try:
        fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        from dbt.cli.main import cli

        try:
            cli.main(request["args"], prog_name="dbt", standalone_mode=True)
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
        _close_databases()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The server loop: one request at a time from stdin, its answer on stdout."""
    _warm()
    assert threading.active_count() == 1, "the warm dbt server must have no threads to fork"
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing else may write on the answer pipe
    answers.write("ready\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


class WarmDbt:
    """The client side, one server per process that uses it (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: subprocess.Popen[str] | None = None
        self._count = 0

    def _start(self) -> subprocess.Popen[str]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "personalization.warm_dbt"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            assert self._server.stdout is not None
            if self._server.stdout.readline().strip() != "ready":
                raise RuntimeError("the warm dbt server did not start")
        return self._server

    def run(self, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
        """Run `dbt <args>` (args without the executable) in a forked child; its output is
        returned as stdout, as subprocess.run(capture_output=True) would (stderr merged)."""
        with self._lock:
            server = self._start()
            self._count += 1
            folder = Path(env.get("DBT_LOG_PATH") or tempfile.gettempdir())
            out = folder / f"warm-dbt-{os.getpid()}-{self._count}.out"
            out.parent.mkdir(parents=True, exist_ok=True)
            assert server.stdin is not None and server.stdout is not None
            request = {"args": args, "env": env, "cwd": str(cwd), "out": str(out)}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            answer = server.stdout.readline()
            if not answer:
                raise RuntimeError("the warm dbt server stopped")
            returncode = json.loads(answer)["returncode"]
        output = out.read_text(errors="replace")
        out.unlink(missing_ok=True)
        return subprocess.CompletedProcess(["dbt", *args], returncode, output, "")


_CLIENT = WarmDbt()


def enable() -> None:
    """Send this process's run_dbt commands to a warm server (started on first use)."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess | None:
    """dbt through the warm server, or None when it cannot start (the caller runs a process)."""
    try:
        return _CLIENT.run(args, env, cwd)
    except (OSError, RuntimeError, ValueError):
        return None


if __name__ == "__main__":
    serve()
