"""Micro-batch latency: from a landing file arriving to its events showing in a mart.

    python bench/bench_microbatch.py --events 1000000 --batches 5 \
        [--target marts.fct_segment_membership] [--settle-seconds 1] [--lookback-hours 0] \
        [--keep | --reuse /tmp/bench-microbatch-XXXX] [--compare-cold] \
        [--trigger sensor worker] [--poll-seconds 0.2]

1. generate a history (--events lines, users = events / 100, 30 days) and build it once (dbt build);
2. for each batch: write one small file (a new user who views the top product: segment
   viewed_top_product_24h), let the landing sensor notice it (ticks every
   MICROBATCH_INTERVAL_SECONDS; the file lands at a random moment between two ticks), run the
   micro-batch job in process (dbt build of raw load -> staging -> profiles -> segments), and poll
   the target model until the new user is there. Latency = landing -> visible in the target.
   The sensor hands a file over once it is --settle-seconds old (writers land files atomically,
   so the settle time can be short; PERSONALIZATION_LANDING_SETTLE_SECONDS): ticks repeat every
   MICROBATCH_INTERVAL_SECONDS until it does, and the latency includes that wait.
   --lookback-hours is the dbt var of the micro-batches (the touched-user models recompute every
   user with lines loaded within it before the previous run ended: the project default, 72,
   recomputes the whole history the full build loaded minutes earlier).
Sensor batches run in the warm dbt server (docs/orchestration.md, "The warm micro-batch path");
the first one starts it and is reported apart ("first sensor batch"). --compare-cold adds an empty
sensor batch through a plain dbt process (PERSONALIZATION_WARM_DBT=0), measured in the same run.
--increment-share (0.01 unless 0) lands that share of the history's events as one sensor batch
at the end (generated as bench_profiles' increment: users = events / 20, the history's last day,
another seed): the incremental build after 1% new events as production runs it (the landing
sensor's micro-batch: warm dbt, guard tests), timed against the full build of the same run (kept
in the work folder for --reuse) and reported with the users it touched (issue 16's goal: <= 10%).
--trigger worker (with sensor: both, side by side, the sensor's first) lands the same kind of file
through the push-based worker instead (personalization/worker.py): the worker polls the landing
folder in a thread of this process (--poll-seconds), the file is written under a temporary name
and renamed (the landing contract; the worker's runs use settle 0), and the latency is landing ->
the worker's run finished with the user in the target; its detection (landing -> batch taken) is
reported apart, and so is the worker's first batch (the warm server parses once for its vars).
Prints one JSON object (also written to --out) with the figures, the load average and the CPU
time of each batch (this process, its children and the warm server with the dbt children it
forks), the machine's speed (bench.common.machine_speed: at the start, the end and before each
worker batch; the same code's worker median was 12.5 s in one quarter hour and 9.5 s in the next on
the shared bench machine, with the same load average), and logs a per-phase table of every
run (phase_breakdown: Dagster run start, dbt start-up, parse, hooks, models and tests, dbt exit,
the step after dbt, Dagster's bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    emit,
    generate,
    machine_speed,
    run_next_microbatch,
    touched_users,
)
from orchestration import sensors  # noqa: E402
from orchestration.dbt_assets import (  # noqa: E402
    DBT_MANIFEST,
    SENSOR_BATCH_TAG,
    WARM_DBT_ENV,
    models_missing_from_manifest,
)
from orchestration.definitions import defs  # noqa: E402
from orchestration.resources import WarehouseResource, dbt_resource  # noqa: E402
from personalization import cli, warm_dbt  # noqa: E402
from personalization.api.keys import mart_key  # noqa: E402
from personalization.dbt_runner import Warehouse, run_dbt  # noqa: E402
from personalization.worker import LandingWatch, MicroBatchWorker, land_atomically  # noqa: E402

log = logging.getLogger("bench_microbatch")


def new_user_lines(user: str, as_of: datetime) -> list[str]:
    """A new user who views the top product and adds one to the cart 30 min before as_of."""
    at = (as_of - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    base = {"userId": user, "anonymousId": f"anon-{user}", "timestamp": at, "sentAt": at,
            "receivedAt": at, "context": {"consent": {"categoryPreferences": {
                "personalization": True, "advertising": True, "analytics": True}}}}  # fmt: skip
    events = [
        {"type": "identify", "traits": {"country": "DE", "age": 30}},
        {"type": "page", "name": "Home", "properties": {"path": "/"}},
        {"type": "track", "event": "Product Viewed",  # segment viewed_top_product_24h
         "properties": {"product_id": "P00133", "category": "furniture", "price": 120.0}},
        {"type": "track", "event": "Product Added",
         "properties": {"product_id": "P00001", "category": "books", "price": 10.0, "quantity": 1}},
    ]  # fmt: skip
    return [
        json.dumps({**base, **event, "messageId": f"{user}-{i}"}) for i, event in enumerate(events)
    ]


def visible(db: Path, table: str, user: str) -> bool:
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            found = con.execute(
                f"select count(*) from {table} where canonical_user_id = ?", [mart_key(user)]
            ).fetchone()
        return bool(found and found[0])
    except duckdb.Error:  # the build holds the file: try again
        return False


def require_success(outcome: Any, what: str) -> None:
    """Stop at the first failed run: its figures would time a build that did not happen. (A
    SIGTERM during a run interrupts that run only, Dagster turning it into a run failure: a
    bench stopped so once went on landing files into its warehouse beside the next bench.)"""
    if not outcome.success:
        raise RuntimeError(f"{what}: run {outcome.run_id} failed; a failed run is not measured")


def _at(text: str) -> float:
    """A dbt artefact's ISO timestamp (UTC, 'Z') as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _span(results: list[dict[str, Any]], prefix: str) -> tuple[float, float, float] | None:
    """(first start, last end, summed execute time) of the results whose unique_id starts with
    prefix, from run_results.json's per-node timing."""
    spans = [
        (_at(t["started_at"]), _at(t["completed_at"]))
        for r in results
        if r["unique_id"].startswith(prefix)
        for t in r.get("timing") or []
        if t.get("started_at") and t.get("completed_at")
    ]
    if not spans:
        return None
    busy = sum(
        float(r.get("execution_time") or 0) for r in results if r["unique_id"].startswith(prefix)
    )
    return min(s for s, _ in spans), max(e for _, e in spans), busy


def phase_breakdown(instance: dg.DagsterInstance, run_id: str, targets: Path) -> dict[str, Any]:
    """Where one run's wall time went, from Dagster's event log and the run's dbt artefacts
    (run_results.json: invocation start, hooks and node timings, artefacts written).

    Phases (seconds, consecutive): run_start (run started -> dbt step started), dbt_startup (step
    started -> dbt's invocation started: process start, imports, dagster-dbt's adapter),
    dbt_parse (-> on-run-start hook: the parse or partial-parse check, selection), on_run_start,
    nodes (models and tests, 2 threads: models_busy_s / tests_busy_s are their summed execution
    times), on_run_end, dbt_exit (-> artefacts written), after_dbt (-> step finished: event
    conversion, metadata, keep the parse state), bookkeeping (-> run finished)."""
    events = {}
    for entry in instance.all_logs(run_id):
        if entry.dagster_event is not None:
            events.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
    folders = sorted(targets.glob(f"{run_id[:8]}-*"))
    if not folders or not (folders[-1] / "run_results.json").is_file():
        return {"error": f"no run_results.json for run {run_id} under {targets}"}
    run_results = json.loads((folders[-1] / "run_results.json").read_text())
    results = run_results["results"]
    started = _at(run_results["metadata"]["invocation_started_at"])
    written = _at(run_results["metadata"]["generated_at"])
    hook_start = _span(results, "operation.personalization.personalization-on-run-start")
    hook_end = _span(results, "operation.personalization.personalization-on-run-end")
    models, tests = _span(results, "model."), _span(results, "test.")
    node_spans = [s for s in (models, tests) if s]
    first = min(s[0] for s in node_spans) if node_spans else written
    last = max(s[1] for s in node_spans) if node_spans else written
    step_start = events.get(dg.DagsterEventType.STEP_START.value, started)
    step_end = events.get(dg.DagsterEventType.STEP_SUCCESS.value) or events.get(
        dg.DagsterEventType.STEP_FAILURE.value, written
    )
    run_end = events.get(dg.DagsterEventType.RUN_SUCCESS.value) or events.get(
        dg.DagsterEventType.RUN_FAILURE.value, step_end
    )
    start_hook = hook_start[:2] if hook_start else (first, first)
    end_hook = hook_end[:2] if hook_end else (last, last)
    marks = [
        ("run_start", events.get(dg.DagsterEventType.RUN_START.value, step_start), step_start),
        ("dbt_startup", step_start, started),
        ("dbt_parse", started, start_hook[0]),
        ("on_run_start", *start_hook),
        ("nodes", first, last),
        ("on_run_end", *end_hook),
        ("dbt_exit", end_hook[1], written),
        ("after_dbt", written, step_end),
        ("bookkeeping", step_end, run_end),
    ]
    phases: dict[str, Any] = {name: round(end - begin, 2) for name, begin, end in marks}
    phases["parse"] = parse_kind(folders[-1])
    phases["models"] = sum(1 for r in results if r["unique_id"].startswith("model."))
    phases["tests"] = sum(1 for r in results if r["unique_id"].startswith("test."))
    phases["models_busy_s"] = round(models[2], 2) if models else 0.0
    phases["tests_busy_s"] = round(tests[2], 2) if tests else 0.0
    return phases


def parse_kind(target: Path) -> str:
    """How the run's dbt got its manifest, from its debug log: a full parse, dbt's partial parse,
    or the warm server's cached manifest (no parse)."""
    log_file = target / "dbt.log"
    text = log_file.read_text(errors="replace") if log_file.is_file() else ""
    if "Unable to do partial parsing" in text or "Partial parsing not enabled" in text:
        return "full"
    if "Partial parsing enabled" in text:
        return "partial"
    return "none"


def server_cpu_seconds(socket: Path) -> float:
    """CPU time of the warm dbt server and of the children it has waited for (each batch's
    dbt), from /proc; 0 when no server runs. It is not a child of this process (it outlives the
    run that started it), so RUSAGE_CHILDREN does not count it."""
    pid_file = Path(f"{socket}.pid")
    try:
        fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1]
    except (OSError, ValueError):
        return 0.0
    utime, stime, cutime, cstime = (int(x) for x in fields.split()[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(socket: Path | None = None) -> float:
    """CPU time (user + system) of this process, of its children that have ended (dbt) and of
    the warm dbt server at socket."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = server_cpu_seconds(socket) if socket else 0.0
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + server


def next_batch(
    instance: dg.DagsterInstance, cursor: str | None, job: Any, resources: dict[str, Any]
) -> tuple[str | None, float, Any]:
    """Sensor ticks every MICROBATCH_INTERVAL_SECONDS until one hands the settled file over;
    then the micro-batch job with the run request's tags (bench.common.run_next_microbatch)."""
    while True:
        tick = sensors.landing_microbatch_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor)
        )
        if tick.run_requests:
            return run_next_microbatch(instance, cursor, job, resources)
        time.sleep(sensors.MICROBATCH_INTERVAL_SECONDS)


def run(args: argparse.Namespace) -> dict[str, object]:
    missing = models_missing_from_manifest(DBT_MANIFEST, ROOT)
    if missing:  # the job would select from it and leave these models out
        raise SystemExit(f"target/manifest.json is stale (no {', '.join(missing)}): dbt parse")
    speed_at_start = machine_speed()
    work = args.reuse or Path(tempfile.mkdtemp(prefix="bench-microbatch-"))
    landing = work / "landing"
    generate_s = full_build_s = 0.0
    if not args.reuse:
        t0 = time.perf_counter()
        users = max(1, args.events // 100)
        code = cli.main(["generate", "--quiet", f"--out={landing}", f"--events={args.events}",
                         f"--users={users}", "--days=30", "--seed=11"])  # fmt: skip
        assert code == 0
        generate_s = time.perf_counter() - t0
    as_of_text = json.loads((landing / "manifest.json").read_text())["as_of"]
    as_of = datetime.fromisoformat(as_of_text.replace("Z", "+00:00"))
    warehouse = Warehouse(work / "warehouse.duckdb", landing, work / "target", as_of_text)
    full_build_record = work / "full_build.json"
    if not args.reuse:
        t0, cpu = time.perf_counter(), cpu_seconds()
        # a failing model elsewhere must not stop the bench
        run_dbt(["build"], warehouse, check=False)
        full_build_s = time.perf_counter() - t0
        full_build_record.write_text(json.dumps(
            {"wall_s": round(full_build_s, 1), "cpu_s": round(cpu_seconds() - cpu, 1),
             "load_average": round(os.getloadavg()[0], 2)}))  # fmt: skip

    resource = WarehouseResource(
        db_path=str(warehouse.db_path), landing_path=str(landing), as_of=as_of_text,
        publish_root=str(work / "published"), target_root=str(work / "dbt_runs"),
        development_key=True,  # built above on the dev target: the same (development) key
        lookback_hours=args.lookback_hours,
    )  # fmt: skip
    resources = {"dbt": dbt_resource(), "warehouse": resource}
    job = defs.resolve_job_def("microbatch_job")
    instance = dg.DagsterInstance.ephemeral()
    os.environ["PERSONALIZATION_LANDING"] = str(landing)
    os.environ["PERSONALIZATION_LANDING_SETTLE_SECONDS"] = str(args.settle_seconds)
    # the sensor's first tick sees the whole history: that is the initial load, already built
    cursor = sensors.landing_microbatch_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance)
    ).cursor

    targets = resource.targets()
    socket = warm_dbt.socket_path(targets)
    sensor_tags = {SENSOR_BATCH_TAG: "bench-empty"}

    def measured(tags: dict[str, str] | None) -> dict[str, Any]:
        """One run of the micro-batch job with no new file: wall, CPU and phases."""
        t0, cpu = time.perf_counter(), cpu_seconds(socket)
        outcome = job.execute_in_process(instance=instance, resources=resources, tags=tags,
                                         raise_on_error=False)  # fmt: skip
        require_success(outcome, f"a run with tags {tags}")
        figures = {"success": outcome.success, "wall_s": round(time.perf_counter() - t0, 2),
                   "cpu_s": round(cpu_seconds(socket) - cpu, 2),
                   "load_average": round(os.getloadavg()[0], 2),
                   "phases": phase_breakdown(instance, outcome.run_id, targets)}  # fmt: skip
        log.info("run %s", figures)
        return figures

    # the first run after the build: no sensor tag (as the hourly schedule), every test
    noop = measured(None)
    # the first sensor batch starts the warm server (imports, one parse); later ones reuse it
    server_start = measured(sensor_tags)

    rng = random.Random(7)
    interval = sensors.MICROBATCH_INTERVAL_SECONDS
    batches = []
    prefix = f"bench-user-{int(time.time())}"  # new users on a reused warehouse too
    for i in range(args.batches if "sensor" in args.trigger else 0):
        user = f"{prefix}-{i}"
        path = landing / "dt=bench" / f"{user}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        landed, cpu = time.perf_counter(), cpu_seconds(socket)
        path.write_text("\n".join(new_user_lines(user, as_of)) + "\n")
        time.sleep(rng.uniform(0, interval))  # the next sensor tick comes at a random moment
        cursor, detected, outcome = next_batch(instance, cursor, job, resources)
        require_success(outcome, f"sensor batch {i}")
        tags = outcome.dagster_run.tags
        finished = time.perf_counter()
        runs = 1
        # a file younger than the raw load's settle time (var landing_settle_seconds) waits for
        # the next run (in production: the hourly schedule); the latency counts that run
        while not visible(warehouse.db_path, args.target, user):
            if runs >= 3:
                raise RuntimeError(f"{user} never reached {args.target} after {runs} runs")
            job.execute_in_process(instance=instance, resources=resources, tags=tags,
                                   raise_on_error=False)  # fmt: skip
            runs += 1
        seen = time.perf_counter()
        batches.append({"batch": i, "success": outcome.success, "runs": runs,
                        "detect_s": round(detected - landed, 2),
                        "run_s": round(finished - detected, 2),
                        "latency_s": round(seen - landed, 2),
                        "cpu_s": round(cpu_seconds(socket) - cpu, 2),
                        "load_average": round(os.getloadavg()[0], 2),
                        "phases": phase_breakdown(instance, outcome.run_id, targets)})  # fmt: skip
        log.info("batch %s", batches[-1])
    # an empty batch as the sensor starts it (warm dbt, guard tests only): the fixed cost
    empty = measured(sensor_tags)
    pushed = None
    if "worker" in args.trigger:
        pushed = worker_batches(args, instance, job, resources, resource, landing, as_of,
                                prefix, socket)  # fmt: skip
    # the same empty batch through a plain dbt process (the path before the warm server)
    cold = None
    if args.compare_cold:
        os.environ[WARM_DBT_ENV] = "0"
        cold = measured(sensor_tags)
        os.environ.pop(WARM_DBT_ENV)
    increment = None
    if args.increment_share:
        increment = increment_batch(args, work, landing, as_of, instance, job, resources,
                                    cursor, socket)  # fmt: skip
    warm_dbt.stop_server(socket)
    latencies = [b["latency_s"] for b in batches] or [float("nan")]
    log.info("%s", phase_table({"hourly-like run": noop, "first sensor batch": server_start,
                                **{f"batch {b['batch']}": b for b in batches},
                                "empty sensor batch": empty,
                                **({"empty, plain dbt": cold} if cold else {}),
                                **{f"worker batch {b['batch']}": b
                                   for b in (pushed or {}).get("batches", [])}}))  # fmt: skip
    if not args.keep and not args.reuse:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "events": args.events, "target": args.target, "batches": batches,
        "generate_s": round(generate_s, 1), "full_build_s": round(full_build_s, 1),
        "noop_microbatch_s": noop["wall_s"], "noop_microbatch": noop,
        "server_start_batch": server_start,
        "empty_sensor_batch_s": empty["wall_s"], "empty_sensor_batch_cpu_s": empty["cpu_s"],
        "empty_sensor_batch": empty, "empty_sensor_batch_plain_dbt": cold,
        "settle_seconds": args.settle_seconds, "lookback_hours": args.lookback_hours,
        "sensor_interval_s": interval, "load_average": [round(x, 2) for x in os.getloadavg()],
        "speed_probe_s": {"start": speed_at_start, "end": machine_speed()},
        "median_latency_s": round(statistics.median(latencies), 2),
        "max_latency_s": round(max(latencies), 2),
        "median_cpu_s": round(statistics.median(b["cpu_s"] for b in batches), 2)
        if batches else None,
        "worker": pushed,
        "increment": increment,
    }  # fmt: skip


def increment_batch(
    args: argparse.Namespace, work: Path, landing: Path, as_of: datetime,
    instance: dg.DagsterInstance, job: Any, resources: dict[str, Any], cursor: str | None,
    socket: Path,
) -> dict[str, Any]:  # fmt: skip
    """--increment-share of the history's events landed at once, taken by the sensor as one
    micro-batch: its run time against the full build of this work folder, with the users it
    touched. The files are generated outside the landing folder and moved in whole."""
    events = max(100, round(args.events * args.increment_share))
    generated = work / f"increment-{events}"
    shutil.rmtree(generated, ignore_errors=True)
    start = (as_of - timedelta(days=1)).strftime("%Y-%m-%d")
    lines = generate(generated, events, max(1, events // 20), 1, 2, start)["lines_total"]
    stamp = int(time.time())  # a new folder on a reused landing too
    for day in sorted(generated.glob("dt=*")):
        day.rename(landing / f"{day.name}-increment-{stamp}")
    cpu = cpu_seconds(socket)
    _, detected, outcome = next_batch(instance, cursor, job, resources)
    run_s, cpu_s = time.perf_counter() - detected, cpu_seconds(socket) - cpu
    require_success(outcome, "the 1% batch")
    record = work / "full_build.json"  # absent in a work folder kept before session 10
    full = json.loads(record.read_text()) if record.exists() else None
    figures = {"events": lines, "success": outcome.success, "run_s": round(run_s, 2),
               "cpu_s": round(cpu_s, 2), "full_build": full,
               "to_full_build_ratio": round(run_s / full["wall_s"], 3) if full else None,
               "cpu_to_full_build_ratio": round(cpu_s / full["cpu_s"], 3) if full else None,
               **touched_users(resources["warehouse"].db()),
               "load_average": round(os.getloadavg()[0], 2),
               "phases": phase_breakdown(instance, outcome.run_id,
                                         resources["warehouse"].targets())}  # fmt: skip
    log.info("increment batch %s", figures)
    return figures


def worker_batches(
    args: argparse.Namespace, instance: dg.DagsterInstance, job: Any,
    resources: dict[str, Any], warehouse: WarehouseResource, landing: Path, as_of: datetime,
    prefix: str, socket: Path,
) -> dict[str, Any]:  # fmt: skip
    """The same one-file batches pushed to the micro-batch worker (a thread of this process):
    each file lands under a temporary name and is renamed; latency = landing -> the worker's
    run finished with the user in the target; detection = landing -> the worker took the batch.
    Batch 0 is the worker's first (the warm server parses once for the settle time 0)."""
    os.environ["PERSONALIZATION_LANDING_SETTLE_SECONDS"] = "0"  # the worker's rule: the rename
    watch = LandingWatch(landing)
    poll_cost = []
    for _ in range(20):
        t0 = time.process_time()
        watch.pending()
        poll_cost.append(time.process_time() - t0)
    worker = MicroBatchWorker(job, instance, warehouse, resources, poll_seconds=args.poll_seconds)
    detected: list[float] = []
    worker.on_detected = lambda files: detected.append(time.perf_counter())
    thread = threading.Thread(target=worker.serve, name="bench-worker", daemon=True)
    thread.start()
    rng = random.Random(11)
    batches = []
    for i in range(args.batches + 1):
        user = f"{prefix}-w{i}"
        speed = machine_speed()  # before the file lands: the worker is idle
        time.sleep(rng.uniform(0.5, 1.5))  # the file lands at a random moment of the poll
        first, cpu = len(worker.runs), cpu_seconds(socket)
        landed = time.perf_counter()
        land_atomically(landing, f"dt=bench/{user}.jsonl", new_user_lines(user, as_of))
        done = first
        while True:
            while len(worker.runs) == done:
                time.sleep(0.02)
            done = len(worker.runs)
            if visible(warehouse.db(), args.target, user):
                break
            if done - first >= 3:
                raise RuntimeError(f"{user} never reached {args.target} after 3 worker runs")
        seen = time.perf_counter()
        outcome = worker.runs[-1]
        require_success(outcome, f"worker batch {i}")
        batches.append({"batch": i, "success": outcome.success, "runs": done - first,
                        "detect_s": round(detected[-1] - landed, 2),
                        "run_s": round(seen - detected[-1], 2),
                        "latency_s": round(seen - landed, 2),
                        "cpu_s": round(cpu_seconds(socket) - cpu, 2),
                        "load_average": round(os.getloadavg()[0], 2), "speed_probe_s": speed,
                        "phases": phase_breakdown(instance, outcome.run_id,
                                                  warehouse.targets())})  # fmt: skip
        log.info("worker batch %s", batches[-1])
    worker.stop.set()
    thread.join()
    measured = batches[1:]  # batch 0 reported apart (the parse for the worker's vars)
    latencies = [b["latency_s"] for b in measured]
    return {
        "batches": batches, "poll_seconds": args.poll_seconds,
        "poll_files": len(watch.pending()) + len(watch.handled),
        "poll_cpu_ms": round(1000 * statistics.median(poll_cost), 2),
        "median_latency_s": round(statistics.median(latencies), 2),
        "max_latency_s": round(max(latencies), 2),
        "median_detect_s": round(statistics.median(b["detect_s"] for b in measured), 2),
        "median_run_s": round(statistics.median(b["run_s"] for b in measured), 2),
        "median_cpu_s": round(statistics.median(b["cpu_s"] for b in measured), 2),
        "median_speed_probe_s": round(statistics.median(b["speed_probe_s"] for b in measured), 3),
    }  # fmt: skip


PHASES = ("run_start", "dbt_startup", "dbt_parse", "on_run_start", "nodes", "on_run_end",
          "dbt_exit", "after_dbt", "bookkeeping")  # fmt: skip


def phase_table(runs: dict[str, dict[str, Any]]) -> str:
    """The per-phase breakdown of each run as a Markdown table (seconds of wall time)."""
    head = ["run", "wall", "cpu", *PHASES, "models busy", "tests busy", "parse"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, run in runs.items():
        phases = run.get("phases") or {}
        wall = run.get("wall_s", run.get("run_s", ""))
        cells = [name, str(wall), str(run["cpu_s"]), *(str(phases.get(p, "")) for p in PHASES),
                 str(phases.get("models_busy_s", "")), str(phases.get("tests_busy_s", "")),
                 str(phases.get("parse", ""))]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_benchmark(
    events: int, timer: Callable[[list[str]], tuple[float, float]], batches: int = 5
) -> list[tuple[str, int, float, float]]:
    """For bench/run.py: the whole benchmark in a child process; rows of median and max latency."""
    with tempfile.TemporaryDirectory(prefix="bench-microbatch-out-") as tmp:
        out = Path(tmp) / "figures.json"
        _, peak = timer([sys.executable, __file__, f"--events={events}",
                         f"--batches={batches}", f"--out={out}"])  # fmt: skip
        figures = json.loads(out.read_text())
    per_batch = len(new_user_lines("x", datetime(2026, 1, 1)))
    increment = figures["increment"]
    return [
        ("microbatch (median)", per_batch, float(figures["median_latency_s"]), peak),
        ("microbatch (max)", per_batch, float(figures["max_latency_s"]), peak),
        ("microbatch (no-op)", 0, float(figures["noop_microbatch_s"]), peak),
        ("microbatch (empty sensor batch)", 0, float(figures["empty_sensor_batch_s"]), peak),
        (
            f"microbatch +1% ({increment['to_full_build_ratio']:.0%} of the full build)"
            if increment["to_full_build_ratio"] is not None
            else "microbatch +1%",
            increment["events"],
            float(increment["run_s"]),
            peak,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--target", default="marts.fct_segment_membership",
                        help="table whose canonical_user_id must show the new user")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (in /tmp)")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a work folder a --keep run left: no generation, no full build",
    )
    parser.add_argument("--settle-seconds", type=int, default=1,
                        help="age a landing file needs before the sensor takes it")  # fmt: skip
    parser.add_argument("--compare-cold", action="store_true",
                        help="also an empty sensor batch through a plain dbt process")  # fmt: skip
    parser.add_argument("--trigger", nargs="+", choices=("sensor", "worker"), default=["sensor"],
                        help="who starts the one-file batches: sensor, worker or both")  # fmt: skip
    parser.add_argument("--poll-seconds", type=float, default=0.2,
                        help="the worker's poll of the landing folder")  # fmt: skip
    parser.add_argument("--increment-share", type=float, default=0.01,
                        help="share of the events landed as a last batch; 0: none")  # fmt: skip
    parser.add_argument("--lookback-hours", type=int, default=0,
                        help="the dbt var lookback_hours of the micro-batches")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    figures = run(args)
    return emit(figures, args.out)


if __name__ == "__main__":
    sys.exit(main())
