"""Loopback helpers for the collector and profile-API tests and benchmarks (needs the dev extras:
httpx and the SDKs): servers in their own process group, the real SDK clients, landing ids."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)

WRITE_KEY = "sdk-test-write-key"
READ_KEY = "sdk-test-read-key"
# the events' own time: fixed, so the dbt build with its fixed as_of never depends on the clock
EVENT_TIME = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    command: list[str], port: int, log_path: Path, env: dict[str, str], timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start `python -m <module> <args>` in its own process group; return once /health answers.

    `command` is the module and its arguments (the module entry points skip the CLI's imports of
    every other sub-command, so a restart after a kill is quick)."""
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", *command, "--port", str(port)],
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a SIGKILL reaches it alone
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}: {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop(process, signal.SIGKILL)
    raise RuntimeError(f"{command[0]} did not answer within {timeout} s: {log_path}")


def start_collector(
    landing: Path, port: int, log_path: Path, rotate_seconds: float = 0.5
) -> subprocess.Popen[bytes]:
    command = [
        "personalization.collector",
        "--landing-dir",
        str(landing),
        "--rotate-seconds",
        str(rotate_seconds),
    ]
    return start_server(command, port, log_path, {"PERSONALIZATION_WRITE_KEYS": WRITE_KEY})


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal the process group and wait (SIGTERM: uvicorn's graceful shutdown, after which it
    re-raises the signal: the exit code is then -SIGTERM)."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
    return process.wait(timeout=timeout)


def sdk_client(sdk: str, port: int, errors: list[Any], **options: Any) -> Any:
    """A Segment or RudderStack Python SDK client pointed at the collector on loopback."""
    if sdk == "segment":
        from segment.analytics import Client
    else:
        from rudderstack.analytics import Client
    return Client(
        WRITE_KEY,
        host=f"http://127.0.0.1:{port}",
        on_error=lambda error, batch: errors.append((error, len(batch))),
        **options,
    )


def send_messages(client: Any, prefix: str, count: int, pause: Callable[[int], None]) -> list[str]:
    """Send `count` messages of every Segment type the tracking plan accepts; their messageIds."""
    sent = []
    for i in range(count):
        user = f"{prefix}-user-{i % 10}"
        message_id = f"{prefix}-{i:05d}"
        common = {"timestamp": EVENT_TIME, "message_id": message_id}
        kind = i % 6
        if kind == 0:
            client.identify(user, {"country": "DE", "age": 30}, **common)
        elif kind == 1:
            properties = {"product_id": "P00001", "category": "books", "price": 10.0}
            client.track(user, "Product Viewed", properties, **common)
        elif kind == 2:
            client.page(user, name="Home", properties={"path": "/"}, **common)
        elif kind == 3:
            client.screen(user, name="Cart", properties={}, **common)
        elif kind == 4:
            client.group(user, f"{prefix}-team", {"name": "team"}, **common)
        else:
            client.alias(f"{prefix}-previous-{i}", user, **common)
        sent.append(message_id)
        pause(i)
    return sent


def landing_message_ids(folder: Path, pattern: str = "*.jsonl") -> list[str]:
    """The messageId of every complete line of the landing files matching `pattern` (a killed
    writer's trailing partial line is not a message)."""
    ids = []
    for path in sorted(folder.glob(pattern)):
        complete = path.read_text().split("\n")[:-1]
        ids += [json.loads(line)["messageId"] for line in complete]
    return ids


# -- bounded load on loopback (the benchmarks) --------------------------------------------------


@dataclass
class LoadResult:
    """Per-request latencies (seconds) and statuses of one bounded load run."""

    latencies: list[float]
    statuses: list[int]
    seconds: float
    late_starts: int = 0  # open loop: requests sent more than 5 ms after their slot

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": len(self.latencies),
            "seconds": round(self.seconds, 2),
            "requests_per_s": round(len(self.latencies) / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "max_ms": round(max(self.latencies, default=0) * 1000, 2),
            "non_2xx": sum(1 for s in self.statuses if not 200 <= s < 300),
            "late_starts": self.late_starts,
        }


Send = Callable[[int], Awaitable[int]]  # request number -> HTTP status


async def _timed(send: Send, number: int, result: LoadResult) -> None:
    started = time.perf_counter()
    status = await send(number)
    result.latencies.append(time.perf_counter() - started)
    result.statuses.append(status)


async def closed_loop(send: Send, count: int, concurrency: int, max_seconds: float) -> LoadResult:
    """`concurrency` workers send requests back to back until `count` or `max_seconds`."""
    result = LoadResult([], [], 0.0)
    numbers = iter(range(count))
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        for number in numbers:
            if time.perf_counter() > deadline:
                return
            await _timed(send, number, result)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(send: Send, count: int, rate: float, max_seconds: float) -> LoadResult:
    """Requests started at a fixed `rate` (whatever the answers' speed) until `count` or
    `max_seconds`; every request started is awaited."""
    result = LoadResult([], [], 0.0)
    started = time.perf_counter()
    tasks = []
    for number in range(count):
        slot = started + number / rate
        if slot - started > max_seconds:
            break
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            result.late_starts += 1
        tasks.append(asyncio.create_task(_timed(send, number, result)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


class LoopbackHttp:
    """A minimal HTTP/1.1 keep-alive client for the load loops (127.0.0.1 only).

    httpx costs about 5 ms of client CPU per request on a busy 2-core machine, more than the
    servers it measures; this client writes the request bytes and reads status, headers and a
    Content-Length body, nothing else. `connections` bounds the sockets (and the concurrency).
    """

    def __init__(self, port: int, headers: dict[str, str], connections: int = 32) -> None:
        self.port = port
        self.header_bytes = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._slots = asyncio.Semaphore(connections)
        self._open: list[asyncio.StreamWriter] = []

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        async with self._slots:
            if self._idle.empty():
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                self._open.append(writer)
            else:
                reader, writer = self._idle.get_nowait()
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n".encode()
                + self.header_bytes
                + b"\r\n"
            )
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            payload = await reader.readexactly(length) if length else b""
            self._idle.put_nowait((reader, writer))
            return int(status_line.split()[1]), payload

    async def close(self) -> None:
        for writer in self._open:
            writer.close()


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident memory (VmHWM) of a running process, in MB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
