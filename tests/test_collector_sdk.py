"""The real SDKs against the collector on loopback: SDK count = landing lines = raw rows, also
when the collector is killed with SIGKILL mid-stream and restarted."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import segment.analytics.consumer as segment_consumer
from conftest import make_warehouse, query

from personalization.collector.loopback import (
    WRITE_KEY,
    LoadResult,
    LoopbackHttp,
    closed_loop,
    free_port,
    landing_message_ids,
    open_loop,
    sdk_client,
    send_messages,
    start_collector,
    stop,
)
from personalization.dbt_runner import Warehouse, run_dbt

SDK_MESSAGES = 150  # per SDK
KILL_MESSAGES = 1200
KILL_AFTER_LINES = 300


def conservation_run(landing: Path, logs: Path) -> dict[str, Any]:
    """Both SDKs send SDK_MESSAGES each; the collector stops gracefully."""
    port = free_port()
    process = start_collector(landing, port, logs / "collector-sdk.log")
    errors: list[Any] = []
    sent: list[str] = []
    try:
        for sdk in ("segment", "rudder"):
            client = sdk_client(sdk, port, errors, upload_interval=0.05)
            sent += send_messages(client, sdk, SDK_MESSAGES, lambda _: None)
            client.shutdown()  # flush and join
    finally:
        stop(process)
    return {"sent": sent, "errors": errors, "log": (logs / "collector-sdk.log").read_text()}


def kill_run(landing: Path, logs: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The Segment SDK streams; the collector is SIGKILLed mid-stream and restarted."""
    port = free_port()
    acknowledged: list[str] = []
    real_post = segment_consumer.post

    def recording_post(*args: Any, **kwargs: Any) -> Any:
        response = real_post(*args, **kwargs)  # raises unless 2xx
        acknowledged.extend(message["messageId"] for message in kwargs["batch"])
        return response

    monkeypatch.setattr(segment_consumer, "post", recording_post)
    first = start_collector(landing, port, logs / "collector-kill-1.log")
    errors: list[Any] = []
    client = sdk_client("segment", port, errors, upload_interval=0.01, upload_size=20)
    sent: list[str] = []
    sender = threading.Thread(
        target=lambda: sent.extend(
            send_messages(client, "kill", KILL_MESSAGES, lambda i: i % 20 or time.sleep(0.01))
        )
    )
    sender.start()
    # kill once the SDK holds KILL_AFTER_LINES acknowledgements (the collector's own line count
    # runs ahead of them: a written batch's response may still be in flight)
    deadline = time.monotonic() + 60
    while len(acknowledged) < KILL_AFTER_LINES and time.monotonic() < deadline:
        time.sleep(0.005)
    acked = len(acknowledged)  # before asking: acks that land during the request count later
    assert httpx.get(f"http://127.0.0.1:{port}/health").json()["lines_written"] >= acked
    stop(first, signal.SIGKILL)
    acked_before_kill = list(acknowledged)
    # what the killed process left: its open file, not yet published, must hold every ack
    on_disk_at_kill = landing_message_ids(landing, ".*.jsonl.tmp") + landing_message_ids(landing)
    second = start_collector(landing, port, logs / "collector-kill-2.log")
    try:
        sender.join(timeout=120)
        client.shutdown()  # the SDK re-sends what the kill cut off
    finally:
        stop(second)
    return {
        "sent": sent,
        "errors": errors,
        "acked_before_kill": acked_before_kill,
        "on_disk_at_kill": on_disk_at_kill,
        "log": (logs / "collector-kill-2.log").read_text(),
    }


@pytest.fixture(scope="module")
def sdk_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both scenarios into landing/sdk and landing/kill, then one dbt build of the raw load and
    staging (fixed as_of; the events carry a fixed timestamp)."""
    root = tmp_path_factory.mktemp("collector_sdk")
    landing = root / "landing"
    with pytest.MonkeyPatch.context() as monkeypatch:
        runs = {
            "sdk": conservation_run(landing / "sdk", root),
            "kill": kill_run(landing / "kill", root, monkeypatch),
        }
    warehouse = make_warehouse(root, landing, as_of="2026-01-03T00:00:00Z")
    run_dbt(["build", "--select", "+stg_landing__events_checked"], warehouse)
    return {"landing": landing, "warehouse": warehouse, **runs}


def raw_counts(warehouse: Warehouse, folder: str) -> tuple[int, int]:
    """(raw rows, distinct messageIds) of the raw table for one landing sub-folder."""
    (row,) = query(
        warehouse,
        "select count(*), count(distinct raw_line::json ->> 'messageId')"
        f" from raw.raw_landing_events where file_path like '{folder}/%'",
    )
    return row


def statuses(warehouse: Warehouse, folder: str) -> dict[str, int]:
    rows = query(
        warehouse,
        "select status, count(*) from staging.stg_landing__events_checked"
        f" where file_path like '{folder}/%' group by status",
    )
    return dict(rows)


def test_sdk_messages_are_conserved(sdk_runs: dict[str, Any]) -> None:
    run = sdk_runs["sdk"]
    assert run["errors"] == []
    assert "collector stopped: 300 line(s) written" in run["log"]  # graceful shutdown
    assert len(run["sent"]) == 2 * SDK_MESSAGES
    folder = sdk_runs["landing"] / "sdk"
    landed = landing_message_ids(folder)
    assert sorted(landed) == sorted(run["sent"])  # SDK count = landing lines, each once
    assert not list(folder.glob(".*"))  # graceful shutdown published every file
    assert raw_counts(sdk_runs["warehouse"], "sdk") == (300, 300)  # = raw rows
    assert statuses(sdk_runs["warehouse"], "sdk") == {"staged": 300}


def test_sigkill_loses_no_acknowledged_message(sdk_runs: dict[str, Any]) -> None:
    run = sdk_runs["kill"]
    assert run["errors"] == []
    assert "recovered collector-" in run["log"]  # the killed process's open file
    assert len(run["sent"]) == KILL_MESSAGES
    # killed mid-stream: some batches were acknowledged, not all
    assert KILL_AFTER_LINES <= len(run["acked_before_kill"]) < KILL_MESSAGES
    # acknowledged means durable: every acked message was on disk when the process died
    assert set(run["acked_before_kill"]) <= set(run["on_disk_at_kill"])
    folder = sdk_runs["landing"] / "kill"
    landed = landing_message_ids(folder)
    assert set(landed) == set(run["sent"])  # nothing lost: the SDK re-sent the cut-off batch
    assert not list(folder.glob(".*"))  # the restarted collector published the killed one's file
    duplicates = len(landed) - KILL_MESSAGES
    assert raw_counts(sdk_runs["warehouse"], "kill") == (len(landed), KILL_MESSAGES)
    # re-sent messages are removed as duplicates by messageId
    expected = {"staged": KILL_MESSAGES} | ({"duplicate": duplicates} if duplicates else {})
    assert statuses(sdk_runs["warehouse"], "kill") == expected


def test_bounded_load_is_conserved(tmp_path: Path) -> None:
    """The benchmark's loops, small: every acknowledged event lands, and the loops stop alone."""
    landing = tmp_path / "landing"
    port = free_port()
    process = start_collector(landing, port, tmp_path / "collector.log")
    auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

    def body(number: int) -> bytes:
        batch = [{"type": "track", "event": "E", "userId": "u", "messageId": f"{number}-{i}"}
                 for i in range(50)]  # fmt: skip
        return json.dumps({"batch": batch}).encode()

    async def drive() -> tuple[LoadResult, LoadResult]:
        client = LoopbackHttp(port, {"Authorization": f"Basic {auth}"})

        async def send(number: int) -> int:
            return (await client.request("POST", "/v1/batch", body(number)))[0]

        try:
            at_rate = await open_loop(send, 1000, rate=40, max_seconds=0.5)  # time-bounded
            flat_out = await closed_loop(
                lambda n: send(1000 + n), 30, concurrency=4, max_seconds=60
            )  # count-bounded
            return at_rate, flat_out
        finally:
            await client.close()

    try:
        at_rate, flat_out = asyncio.run(drive())
    finally:
        stop(process)
    assert len(at_rate.latencies) == 21  # slots 0, 1/40 s, ..., 0.5 s
    assert len(flat_out.latencies) == 30
    assert set(at_rate.statuses + flat_out.statuses) == {200}
    assert len(landing_message_ids(landing)) == (21 + 30) * 50
    assert len(set(landing_message_ids(landing))) == (21 + 30) * 50
