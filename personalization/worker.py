"""A long-lived micro-batch worker: files pushed to the warehouse, not polled by the sensor.

`personalization worker` (or `make worker`) imports the Dagster definitions once, keeps the warm
dbt server (personalization/warm_dbt.py) and watches the landing folder. When new complete files
are there, it runs the micro-batch job in process against the Dagster instance of DAGSTER_HOME
(the one `make ui` opens): every batch is a real Dagster run, with its asset materialisations
and checks in the UI, tagged like a sensor batch (guard tests only, the warm dbt).

- **Watching**: a stat poll of the landing folder every `--poll-seconds` (0.2 s by default; one
  os.scandir walk, `scan_candidates`: about 5 ms of CPU per 1,000 files, docs/orchestration.md
  "Issue 16: a push-based micro-batch worker"). Not inotify: it needs a new dependency and an
  observer thread, sees nothing that other NFS clients write, and would save at most the poll's
  0.1 s mean delay on a batch of several seconds.
- **Complete files**: by the landing contract's name rule (docs/architecture.md, "Landing
  contract"): a file under a temporary name (`.x.tmp`, `_x`, `x.part`...) is being written and
  is never taken; the collector renames its files when done. A final name is taken once two
  consecutive polls saw the same size and modification time (a writer still appending in place
  holds the batch back), and the worker's runs set the raw load's settle time to
  `--settle-seconds` (0 by default: the rename says the file is done, no age needs guessing).
- **What is new**: a file whose (path, size) is not in the raw load's file log
  (raw.landing_file_log), read again after every run. The raw load's own manifest decides what
  it loads, so a file that landed while a run was going (and was loaded by it, or not) is never
  loaded twice; files that landed during a run are the next run's batch. One run at a time.
- **The sensor**: the worker holds an exclusive lock on `<database>.worker.lock` beside the
  DuckDB file while it runs; the landing sensor skips its ticks while that lock is held
  (orchestration/sensors.py), and takes over when the worker stops.
- **Keeping dbt warm**: between batches the worker pings the warm dbt server every third of its
  idle time (PERSONALIZATION_WARM_DBT_IDLE_SECONDS), so a quiet hour does not cost the next batch
  the server's start and a parse; the server still stops on its own once the worker is gone.
- **Stopping**: SIGINT or SIGTERM stops the worker after the run in flight: runs execute in a
  thread of their own (Dagster does not turn a signal into an interruption there), and the warm
  dbt client is told not to pass a Ctrl-C on to dbt (warm_dbt.SHIELD_ENV), so a run is never
  cut half-way; the worker exits 0 once the run has finished.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from personalization import warm_dbt
from personalization.raw_load import is_in_progress_name, is_json_lines_name

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".worker.lock"
DEFAULT_POLL_SECONDS = 0.2
RETRY_SECONDS, RETRY_MAX_SECONDS = 10.0, 300.0  # the pause after a failed run, doubling
WAIT_WARNING_SECONDS = 10.0  # a file unchanged for no two polls in a row this long is reported
TRIGGER_TAG = "personalization/trigger"
WORKER_DB_TAG = "personalization/worker_db"  # the database of the worker that started a run
FILE_LOG = "raw.landing_file_log"


class WorkerLockedError(RuntimeError):
    """Another worker holds the warehouse folder."""


# ---------------------------------------------------------------- the lock the sensor respects


def lock_path(db: Path) -> Path:
    """The worker's lock file, beside the DuckDB file: one worker per warehouse."""
    return db.with_name(db.name + LOCK_SUFFIX)


@contextlib.contextmanager
def hold_warehouse(db: Path) -> Iterator[Path]:
    """Hold the warehouse's worker lock (an exclusive flock, released when the process ends,
    however it ends); the file names the holder. WorkerLockedError if another process holds it."""
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            raise WorkerLockedError(
                f"{path} is held by {holder}: one worker per warehouse"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {datetime.now(UTC).isoformat()}\n".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock; the file stays (no unlink race)


def worker_holder(db: Path) -> str | None:
    """Who holds the warehouse's worker lock ("pid N since ..."), or None when no worker runs."""
    path = lock_path(db)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return path.read_text().strip() or "a worker"
    finally:
        os.close(fd)  # also releases the shared lock when it was taken
    return None


# ---------------------------------------------------------------- what is new and complete


def handled_files(db: Path) -> dict[str, int] | None:
    """The size of every landing file the raw load has dealt with (its file log), or None when
    the database cannot be read now (a run of another process holds it)."""
    import duckdb

    try:
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute(
                f"select file_path, max(file_size) from {FILE_LOG} "
                "where status <> 'missing' and file_size is not null group by file_path"
            ).fetchall()
    except duckdb.CatalogException as error:
        raise RuntimeError(
            f"{db} has no {FILE_LOG}: build the warehouse once before starting the worker"
        ) from error
    except duckdb.IOException:
        return None
    return {path: int(size) for path, size in rows}


def scan_candidates(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file the raw load would consider (the same name rules as
    raw_load.scan_landing), by path relative to root. One os.scandir walk with the directory
    entries' own stat: about 5x less CPU than scan_landing's rglob (5 vs 26 ms per 1,000 files),
    which matters five times a second."""
    found: dict[str, tuple[int, int]] = {}
    folders = [("", str(root))]
    while folders:
        prefix, folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:  # the landing folder (or a sub-folder) is not there (yet)
            continue
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_dir():
                folders.append((relative + "/", entry.path))
            elif (
                entry.is_file()
                and not is_in_progress_name(relative)
                and is_json_lines_name(relative)
            ):
                stat = entry.stat()
                found[relative] = (stat.st_size, stat.st_mtime_ns)
    return found


@dataclass
class LandingWatch:
    """New complete landing files, by the name rule and two equal polls (see the module doc)."""

    root: Path
    handled: dict[str, int] = field(default_factory=dict)
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)
    _waiting_since: float | None = None

    def pending(self) -> dict[str, tuple[int, int]]:
        """(size, mtime) of the files under final names the warehouse does not have (at this
        size)."""
        return {
            path: state
            for path, state in scan_candidates(self.root).items()
            if self.handled.get(path) != state[0]
        }

    def poll(self) -> list[str]:
        """The batch to run now: every pending file once all of them are unchanged since the
        last poll; [] while any is still changing (the raw load would take it half-written)."""
        now = self.pending()
        changing = sorted(path for path, state in now.items() if self._last.get(path) != state)
        self._last = now
        if not now or not changing:
            self._waiting_since = None
            return sorted(now)
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        elif time.monotonic() - self._waiting_since > WAIT_WARNING_SECONDS:
            log.warning(
                "%s still changing after %.0f s: write under a temporary name and rename",
                changing[0],
                WAIT_WARNING_SECONDS,
            )
            self._waiting_since = time.monotonic()
        return []


def land_atomically(root: Path, relative: str, lines: list[str]) -> Path:
    """Write a landing file as the contract asks (and the collector does): under a temporary
    name, flushed to disk, then renamed to its final name in one step."""
    final = root / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.tmp")
    with temporary.open("w") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    return final


# ---------------------------------------------------------------- the worker


def batch_tags(files: list[str], db: Path) -> dict[str, str]:
    """The tags of a worker batch: the sensor's (a sensor batch's dbt path), the trigger and
    the worker's database."""
    from orchestration.dbt_assets import SENSOR_BATCH_TAG
    from orchestration.sensors import batch_key

    return {
        SENSOR_BATCH_TAG: batch_key(files),
        "personalization/batch_files": str(len(files)),
        "personalization/batch_first_file": files[0],
        "personalization/batch_last_file": files[-1],
        TRIGGER_TAG: "worker",
        WORKER_DB_TAG: str(db),
    }


class MicroBatchWorker:
    """Runs the micro-batch job whenever complete new files are in the landing folder."""

    def __init__(
        self,
        job: Any,
        instance: Any,
        warehouse: Any,
        resources: Mapping[str, Any] | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.job = job
        self.instance = instance
        self.warehouse = warehouse  # orchestration.resources.WarehouseResource
        self.resources = dict(resources) if resources is not None else None
        self.poll_seconds = poll_seconds
        self.watch = LandingWatch(warehouse.landing())
        self.stop = threading.Event()
        self.runs: list[Any] = []  # ExecuteInProcessResult of every batch, in order
        self.on_detected: Callable[[list[str]], None] | None = None  # the bench's clock
        self._next_ping = 0.0

    def refresh(self, loaded: Sequence[str] = ()) -> None:
        """What the warehouse has now; when it cannot be read (another process writes it), the
        files of the batch that just succeeded count as handled."""
        handled = handled_files(self.warehouse.db())
        if handled is None:
            pending = self.watch.pending()
            sizes = {path: pending[path][0] for path in loaded if path in pending}
            self.watch.handled.update(sizes)
        else:
            self.watch.handled = handled

    def run_batch(self, files: list[str]) -> Any:
        """One micro-batch run of the job, in a thread of its own (a signal to this process
        never interrupts it), recorded in the instance."""
        outcome: dict[str, Any] = {}

        def execute() -> None:
            try:
                outcome["result"] = self.job.execute_in_process(
                    instance=self.instance,
                    resources=self.resources,
                    tags=batch_tags(files, self.warehouse.db()),
                    raise_on_error=False,
                )
            except BaseException as error:  # reported by the worker's loop
                outcome["error"] = error

        log.info("micro-batch: %d new file(s), first %s", len(files), files[0])
        thread = threading.Thread(target=execute, name="microbatch-run")
        thread.start()
        while thread.is_alive():
            thread.join(0.2)  # the main thread stays free for signal handlers
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        self.runs.append(result)
        self.refresh(files if result.success else ())  # a failed batch stays new (retried)
        log.info(
            "micro-batch run %s %s", result.run_id, "succeeded" if result.success else "FAILED"
        )
        return result

    def step(self) -> Any:
        """One poll; a run when a batch is complete. The run's result, or None."""
        files = self.watch.poll()
        if not files:
            return None
        if self.on_detected is not None:
            self.on_detected(files)
        return self.run_batch(files)

    def fail_orphans(self) -> list[str]:
        """Mark failed the runs a killed worker of this warehouse left "started" (SIGKILL, a
        crash: nothing finished them), freeing their DuckDB pool slot. Only a worker holding
        the warehouse's lock calls this, so no run of a live worker is among them."""
        import dagster as dg

        runs = self.instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
                tags={TRIGGER_TAG: "worker", WORKER_DB_TAG: str(self.warehouse.db())},
            )
        )
        for orphan in runs:
            log.warning("run %s of a stopped worker never finished: marked failed", orphan.run_id)
            self.instance.report_run_failed(orphan, "the micro-batch worker running it died")
            self.instance.event_log_storage.free_concurrency_slots_for_run(orphan.run_id)
        return [orphan.run_id for orphan in runs]

    def keep_warm(self) -> None:
        """Ping the warm dbt server of this warehouse's dbt artefacts every third of its idle
        time, so a quiet spell longer than that (900 s by default) does not cost the next batch
        the server's start and a parse; a server that is not running is left so."""
        if time.monotonic() < self._next_ping:
            return
        idle = float(os.environ.get(warm_dbt.IDLE_ENV) or warm_dbt.DEFAULT_IDLE_SECONDS)
        self._next_ping = time.monotonic() + idle / 3
        warm_dbt.ping_server(warm_dbt.socket_path(self.warehouse.targets()))

    def warm_up(self) -> None:
        """Start the warm dbt server and parse the project for the worker's runs before the
        first file comes (orchestration.dbt_assets.warm_up_micro_batches)."""
        from orchestration.dbt_assets import warm_up_micro_batches

        if self.resources is None:
            from orchestration.definitions import RESOURCES as resources
        else:
            resources = self.resources
        started = time.perf_counter()
        if warm_up_micro_batches(resources["dbt"], self.warehouse):
            log.info("warm dbt ready for micro-batches in %.1f s", time.perf_counter() - started)
        else:
            log.warning("warm dbt not warmed up: the first batch parses the project")

    def serve(self, max_runs: int | None = None) -> int:
        """Poll and run until stopped (or max_runs runs); the number of failed runs. After a
        failed run the next one waits RETRY_SECONDS, doubling up to RETRY_MAX_SECONDS (a run
        that fails before its raw load leaves its files new: no retry loop at poll speed)."""
        self.fail_orphans()
        self.refresh()
        self.warm_up()
        failed = streak = 0
        while not self.stop.is_set():
            result = self.step()
            if result is None:
                self.keep_warm()
                self.stop.wait(self.poll_seconds)
                continue
            if max_runs is not None and len(self.runs) >= max_runs:
                failed += 0 if result.success else 1
                break
            if result.success:
                streak = 0
                continue  # files that landed during the run: look again at once
            failed, streak = failed + 1, streak + 1
            pause = min(RETRY_SECONDS * 2 ** (streak - 1), RETRY_MAX_SECONDS)
            log.warning("run %s failed: next attempt in %g s", result.run_id, pause)
            self.stop.wait(pause)
        return failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help="seconds between two looks at the landing folder",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=0,
        help="the raw load's settle time in the worker's runs (0: files are complete when "
        "renamed to their final name)",
    )
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs")


def run(args: argparse.Namespace) -> int:
    """The CLI entry: lock the warehouse, load the definitions once, serve until a signal."""
    for handler in logging.getLogger().handlers:  # a long-lived service: timestamped lines
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    os.environ["PERSONALIZATION_LANDING_SETTLE_SECONDS"] = f"{args.settle_seconds:g}"
    os.environ[warm_dbt.SHIELD_ENV] = "1"
    if not os.environ.get("DAGSTER_HOME"):
        log.error("DAGSTER_HOME is not set: the worker records its runs in that instance")
        return 2
    import dagster as dg

    from orchestration.definitions import defs
    from orchestration.resources import WarehouseResource

    warehouse = WarehouseResource()
    if not warehouse.db().is_file():
        log.error("%s does not exist: build the warehouse once first (make demo, or "
                  "personalization build)", warehouse.db())  # fmt: skip
        return 2
    try:
        with hold_warehouse(warehouse.db()) as lock:
            worker = MicroBatchWorker(
                defs.resolve_job_def("microbatch_job"),
                dg.DagsterInstance.get(),
                warehouse,
                poll_seconds=args.poll_seconds,
            )

            def stop(signum: int, _frame: Any) -> None:
                log.info("%s: stopping after the run in flight", signal.Signals(signum).name)
                worker.stop.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, stop)
            log.info(
                "worker on %s (lock %s): polling every %gs, runs recorded in %s",
                warehouse.landing(),
                lock,
                args.poll_seconds,
                os.environ["DAGSTER_HOME"],
            )
            failed = worker.serve(max_runs=args.max_runs)
    except (WorkerLockedError, RuntimeError) as error:
        log.error("%s", error)
        return 1
    log.info("worker stopped after %d run(s), %d failed", len(worker.runs), failed)
    return 0
