"""The push-based micro-batch worker (personalization/worker.py): what it takes, when, and how it
coexists with the landing sensor; one end-to-end run of the real worker process on a copy of the
session's fixture warehouse, stopped by SIGTERM in the middle of a run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest
from conftest import FIXTURE_AS_OF, user_key

from orchestration import sensors
from orchestration.resources import WarehouseResource
from personalization import warm_dbt
from personalization import worker as worker_module
from personalization.dbt_runner import Warehouse
from personalization.raw_load import scan_landing
from personalization.tracking_plan import PROJECT_ROOT
from personalization.worker import (
    TRIGGER_TAG,
    WORKER_DB_TAG,
    LandingWatch,
    MicroBatchWorker,
    WorkerLockedError,
    hold_warehouse,
    land_atomically,
    scan_candidates,
    worker_holder,
)

sys.path.insert(0, str(PROJECT_ROOT))
from bench.bench_microbatch import new_user_lines, require_success  # noqa: E402

AS_OF = datetime.fromisoformat(FIXTURE_AS_OF.replace("Z", "+00:00"))


def test_a_file_under_a_temporary_name_or_still_changing_is_not_taken(tmp_path: Path) -> None:
    watch = LandingWatch(tmp_path)
    writing = tmp_path / "dt=1" / ".a.jsonl.tmp"
    writing.parent.mkdir()
    writing.write_text('{"type": "track"}\n')
    assert watch.poll() == [] and watch.poll() == []  # a temporary name is never taken
    writing.rename(tmp_path / "dt=1" / "a.jsonl")
    assert watch.poll() == []  # first seen: taken when the next poll finds it unchanged
    assert watch.poll() == ["dt=1/a.jsonl"]
    in_place = tmp_path / "dt=1" / "b.jsonl"  # a writer that ignores the contract
    in_place.write_text('{"type": "track"}\n')
    watch.poll()
    with in_place.open("a") as handle:
        handle.write('{"type": "page"}\n')
    assert watch.poll() == []  # b changed since the last poll: the whole batch waits
    assert watch.poll() == ["dt=1/a.jsonl", "dt=1/b.jsonl"]
    watch.handled = {"dt=1/a.jsonl": (tmp_path / "dt=1" / "a.jsonl").stat().st_size}
    assert watch.poll() == ["dt=1/b.jsonl"]  # what the warehouse has is not new
    watch.handled["dt=1/b.jsonl"] = in_place.stat().st_size
    assert watch.poll() == []
    with in_place.open("a") as handle:  # a loaded file that grew is new again (appended lines)
        handle.write('{"type": "identify"}\n')
    assert watch.poll() == [] and watch.poll() == ["dt=1/b.jsonl"]


def test_the_sensor_is_off_while_a_worker_holds_the_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, landing = tmp_path / "warehouse.duckdb", tmp_path / "landing"
    monkeypatch.setenv("PERSONALIZATION_DB", str(db))
    monkeypatch.setenv("PERSONALIZATION_LANDING", str(landing))
    monkeypatch.setenv("PERSONALIZATION_LANDING_SETTLE_SECONDS", "0")
    land_atomically(landing, "dt=1/a.jsonl", ['{"type": "track"}'])
    instance = dg.DagsterInstance.ephemeral()
    with hold_warehouse(db):
        assert str(worker_holder(db)).startswith(f"pid {os.getpid()} since ")
        with (
            pytest.raises(WorkerLockedError, match="one worker per warehouse"),
            hold_warehouse(db),
        ):
            pass
        held = sensors.landing_microbatch_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance)
        )
        assert held.run_requests == [] and "micro-batch worker" in held.skip_message
        assert held.cursor is None  # nothing marked seen: the sensor takes over after the worker
    assert worker_holder(db) is None
    after = sensors.landing_microbatch_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance)
    )
    assert [r.tags["personalization/batch_first_file"] for r in after.run_requests] == [
        "dt=1/a.jsonl"
    ]


def test_a_run_left_started_by_a_killed_worker_is_marked_failed(tmp_path: Path) -> None:
    """SIGKILL leaves the run in flight "started" in the instance: the next worker of the same
    warehouse marks it failed (the raw load's manifest makes its batch the next one's)."""
    db = tmp_path / "warehouse.duckdb"
    instance = dg.DagsterInstance.ephemeral()

    def started(database: Path) -> dg.DagsterRun:
        return instance.add_run(
            dg.DagsterRun(
                job_name="microbatch_job", run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={TRIGGER_TAG: "worker", WORKER_DB_TAG: str(database)},
            )
        )  # fmt: skip

    orphan, other = started(db), started(tmp_path / "other.duckdb")
    warehouse = WarehouseResource(db_path=str(db), landing_path=str(tmp_path))
    worker = MicroBatchWorker(None, instance, warehouse)
    assert worker.fail_orphans() == [orphan.run_id]
    assert instance.get_run_by_id(orphan.run_id).status == dg.DagsterRunStatus.FAILURE  # type: ignore[union-attr]
    assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
    assert worker.fail_orphans() == []


def test_a_failed_run_is_retried_after_a_growing_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails before its raw load leaves its files new: the worker retries them after
    RETRY_SECONDS, doubling, instead of at poll speed."""
    monkeypatch.setattr(worker_module, "RETRY_SECONDS", 0.2)
    land_atomically(tmp_path, "a.jsonl", ['{"type": "track"}'])
    started: list[float] = []

    class FailingJob:
        def execute_in_process(self, **_: object) -> SimpleNamespace:
            started.append(time.monotonic())
            return SimpleNamespace(success=False, run_id=f"run-{len(started)}")

    warehouse = WarehouseResource(db_path=str(tmp_path / "w.duckdb"), landing_path=str(tmp_path))
    worker = MicroBatchWorker(FailingJob(), None, warehouse, poll_seconds=0.01)
    monkeypatch.setattr(worker, "fail_orphans", list)
    monkeypatch.setattr(worker, "refresh", lambda *_: None)  # the file stays new
    assert worker.serve(max_runs=3) == 3
    pauses = [later - earlier for earlier, later in zip(started, started[1:], strict=False)]
    assert 0.2 <= pauses[0] < 0.4 and 0.4 <= pauses[1] < 0.6, pauses


def test_the_worker_scan_takes_what_the_raw_load_takes(tmp_path: Path) -> None:
    """scan_candidates (the worker's cheap walk) applies the raw load's name rules exactly."""
    names = ["a.jsonl", "b.ndjson.gz", "c.json.gz", "d.gz", "e.csv.gz", "f.json", "notes.txt",
             ".g.jsonl.tmp", "h.jsonl.part", "_staging/i.jsonl", "dt=1/j.jsonl",
             "dt=1/.k/l.jsonl", "dt=2/m.JSONL"]  # fmt: skip
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    expected = {f.path: f.size for f in scan_landing(tmp_path).candidates}
    assert {path: size for path, (size, _) in scan_candidates(tmp_path).items()} == expected
    assert sorted(expected) == ["a.jsonl", "b.ndjson.gz", "c.json.gz", "d.gz", "dt=1/j.jsonl",
                                "dt=2/m.JSONL"]  # fmt: skip
    assert scan_candidates(tmp_path / "absent") == {}


def test_the_worker_keeps_the_warm_dbt_server_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle, the worker pings the warm server every third of its idle time; the server takes a
    ping as activity (serving on) and answers it, and a ping never starts a server."""
    monkeypatch.setenv(warm_dbt.IDLE_ENV, "3")
    pings: list[Path] = []
    monkeypatch.setattr(warm_dbt, "ping_server", pings.append)
    warehouse = WarehouseResource(
        db_path=str(tmp_path / "w.duckdb"), landing_path=str(tmp_path), target_root=str(tmp_path)
    )
    worker = MicroBatchWorker(None, None, warehouse, poll_seconds=0.01)
    worker.keep_warm()
    worker.keep_warm()  # not due yet: one ping per second (a third of 3 s)
    assert pings == [warm_dbt.socket_path(tmp_path)]
    time.sleep(1.05)
    worker.keep_warm()
    assert len(pings) == 2
    monkeypatch.undo()
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with server, client:
        client.sendall(b"\0" + json.dumps({"ping": True}).encode() + b"\n")
        client.shutdown(socket.SHUT_WR)
        assert warm_dbt._handle(server, cache=None) is True  # noqa: SLF001 - the server's loop
        assert json.loads(client.recv(1024)) == {"pong": True}
    assert warm_dbt.ping_server(tmp_path / "no-server.sock") is False


# ---------------------------------------------------------------- the worker process


def wait_for(what: str, condition: Callable[[], object], timeout: float = 150) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def loaded_raw(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run has materialised the raw load (its files are read; later ones are not)."""
    return any(
        entry.dagster_event.asset_key.path[-1] == "raw_landing_events"
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    )


def test_worker_loads_pushed_files_one_run_at_a_time_and_stops_after_the_run_in_flight(
    tmp_path: Path, fixture_warehouse: Warehouse
) -> None:
    """The real worker process on a copy of the fixture warehouse: a file under a temporary name
    waits for its rename; a landed file is a run recorded in the instance with its checks; the
    files that land during that run (two, and the renamed one) are the next run; SIGTERM during
    that run lets it finish and stops the worker."""
    landing, db, home = tmp_path / "landing", tmp_path / "warehouse.duckdb", tmp_path / "dagster"
    shutil.copytree(fixture_warehouse.landing_path, landing)
    shutil.copy2(fixture_warehouse.db_path, db)
    home.mkdir()
    shutil.copy2(PROJECT_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    targets = tmp_path / "dbt_runs"
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "PERSONALIZATION_DB": str(db),
        "PERSONALIZATION_LANDING": str(landing), "PERSONALIZATION_AS_OF": FIXTURE_AS_OF,
        "PERSONALIZATION_DBT_TARGETS": str(targets), "PERSONALIZATION_DBT_TARGET": "dev",
        "PERSONALIZATION_PUBLISH": str(tmp_path / "published"),
        "PERSONALIZATION_WARM_DBT_IDLE_SECONDS": "60",
    }  # fmt: skip
    users = {name: f"worker-{name}" for name in "abcd"}
    lines = {name: new_user_lines(user, AS_OF) for name, user in users.items()}
    # d's writer is still at it: a temporary name
    writing = landing / "dt=worker" / ".d.jsonl.tmp"
    writing.parent.mkdir()
    writing.write_text("\n".join(lines["d"]) + "\n")
    instance = dg.DagsterInstance.from_config(str(home))
    # the server's log lives under the system's temporary folder, keyed by this folder's path,
    # which pytest reuses across sessions: a log left by an earlier session is not this run's
    Path(f"{warm_dbt.socket_path(targets)}.log").unlink(missing_ok=True)
    worker_log = tmp_path / "worker.log"
    with worker_log.open("w") as log_file:
        worker = subprocess.Popen(  # noqa: S603 - this environment's CLI
            [str(Path(sys.executable).with_name("personalization")), "worker",
             "--poll-seconds", "0.1"],
            env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        wait_for("the worker's lock", lambda: worker_holder(db) or worker.poll() is not None)
        assert worker.poll() is None, worker_log.read_text()
        land_atomically(landing, "dt=worker/a.jsonl", lines["a"])
        first = wait_for("run 1", lambda: instance.get_runs(limit=1))[0]  # type: ignore[index]
        wait_for("run 1's raw load", lambda: loaded_raw(instance, first.run_id))
        # landed during run 1, after its raw load: the next run's batch
        land_atomically(landing, "dt=worker/b.jsonl", lines["b"])
        land_atomically(landing, "dt=worker/c.jsonl", lines["c"])
        writing.rename(landing / "dt=worker" / "d.jsonl")
        wait_for("run 2", lambda: len(instance.get_runs()) == 2)
        signalled = time.time()
        worker.send_signal(signal.SIGTERM)  # during run 2
        assert worker.wait(timeout=150) == 0, worker_log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
        warm_dbt.stop_server(warm_dbt.socket_path(targets))
    output = worker_log.read_text()
    assert "SIGTERM: stopping after the run in flight" in output
    # warmed up at start: the server parsed the project once, for the warm-up, and both runs
    # reused that manifest (its key matched theirs), with its macro templates compiled ahead
    assert "warm dbt ready for micro-batches" in output, output
    server_log = Path(f"{warm_dbt.socket_path(targets)}.log").read_text()
    assert server_log.count("macro templates compiled ahead") == 1, server_log
    runs = instance.get_runs()[::-1]  # oldest first
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2, output
    assert [
        (r.tags["personalization/batch_files"], r.tags["personalization/trigger"]) for r in runs
    ] == [("1", "worker"), ("3", "worker")]
    assert runs[1].tags["personalization/batch_first_file"] == "dt=worker/b.jsonl"
    run_end = instance.get_run_record_by_id(runs[1].run_id).end_time  # type: ignore[union-attr]
    assert run_end is not None and run_end > signalled  # it was in flight, and finished
    checks = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(
            runs[1].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
    ]
    membership = [c for c in checks if c.asset_key.path[-1] == "fct_segment_membership"]
    assert membership and all(c.passed for c in membership), checks
    assert worker_holder(db) is None
    with duckdb.connect(str(db), read_only=True) as con:
        members = con.execute(
            "select canonical_user_id from marts.fct_segment_membership "
            "where segment_name = 'viewed_top_product_24h'"
        ).fetchall()
        loads = con.execute(
            "select file_path, status, load_id, lines_loaded from raw.landing_file_log "
            "where file_path like 'dt=worker/%' order by file_path"
        ).fetchall()
    assert {user_key(u) for u in users.values()} <= {m for (m,) in members}
    # every file loaded once, whole (4 lines), a alone and b, c, d together
    assert [(path, status, lines_loaded) for path, status, _, lines_loaded in loads] == [
        (f"dt=worker/{name}.jsonl", "loaded", 4) for name in "abcd"
    ]
    load_ids = [load_id for _, _, load_id, _ in loads]
    assert load_ids[0] != load_ids[1] and len(set(load_ids[1:])) == 1


def test_the_latency_bench_stops_at_a_failed_run() -> None:
    """A bench that timed failed runs reported figures of builds that did not happen (and one
    stopped by SIGTERM, which fails only the run in flight, went on beside the next bench)."""
    require_success(SimpleNamespace(success=True, run_id="r1"), "worker batch 1")
    with pytest.raises(RuntimeError, match="worker batch 3: run r2 failed"):
        require_success(SimpleNamespace(success=False, run_id="r2"), "worker batch 3")
