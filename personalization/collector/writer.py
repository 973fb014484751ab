"""Durable, atomically published landing files for the collector.

Lines are appended to a file under a temporary name (`.<name>.tmp`: a leading dot and a `.tmp`
suffix, which the raw loader never lists), fsynced before any request that wrote them is
acknowledged, and the file is renamed to `<name>.jsonl` when it is rotated (by size or age), on
graceful shutdown, or - after a crash - by the next collector that starts on the same folder.
Names start with the UTC time the file was opened, so they sort by arrival.

Concurrent requests are group-committed: one writer task takes everything queued, writes it with
one `write` and one `fsync`, then wakes every request of the group. A failed write (disk full) is
cut back to the last durable offset and fails the whole group, so a request is answered 200 only
when all its lines are on disk, and never leaves half a line behind. Memory is bounded: requests
wait while more than `max_pending_bytes` are queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
FINAL_SUFFIX = ".jsonl"
FILE_PREFIX = "collector"


class WriterUnavailableError(RuntimeError):
    """The lines could not be made durable (disk full, I/O error, shutting down)."""


def final_name(tmp_path: Path) -> Path:
    """`.collector-...jsonl.tmp` -> `collector-...jsonl`."""
    return tmp_path.with_name(tmp_path.name[1 : -len(TMP_SUFFIX)])


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp_path: Path, fd: int) -> Path | None:
    """fsync, close and rename a temporary file to its final name (delete it when empty)."""
    os.fsync(fd)
    size = os.fstat(fd).st_size
    os.close(fd)
    if size == 0:
        tmp_path.unlink()
        return None
    target = final_name(tmp_path)
    os.rename(tmp_path, target)
    _fsync_directory(tmp_path.parent)
    return target


def recover(directory: Path) -> list[Path]:
    """Publish the temporary files a killed collector left behind; returns the published paths.

    Files another live collector holds (its flock) are left alone. A trailing partial line (a
    write cut by the kill) was never acknowledged: it is cut off, its request is re-sent by the
    client.
    """
    published = []
    for tmp_path in sorted(directory.glob(f".{FILE_PREFIX}-*{FINAL_SUFFIX}{TMP_SUFFIX}")):
        fd = os.open(tmp_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        content_end = _last_newline_end(fd)
        if content_end != os.fstat(fd).st_size:
            log.warning(
                "%s: cutting an unacknowledged partial line (%d bytes)",
                tmp_path.name,
                os.fstat(fd).st_size - content_end,
            )
            os.ftruncate(fd, content_end)
        target = _publish(tmp_path, fd)
        if target is not None:
            log.info("recovered %s from a previous collector", target.name)
            published.append(target)
    return published


def _last_newline_end(fd: int) -> int:
    """Offset just after the last newline of the file (0 if none)."""
    size = os.fstat(fd).st_size
    position = size
    while position > 0:
        start = max(0, position - 65536)
        chunk = os.pread(fd, position - start, start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return start + index + 1
        position = start
    return 0


@dataclass
class _OpenFile:
    path: Path
    fd: int
    opened_at: float  # monotonic
    size: int = 0


class LandingWriter:
    """Appends JSON lines durably to rotating landing files; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        rotate_bytes: int = 16 << 20,
        rotate_seconds: float = 5.0,
        max_pending_bytes: int = 32 << 20,
    ) -> None:
        if rotate_bytes <= 0 or rotate_seconds <= 0 or max_pending_bytes <= 0:
            raise ValueError("rotate_bytes, rotate_seconds and max_pending_bytes must be positive")
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.max_pending_bytes = max_pending_bytes
        self.instance = uuid.uuid4().hex[:8]
        self._sequence = 0
        self._file: _OpenFile | None = None
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._wakeup: asyncio.Event | None = None
        self._space: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.published: list[Path] = []
        self.lines_written = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.published.extend(await asyncio.to_thread(recover, self.directory))
        self._wakeup = asyncio.Event()
        self._space = asyncio.Condition()
        self._task = asyncio.create_task(self._run(), name="landing-writer")

    async def close(self) -> None:
        """Write what is queued, then publish the open file (graceful shutdown)."""
        if self._task is None:
            return
        self._closing = True
        assert self._wakeup is not None
        self._wakeup.set()
        await self._task
        self._task = None
        await asyncio.to_thread(self._rotate)

    # -- the request side ------------------------------------------------------------------

    async def append(self, data: bytes) -> None:
        """Return once `data` (whole lines) is durable; raise WriterUnavailableError otherwise."""
        if self._closing or self._task is None:
            raise WriterUnavailableError("the collector is shutting down")
        assert self._space is not None and self._wakeup is not None
        async with self._space:
            # bounded memory: wait while the queue is full (a lone large request always fits)
            await self._space.wait_for(
                lambda: (
                    self._pending_bytes == 0
                    or self._pending_bytes + len(data) <= self.max_pending_bytes
                )
            )
            self._pending_bytes += len(data)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((data, future))
        self._wakeup.set()
        await future

    # -- the writer task -------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None and self._space is not None
        while True:
            timeout = self._seconds_to_rotation()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            group, self._queue = self._queue, []
            if group:
                blob = b"".join(data for data, _ in group)
                try:
                    await asyncio.to_thread(
                        self._write_durable, blob, sum(data.count(b"\n") for data, _ in group)
                    )
                    error: BaseException | None = None
                except OSError as failure:
                    log.error("landing write failed (%s): answering 503", failure)
                    error = WriterUnavailableError(f"cannot write landing file: {failure}")
                except Exception as failure:  # a bug must not leave requests waiting forever
                    log.exception("landing write failed unexpectedly: answering 503")
                    error = WriterUnavailableError(f"cannot write landing file: {failure!r}")
                for _, future in group:
                    if not future.done():
                        if error is None:
                            future.set_result(None)
                        else:
                            future.set_exception(error)
                async with self._space:
                    self._pending_bytes -= len(blob)
                    self._space.notify_all()
            if self._due_for_rotation():
                try:
                    await asyncio.to_thread(self._rotate)
                except OSError as failure:
                    log.error("landing file rotation failed: %s", failure)
            if self._closing and not self._queue:
                return

    def _seconds_to_rotation(self) -> float | None:
        if self._file is None:
            return None
        return max(0.0, self._file.opened_at + self.rotate_seconds - time.monotonic())

    def _due_for_rotation(self) -> bool:
        current = self._file
        return current is not None and (
            current.size >= self.rotate_bytes
            or time.monotonic() - current.opened_at >= self.rotate_seconds
        )

    # -- blocking file operations (run in a worker thread) ---------------------------------

    def _open(self) -> _OpenFile:
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f".{FILE_PREFIX}-{stamp}-{self.instance}-{self._sequence:06d}{FINAL_SUFFIX}"
        path = self.directory / (name + TMP_SUFFIX)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # recovery leaves a live file alone
        _fsync_directory(self.directory)
        return _OpenFile(path, fd, time.monotonic())

    def _write_all(self, fd: int, blob: bytes) -> None:
        """os.write until everything is written (a seam for fault-injection tests)."""
        view = memoryview(blob)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _write_durable(self, blob: bytes, lines: int) -> None:
        if self._file is None:
            self._file = self._open()
        current = self._file
        try:
            self._write_all(current.fd, blob)
            os.fsync(current.fd)
        except OSError:
            # cut back to the last durable offset: no half line, nothing unacknowledged kept
            try:
                os.ftruncate(current.fd, current.size)
            except OSError as failure:
                log.error("cannot cut %s back after a failed write: %s", current.path, failure)
            raise
        current.size += len(blob)
        self.lines_written += lines

    def _rotate(self) -> None:
        current, self._file = self._file, None
        if current is None:
            return
        target = _publish(current.path, current.fd)
        if target is not None:
            log.info("published %s (%d bytes)", target.name, current.size)
            self.published.append(target)
