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

**The micro-batch server** (`serve_socket`, docs/orchestration.md "The warm path"): the same
forking server on a Unix socket, long-lived across runs (it outlives the Dagster run process that
started it, and stops after PERSONALIZATION_WARM_DBT_IDLE_SECONDS without a request). It also
keeps a parsed manifest: a child runs `dbtRunner(manifest=...)`, which skips dbt's parse and its
partial-parse check. The manifest is keyed by everything a parse reads (`manifest_key`: every
project file's content, the vars other than as_of, the PERSONALIZATION_* environment, the target):
any change re-parses before the command runs, so a stale manifest never runs. as_of is left out:
dbt renders it when it compiles each node, not at parse time. Its client is the executable
`personalization-warm-dbt` (`client_main`), a drop-in `dbt` for dagster-dbt: it hands the
server its stdout and stderr (SCM_RIGHTS), so dbt's JSON log streams to dagster-dbt as from a
plain dbt process.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

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


def _warm(plugin: bool = False) -> None:
    """Import dbt, its tasks and the DuckDB adapter, and build the schemas a parse validates.

    With plugin, also the project's DuckDB plugin and the libraries its initialisation imports
    (scikit-learn, 2-3 s of CPU that every dbt process otherwise spends when it opens its first
    connection). Only the micro-batch server does: numpy's BLAS starts native threads, and
    its children run no model that computes with them (the daily-only fits are never on the
    micro-batch path); the test suite's server forks children that fit clusters."""
    import dbt.adapters.duckdb  # noqa: F401
    import dbt.cli.main  # noqa: F401
    import dbt.parser.manifest  # noqa: F401
    import dbt.task.build  # noqa: F401

    if not plugin:
        return
    with contextlib.suppress(ImportError):
        from personalization import duckdb_plugin

        duckdb_plugin._preload_python_model_libraries()  # noqa: SLF001 - the plugin's own list

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


def _copy_parsed_manifest(parse_root: Path) -> None:
    """Make this process's dbt copy the parse's manifest.json into a run's target folder instead
    of serialising the manifest again after the run (0.75 s of CPU per micro-batch, at the end
    of the run, so on its latency). The copy has no compiled SQL of the run's nodes: nothing here
    reads it (dagster-dbt runs on its own manifest, the run's results are in run_results.json).
    Only commands that build (COPY_MANIFEST_COMMANDS) take the copy: `compile`, `show` and `ls`,
    whose point may be the compiled SQL, and a plain dbt process write it in full."""
    import dbt.task.runnable

    def copy_manifest(manifest: Any, target_path: str, which: str | None = None) -> None:
        target = Path(target_path)
        target.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "semantic_manifest.json"):
            if (parse_root / name).is_file():
                shutil.copyfile(parse_root / name, target / name)

    dbt.task.runnable.write_manifest = copy_manifest


def warm_templates(manifest: Any) -> int:
    """Compile every macro's Jinja template into dbt's per-process template cache
    (dbt_common's `template_cache`, keyed by the macro's text, so a changed macro compiles anew).
    The forked children inherit it: about half of a child's compile was Jinja compiling the
    same macro templates again on every batch (docs/orchestration.md, "Issue 16: folded guard
    tests", Compile). Returns how many templates compiled; one that fails is left for the child
    (which reports its error as usual)."""
    from dbt_common.clients.jinja import template_cache

    compiled = 0
    for macro in manifest.macros.values():
        try:
            template_cache.get_node_template(macro)
            compiled += 1
        except Exception:  # noqa: BLE001 - the child compiles it again and reports the error
            log.debug("warm dbt: macro %s did not compile ahead", macro.unique_id)
    return compiled


def _child(
    request: dict[str, Any],
    manifest: Any = None,
    fds: Sequence[int] = (),
    parse_root: Path | None = None,
) -> None:
    """In the forked child: become the command's process and run dbt; never returns.

    Output goes to the request's `out` file, or to the client's own stdout and stderr (fds).
    With a manifest, dbt runs programmatically on it (dbtRunner(manifest=...): no parse), and
    copies the parse's manifest.json (parse_root) as the run's artefact."""
    code = 1
    try:
        if fds:
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
        else:
            fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["dbt", *request["args"]]  # dbt logs it as the invocation command
        if manifest is not None:
            from dbt.cli.main import dbtRunner

            if parse_root is not None and _command(request["args"]) in COPY_MANIFEST_COMMANDS:
                _copy_parsed_manifest(parse_root)
            result = dbtRunner(manifest=manifest).invoke(list(request["args"]))
            code = 0 if result.success else (2 if result.exception is not None else 1)
        else:
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


def _warm_templates_by_parsing(project_dir: Path) -> None:
    """Parse the project once in this process (into a temporary folder, against a scratch
    database) and compile its macro templates ahead (warm_templates), for the children to
    inherit. Each dbt command of the test suite then spends about 0.6 s of CPU less; a parse
    that fails leaves the server as it was."""
    from dbt.cli.main import dbtRunner

    started = time.process_time()
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="warm-dbt-parse-") as scratch:
        os.environ.update(
            {"PERSONALIZATION_DB": f"{scratch}/parse.duckdb", "DBT_LOG_PATH": scratch}
        )
        try:
            result = dbtRunner().invoke(
                ["parse", "--quiet", *SERVER_PARSE_FLAGS, "--target", "dev",
                 "--target-path", scratch, "--project-dir", str(project_dir),
                 "--profiles-dir", str(project_dir)]
            )  # fmt: skip
            _close_databases()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    if not result.success or result.result is None:
        log.warning("warm dbt: no templates compiled ahead (%s)", result.exception)
        return
    compiled = warm_templates(result.result)
    log.info("warm dbt: parsed and %d templates compiled ahead in %.1f s of CPU", compiled,
             time.process_time() - started)  # fmt: skip


def serve() -> None:
    """The server loop: one request at a time from stdin, its answer on stdout."""
    _warm()
    from personalization.tracking_plan import PROJECT_ROOT

    _warm_templates_by_parsing(PROJECT_ROOT)
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


# ---------------------------------------------------------------- the cached manifest

# A parse in the server itself (the cached manifest, the templates compiled ahead) runs without
# dbt's static parser: dbt_extractor (Rust) starts a thread pool the first time it parses a
# model, and a forked child that then parses (a command without a cached manifest) waits
# forever on that pool's threads, which a fork does not copy. The children parse as usual.
SERVER_PARSE_FLAGS = ("--no-static-parser",)

# What a parse of the project reads: these folders and the YAML files at the project's root
PROJECT_FOLDERS = ("models", "macros", "tests", "seeds", "snapshots", "analyses", "python_models")
# dbt commands that run on a cached manifest; any other (parse, debug, --version) runs as usual
MANIFEST_COMMANDS = frozenset({"build", "run", "test", "compile", "show", "ls", "list", "seed"})
# commands whose run copies the parse's manifest.json instead of writing it (_copy_parsed_manifest)
COPY_MANIFEST_COMMANDS = frozenset({"build", "run", "test", "seed"})
# vars dbt renders when it compiles a node, never at parse time: a change needs no new parse
COMPILE_TIME_VARS = frozenset({"as_of"})
# environment a run sets per invocation (artefact folders), which a parse does not read
PER_RUN_ENV = frozenset(
    {"DBT_TARGET_PATH", "DBT_LOG_PATH", "PERSONALIZATION_AS_OF", "PERSONALIZATION_WARM_DBT_SHIELD"}
)


def _command(args: Sequence[str]) -> str | None:
    """The dbt command of an argument list (its first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of a dbt option (`--name value` or `--name=value`), or None."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def project_digest(project_dir: Path) -> str:
    """A hash of every file a parse of the project reads (path and content)."""
    digest = hashlib.sha256()
    files = [p for p in sorted(project_dir.glob("*.yml")) if p.is_file()]
    for folder in PROJECT_FOLDERS:
        files += sorted(p for p in (project_dir / folder).rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def manifest_key(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> str | None:
    """The key of the manifest a command can run on, None for a command that parses as usual.

    It changes with anything a parse reads: the project's files (models, macros, the segment
    definitions' YAML, dbt_project.yml, selectors.yml, profiles.yml), the vars other than as_of,
    the target and profile, and the PERSONALIZATION_* and DBT_* environment (database path, landing
    folder, dbt target) other than the per-run artefact folders and as_of."""
    command = _command(args)
    if command not in MANIFEST_COMMANDS:
        return None
    import yaml

    project_dir = Path(_option(args, "--project-dir") or env.get("DBT_PROJECT_DIR") or cwd)
    raw_vars = _option(args, "--vars")
    parsed = yaml.safe_load(raw_vars) if raw_vars else {}
    dbt_vars = {k: v for k, v in (parsed or {}).items() if k not in COMPILE_TIME_VARS}
    environment = {
        name: value
        for name, value in env.items()
        if name.startswith(("PERSONALIZATION_", "DBT_")) and name not in PER_RUN_ENV
    }
    parts = {
        "project": str(project_dir.resolve()),
        "files": project_digest(project_dir),
        "vars": dbt_vars,
        "target": _option(args, "--target"),
        "profile": _option(args, "--profile"),
        "profiles_dir": _option(args, "--profiles-dir"),
        "env": environment,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ManifestCache:
    """The last parsed manifest of the server, and its key (one project at a time)."""

    def __init__(self, parse_root: Path) -> None:
        self.parse_root = parse_root
        self.key: str | None = None
        self.manifest: Any = None
        self.parses = 0

    @contextlib.contextmanager
    def _as_request(self, env: Mapping[str, str], cwd: str) -> Iterator[None]:
        saved_env, saved_cwd = dict(os.environ), os.getcwd()
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)

    def get(self, request: Mapping[str, Any]) -> Any:
        """The manifest the request's command can run on (parsed now if its key changed), or
        None: a command that parses as usual, or a parse that failed (the command then parses
        itself and reports the error)."""
        args, env = list(request["args"]), dict(request["env"])
        key = manifest_key(args, env, Path(request["cwd"]))
        if key is None:
            return None
        if key == self.key:
            return self.manifest
        self.key, self.manifest = None, None
        from dbt.cli.main import dbtRunner

        parse_args = [
            "parse",
            "--quiet",
            *SERVER_PARSE_FLAGS,
            "--target-path",
            str(self.parse_root),
        ]
        for option in ("--project-dir", "--profiles-dir", "--target", "--profile", "--vars"):
            value = _option(args, option)
            if value is not None:
                parse_args += [option, value]
        env = {**env, "DBT_LOG_PATH": str(self.parse_root), "DBT_TARGET_PATH": str(self.parse_root)}
        with self._as_request(env, request["cwd"]):
            result = dbtRunner().invoke(parse_args)
        _close_databases()
        self.parses += 1
        if not result.success or result.result is None:
            log.warning("warm dbt: parse failed (%s); the command parses itself", result.exception)
            return None
        self.key, self.manifest = key, result.result
        started = time.process_time()
        compiled = warm_templates(self.manifest)
        log.info(
            "warm dbt: %d macro templates compiled ahead in %.2f s of CPU",
            compiled,
            time.process_time() - started,
        )
        return self.manifest


# ---------------------------------------------------------------- the micro-batch server

IDLE_ENV = "PERSONALIZATION_WARM_DBT_IDLE_SECONDS"
SOCKET_ENV = "PERSONALIZATION_WARM_DBT_SOCKET"
# "1": the client ignores SIGINT and SIGTERM instead of passing them on to dbt. The micro-batch
# worker sets it: a Ctrl-C in its terminal (or a stop signal to its process group) stops the
# worker after the run in flight, never dbt in the middle of a build (personalization/worker.py)
SHIELD_ENV = "PERSONALIZATION_WARM_DBT_SHIELD"
DEFAULT_IDLE_SECONDS = 900
START_TIMEOUT_SECONDS = 180  # imports on a loaded 2-core machine took 20 s


def socket_path(folder: Path) -> Path:
    """The server's socket for a folder of dbt artefacts (one server per folder and Python
    environment). Under the temporary folder: a Unix socket path must stay short."""
    tag = hashlib.sha256(f"{Path(folder).resolve()}|{sys.executable}".encode()).hexdigest()[:12]
    home = Path(tempfile.gettempdir()) / f"personalization-warm-dbt-{tag}"
    home.mkdir(exist_ok=True)  # beside the socket: .lock, .log, .pid and the .parse folder
    return home / "server.sock"


def _handle(conn: socket.socket, cache: ManifestCache) -> bool:
    """One request: the client's stdout and stderr, then its JSON line. False: stop serving."""
    _, fds, _, _ = socket.recv_fds(conn, 1, 2)
    with conn.makefile("rb") as reader:
        line = reader.readline()
    request = json.loads(line) if line else {"stop": True}
    if request.get("ping"):  # a keep-alive (the micro-batch worker's): the idle time restarts
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pong": True}).encode() + b"\n")
        return True
    if request.get("stop") or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"stopped": True}).encode() + b"\n")
        return False
    try:
        manifest = cache.get(request)
    except Exception:  # a broken project or vars: the command reports it itself
        log.exception("warm dbt: no cached manifest for this request")
        manifest = None
    pid = os.fork()
    if pid == 0:
        conn.close()
        _child(request, manifest, fds, cache.parse_root)
    for fd in fds:
        os.close(fd)
    answer = {"pid": pid, "parsed": cache.parses, "manifest": manifest is not None}
    with contextlib.suppress(OSError):  # a client gone away still leaves a child to wait for
        conn.sendall(json.dumps(answer).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    done = {"returncode": os.waitstatus_to_exitcode(status)}
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(done).encode() + b"\n")
    return True


def serve_socket(path: Path, idle_seconds: float) -> None:
    """Serve dbt commands on a Unix socket, one at a time, until idle for idle_seconds."""
    _warm(plugin=True)
    assert threading.active_count() == 1, "the warm dbt server must have no threads to fork"
    parse_root = Path(f"{path}.parse")
    cache = ManifestCache(parse_root)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)
    listener.bind(str(path))
    listener.listen(8)
    listener.settimeout(idle_seconds)
    pid_file = Path(f"{path}.pid")  # the benchmark reads the server's CPU time through it
    pid_file.write_text(str(os.getpid()))
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                log.info("warm dbt: idle for %ss, stopping", idle_seconds)
                break
            conn.settimeout(None)
            with conn:
                try:
                    serving = _handle(conn, cache)
                except OSError:  # the client went away (its run was cancelled): serve on
                    log.exception("warm dbt: lost a client")
                    serving = True
            if not serving:
                break
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)
        shutil.rmtree(parse_root, ignore_errors=True)


def _connect(path: Path) -> socket.socket | None:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        client.close()
        return None
    return client


def connect_or_start(path: Path, timeout: float = START_TIMEOUT_SECONDS) -> socket.socket:
    """A connection to the server at path, started (detached, in its own session) if none is
    there. A lock file keeps two clients from starting two servers."""
    client = _connect(path)
    if client is not None:
        return client
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = _connect(path)
        if client is not None:
            return client
        path.unlink(missing_ok=True)  # a server that died left its socket
        with open(f"{path}.log", "ab") as server_log:
            subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", "personalization.warm_dbt", "--socket", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=server_log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client = _connect(path)
            if client is not None:
                return client
            time.sleep(0.05)
    raise RuntimeError(f"the warm dbt server at {path} did not start within {timeout:g} s")


def _control(path: Path, message: dict[str, bool]) -> bytes | None:
    """Send the server at path a control message and return its reply (None when no server
    runs there: a control message never starts one)."""
    client = _connect(path)
    if client is None:
        return None
    with client:
        client.sendall(b"\0")
        client.sendall(json.dumps(message).encode() + b"\n")
        return client.recv(1024)


def stop_server(path: Path) -> bool:
    """Stop the server at path (True if one was running)."""
    return _control(path, {"stop": True}) is not None


def ping_server(path: Path) -> bool:
    """Keep the server at path alive (its idle time restarts); False when none is running (a
    ping never starts one)."""
    return b"pong" in (_control(path, {"ping": True}) or b"")


def run_on_server(
    path: Path,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    out: tuple[int, int],
) -> dict[str, Any]:
    """Run `dbt ARGS` in the server at path (started if needed), its output on the descriptors
    out (stdout, stderr). Returns the server's answers: pid, returncode, whether a cached
    manifest ran it (manifest) and how many parses the server has made (parsed). A signal this
    process receives meanwhile is passed on to dbt, or ignored when env sets SHIELD_ENV."""
    client = connect_or_start(path)
    with client:
        socket.send_fds(client, [b"\0"], list(out))
        request = {"args": list(args), "env": dict(env), "cwd": str(cwd)}
        client.sendall(json.dumps(request).encode() + b"\n")
        answers = client.makefile("rb")
        started = json.loads(answers.readline() or b"{}")
        pid = started.get("pid")
        if pid is None:
            return {**started, "returncode": 1}

        def forward(signum: int, _frame: Any) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread:
            shielded = env.get(SHIELD_ENV) == "1"
            for signum in handlers:
                signal.signal(signum, signal.SIG_IGN if shielded else forward)
        try:
            done = json.loads(answers.readline() or b'{"returncode": 1}')
        finally:
            if in_main_thread:
                for signum, handler in handlers.items():
                    signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    return {**started, **done}


def client_main(argv: Sequence[str] | None = None) -> int:
    """`personalization-warm-dbt ARGS`: run `dbt ARGS` in the warm server named by
    PERSONALIZATION_WARM_DBT_SOCKET (started if needed); dbt's output goes to this process's
    stdout and stderr as it comes, and the exit code is dbt's."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(os.environ[SOCKET_ENV])
    out = (sys.stdout.fileno(), sys.stderr.fileno())
    return int(run_on_server(path, args, os.environ, Path.cwd(), out)["returncode"])


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
    if len(sys.argv) == 3 and sys.argv[1] == "--socket":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        idle = float(os.environ.get(IDLE_ENV) or DEFAULT_IDLE_SECONDS)
        serve_socket(Path(sys.argv[2]), idle)
    else:
        serve()
