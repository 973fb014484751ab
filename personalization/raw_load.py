"""Incremental raw load of landing files: each file is read once, as text lines.

The landing contract (docs/architecture.md, "Landing contract"):

- JSON-lines files are read: ``.jsonl``, ``.ndjson``, and the same gzipped (``.jsonl.gz``,
  ``.ndjson.gz``, ``.json.gz`` as RudderStack writes, and a bare ``.gz`` as Segment's S3
  destination writes). Any other file (``.json``, ``.csv``, ``.csv.gz``...) is not loaded and is
  reported as ``unsupported``.
- Writers write under a temporary name and rename when done: names starting with ``.`` or ``_``
  (or under such a folder) and names ending ``.tmp``, ``.part``, ``.partial``... are in progress
  and not taken. A file modified less than ``settle_seconds`` ago is still being written: not taken
  this run, taken by a later one.
- A file whose bytes equal an already loaded file (same SHA-256) under another name is a
  re-delivery: recorded as ``redelivered`` (naming the original), not loaded twice.
- A loaded file that grew (its old bytes are a prefix of the new ones) has its new lines loaded
  (``appended``); a file whose loaded bytes changed is an error (or, with ``warn``, recorded as
  ``changed`` and skipped).
- A file that cannot be read (a truncated or non-gzip ``.gz``, an I/O error) is recorded as
  ``unreadable`` with the error; the lines read before the error are loaded; other files load.
- A loaded file that disappeared is recorded as ``missing``: after a full refresh its lines are no
  longer in the warehouse, and the file log says so.

Every such outcome is a row of the file log (``raw.landing_file_log``, kept across full
refreshes). Lines are kept verbatim as text so that invalid JSON reaches quarantine intact; a
UTF-8 byte-order mark at the start of a file is not part of its first line.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import isal_zlib

log = logging.getLogger(__name__)

# JSON-lines names (lower-case suffixes); a bare ".gz" is JSON lines unless its inner suffix says
# otherwise (Segment's S3 destination writes "<timestamp>.gz").
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz", ".json.gz")
NOT_JSON_INNER_SUFFIXES = frozenset(
    {".csv", ".tsv", ".txt", ".parquet", ".avro", ".orc", ".xml", ".tar", ".zip", ".json"}
)
# Writers use a temporary name while writing, then rename (the temp-name-then-rename convention).
IN_PROGRESS_PREFIXES = (".", "_")
IN_PROGRESS_SUFFIXES = (".tmp", ".temp", ".part", ".partial", ".crdownload", ".inprogress")
UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_SETTLE_SECONDS = 10

RAW_SCHEMA = pa.schema(
    [
        ("file_path", pa.string()),
        ("file_size", pa.int64()),
        ("file_modified_at", pa.timestamp("us")),
        ("file_hash", pa.string()),
        ("line_number", pa.int64()),
        ("raw_line", pa.string()),
        ("has_encoding_error", pa.bool_()),
        ("loaded_at", pa.timestamp("us")),
    ]
)

# raw.landing_file_log: one row per thing that happened to a landing file in a load run.
FILE_LOG_COLUMNS = (
    ("load_id", "varchar"),
    ("logged_at", "timestamp"),
    ("file_path", "varchar"),
    ("file_size", "bigint"),
    ("file_modified_at", "timestamp"),
    ("file_hash", "varchar"),
    ("status", "varchar"),
    ("lines_loaded", "bigint"),
    ("detail", "varchar"),
)
STATUSES = (
    "loaded", "appended", "unreadable", "redelivered", "changed", "missing", "unsupported",
)  # fmt: skip


class ChangedLandingFileError(RuntimeError):
    """A landing file's content changed after it was loaded."""


class LandingFolderError(RuntimeError):
    """The landing folder is missing, or an empty warehouse finds nothing to load in it."""


@dataclass(frozen=True)
class LandingFile:
    path: str  # relative to the landing root, with forward slashes
    size: int
    modified_at: datetime  # UTC, naive


@dataclass(frozen=True)
class LoadedFile:
    path: str
    size: int
    modified_at: datetime
    file_hash: str
    lines: int = 0  # the last line number loaded from it


@dataclass(frozen=True)
class FileEvent:
    """One row of the file log (see FILE_LOG_COLUMNS)."""

    path: str
    size: int | None
    modified_at: datetime | None
    file_hash: str | None
    status: str
    lines_loaded: int = 0
    detail: str = ""

    def key(self) -> tuple:
        """Identical events are logged once (an unreadable file is retried every run)."""
        return (self.path, self.status, self.file_hash or "", self.size or 0)


@dataclass(frozen=True)
class FileToRead:
    file: LandingFile
    file_hash: str
    skip_lines: int = 0  # lines already loaded (a file that grew)
    status: str = "loaded"
    detail: str = ""


@dataclass
class LandingListing:
    """A landing folder, sorted by path: files to consider, files reported, files waiting."""

    candidates: list[LandingFile] = field(default_factory=list)
    unsupported: list[LandingFile] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


def is_json_lines_name(name: str) -> bool:
    lower = name.lower()
    if lower.endswith(JSON_LINES_SUFFIXES):
        return True
    if lower.endswith(".gz"):
        inner = Path(lower[: -len(".gz")]).suffix
        return inner not in NOT_JSON_INNER_SUFFIXES
    return False


def is_in_progress_name(relative: str) -> bool:
    parts = relative.split("/")
    return any(part.startswith(IN_PROGRESS_PREFIXES) for part in parts) or parts[
        -1
    ].lower().endswith(IN_PROGRESS_SUFFIXES)


def scan_landing(root: Path) -> LandingListing:
    """Classify every file under root (sorted by path; date-partitioned names sort by arrival)."""
    listing = LandingListing()
    if not root.exists():
        return listing
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if is_in_progress_name(relative):
            listing.in_progress.append(relative)
            continue
        stat = path.stat()
        landing_file = LandingFile(relative, stat.st_size, _utc(stat.st_mtime))
        if is_json_lines_name(relative):
            listing.candidates.append(landing_file)
        else:
            listing.unsupported.append(landing_file)
    return listing


def list_landing_files(root: Path) -> list[LandingFile]:
    """The JSON-lines landing files under root, sorted by path (no temp names, no other files)."""
    if not root.exists():
        log.warning("landing path %s does not exist: nothing to load", root)
    return scan_landing(root).candidates


def settled(
    files: Iterable[LandingFile], now: datetime, settle_seconds: float
) -> list[LandingFile]:
    """The files not modified within the last settle_seconds (their writer is done)."""
    limit = now - timedelta(seconds=settle_seconds)
    return [f for f in files if settle_seconds <= 0 or f.modified_at <= limit]


def file_hash(path: Path, limit: int | None = None) -> str:
    """SHA-256 of the file's bytes (of its first `limit` bytes when given)."""
    digest = hashlib.sha256()
    remaining = limit
    with path.open("rb") as handle:
        while remaining is None or remaining > 0:
            size = 1 << 20 if remaining is None else min(1 << 20, remaining)
            block = handle.read(size)
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def is_gzip_name(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


class TruncatedGzipError(EOFError):
    """A gzip stream ended before its end-of-stream marker (a partial or cut-off file)."""


def _gzip_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed blocks of a (possibly multi-member) gzip file, as far as it can be read.

    Unlike gzip.open, everything decompressed before an error is yielded first, so the complete
    lines of a truncated file are not lost. Not gzip at all: isal_zlib.error; cut off:
    TruncatedGzip. Inflated by ISA-L (isal_zlib: zlib's interface and streams, 2.5x faster
    than zlib here; decompression was the largest Python part of the raw load).
    """
    decompressor = isal_zlib.decompressobj(wbits=31)
    inside_member = False  # bytes of a member were read and its end marker not yet
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            while block:
                yield decompressor.decompress(block)
                inside_member = not decompressor.eof
                if decompressor.eof:
                    block = decompressor.unused_data  # the next gzip member, if any
                    decompressor = isal_zlib.decompressobj(wbits=31)
                else:
                    block = b""
    if inside_member:
        raise TruncatedGzipError("compressed file ended before the end-of-stream marker")


def raw_blocks(path: Path) -> Iterator[bytes]:
    """The bytes of a plain or gzip file, in blocks; a gzip error after the blocks before it."""
    if is_gzip_name(path):
        yield from _gzip_blocks(path)
        return
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def _line_chunks(path: Path) -> Iterator[bytes]:
    """Runs of complete lines: each chunk is whole lines joined by newlines (without the last
    newline). A last line without a final newline comes last, only when the file ended cleanly: a
    read error is raised after the complete lines before it, and the cut-off line is dropped."""
    pending = b""
    for block in raw_blocks(path):
        data = pending + block if pending else block
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        yield data[:cut]
        pending = data[cut + 1 :]
    if pending:
        yield pending  # a last line without a final newline


def _decode_line_by_line(chunk: bytes) -> tuple[pa.Array, pa.Array]:
    """A chunk with an invalid UTF-8 byte: each line decoded on its own, a bad one with
    replacement characters and its has_encoding_error flag set."""
    texts, bad = [], []
    for raw in chunk.split(b"\n"):
        raw = raw.rstrip(b"\r")
        try:
            texts.append(raw.decode("utf-8"))
            bad.append(False)
        except UnicodeDecodeError:
            texts.append(raw.decode("utf-8", errors="replace"))
            bad.append(True)
    return pa.array(texts, pa.string()), pa.array(bad, pa.bool_())


def read_line_arrays(path: Path) -> Iterator[tuple[pa.Array, pa.Array]]:
    """The lines of a file as Arrow arrays (text, has_encoding_error), a run of lines at a time.

    A run of whole lines is split and checked as UTF-8 by Arrow, without a Python string per
    line (a newline byte never lies inside a UTF-8 character, so a run is valid exactly when its
    lines are); only a run with an invalid byte is decoded line by line. Trailing carriage
    returns are not part of a line; a UTF-8 byte-order mark before the first line is dropped.
    """
    first = True
    for chunk in _line_chunks(path):
        if first and chunk.startswith(UTF8_BOM):
            chunk = chunk[len(UTF8_BOM) :]
        first = False
        lines = pc.split_pattern(pa.array([chunk], pa.binary()), b"\n").flatten()
        try:
            texts = lines.cast(pa.string())
        except pa.ArrowInvalid:
            yield _decode_line_by_line(chunk)
            continue
        if b"\r" in chunk:
            texts = pc.utf8_rtrim(texts, characters="\r")
        yield texts, pa.repeat(pa.scalar(False, pa.bool_()), len(texts))


def read_lines(path: Path) -> Iterator[tuple[str, bool]]:
    """Yield (text, has_encoding_error) per line; gzip by suffix. The final newline ends a line.

    A UTF-8 byte-order mark before the first line is dropped. A gzip error (truncated stream, not
    gzip at all) is raised after the complete lines before it were yielded.
    """
    for texts, bad in read_line_arrays(path):
        yield from zip(texts.to_pylist(), bad.to_pylist(), strict=True)


def grew_from(path: Path, candidate: LandingFile, previous: LoadedFile) -> bool:
    """The file's loaded bytes are a prefix of its bytes now: a writer appended to it."""
    return candidate.size > previous.size and file_hash(path, previous.size) == previous.file_hash


READ_ERRORS = (OSError, EOFError, isal_zlib.error, gzip.BadGzipFile)


def plan_load(
    root: Path,
    candidates: Iterable[LandingFile],
    loaded: dict[str, LoadedFile],
    on_changed: str = "error",
) -> tuple[list[FileToRead], list[FileEvent]]:
    """Decide which files to read, and what to record about the others.

    A path already loaded with the same size and mtime is skipped without reading it. If size or
    mtime moved, the file is hashed: the same hash is a touch (skipped); a file whose loaded bytes
    are a prefix of its new bytes grew (its new lines are read); otherwise it changed. A new path
    whose hash equals a loaded file's (or an earlier file's in this run) is a re-delivery.
    """
    if on_changed not in ("error", "warn"):
        raise ValueError(f"on_changed_landing_file must be 'error' or 'warn', not {on_changed!r}")
    by_hash = {item.file_hash: item.path for item in loaded.values() if item.size > 0}
    to_read: list[FileToRead] = []
    events: list[FileEvent] = []
    for candidate in candidates:
        previous = loaded.get(candidate.path)
        if previous is not None and (previous.size, previous.modified_at) == (
            candidate.size,
            candidate.modified_at,
        ):
            continue
        path = root / candidate.path
        try:
            content_hash = file_hash(path)
        except OSError as error:
            events.append(
                FileEvent(candidate.path, candidate.size, candidate.modified_at, None,
                          "unreadable", 0, f"{type(error).__name__}: {error}")
            )  # fmt: skip
            continue
        if previous is None:
            original = by_hash.get(content_hash)
            if original is not None and candidate.size > 0:
                events.append(
                    FileEvent(candidate.path, candidate.size, candidate.modified_at, content_hash,
                              "redelivered", 0, f"same bytes as {original}: not loaded again")
                )  # fmt: skip
                continue
            by_hash[content_hash] = candidate.path
            to_read.append(FileToRead(candidate, content_hash))
        elif previous.file_hash == content_hash:
            continue  # touched, same bytes
        elif grew_from(path, candidate, previous):
            to_read.append(
                FileToRead(candidate, content_hash, previous.lines, "appended",
                           f"grew from {previous.size} to {candidate.size} bytes after it was "
                           f"loaded: lines after {previous.lines} loaded")
            )  # fmt: skip
        else:
            message = (
                f"landing file {candidate.path} changed after it was loaded "
                f"(sha256 {previous.file_hash[:12]}... -> {content_hash[:12]}...). Landing files "
                "are append-only: write new events to a new file, or rebuild from scratch with "
                "`dbt build --full-refresh`."
            )
            if on_changed == "error":
                raise ChangedLandingFileError(message)
            log.warning("%s Skipping it (on_changed_landing_file=warn).", message)
            events.append(
                FileEvent(candidate.path, candidate.size, candidate.modified_at, content_hash,
                          "changed", 0, message + " Skipped (on_changed_landing_file=warn).")
            )  # fmt: skip
    return to_read, events


def files_to_load(
    root: Path,
    candidates: Iterable[LandingFile],
    loaded: dict[str, LoadedFile],
    on_changed: str = "error",
) -> list[tuple[LandingFile, str]]:
    """The (file, content hash) pairs plan_load would read (for callers that need no events)."""
    to_read, _ = plan_load(root, candidates, loaded, on_changed)
    return [(item.file, item.file_hash) for item in to_read]


BATCH_LINES = 100_000


def _batch(
    item: FileToRead,
    loaded_at: datetime,
    first_number: int,
    lines: pa.Array,
    bad: pa.Array,
) -> pa.RecordBatch:
    count = len(lines)
    landing_file = item.file

    def constant(value: object, kind: pa.DataType) -> pa.Array:
        return pa.repeat(pa.scalar(value, kind), count)

    return pa.record_batch(
        [
            constant(landing_file.path, pa.string()),
            constant(landing_file.size, pa.int64()),
            constant(landing_file.modified_at, pa.timestamp("us")),
            constant(item.file_hash, pa.string()),
            # numpy's arange, not a Python range: no Python int per line
            pa.array(np.arange(first_number, first_number + count, dtype=np.int64)),
            lines,
            bad,
            constant(loaded_at, pa.timestamp("us")),
        ],
        schema=RAW_SCHEMA,
    )


def iter_batches(
    root: Path,
    files: list[FileToRead],
    loaded_at: datetime,
    events: list[FileEvent] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the files as Arrow record batches of at most BATCH_LINES lines.

    One FileEvent per file is appended to `events` once the file is read: loaded/appended with
    its line count, or unreadable with the error (the lines before the error are still yielded).
    Lines are numbered from 1 in each file; a file that grew skips its first skip_lines lines.
    """
    for item in files:
        next_number = item.skip_lines + 1
        read = 0  # lines of the file read so far, skipped ones included
        error: Exception | None = None
        try:
            for texts, flags in read_line_arrays(root / item.file.path):
                skip = min(len(texts), max(0, item.skip_lines - read))
                read += len(texts)
                for start in range(skip, len(texts), BATCH_LINES):
                    part = texts.slice(start, BATCH_LINES)
                    yield _batch(item, loaded_at, next_number, part,
                                 flags.slice(start, BATCH_LINES))  # fmt: skip
                    next_number += len(part)
        except READ_ERRORS as caught:
            error = caught
        count = max(0, read - item.skip_lines)
        if error is not None:
            detail = (
                f"{type(error).__name__}: {error}; {count} complete line(s) before the error "
                "were loaded"
            )
            log.warning("landing file %s is unreadable: %s", item.file.path, detail)
            event = FileEvent(item.file.path, item.file.size, item.file.modified_at,
                              item.file_hash, "unreadable", count, detail)  # fmt: skip
        else:
            log.info("loaded %s: %d lines", item.file.path, count)
            event = FileEvent(item.file.path, item.file.size, item.file.modified_at,
                              item.file_hash, item.status, count, item.detail)  # fmt: skip
        if events is not None:
            events.append(event)


READ_AHEAD_BATCHES = 4


def read_ahead(batches: Iterator[pa.RecordBatch], depth: int = READ_AHEAD_BATCHES):
    """The same batches, read by a background thread up to `depth` batches ahead.

    Inflating and splitting the next lines (Python, ISA-L and Arrow) overlaps with DuckDB storing
    the previous ones: 3 s of a 10M-line load's 38 s. An error in the reading thread is raised
    here, at the point the batch it stopped would have been; a consumer that stops early stops
    the thread at its next batch.
    """
    slots: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                slots.put((batch, None))
            slots.put((end, None))
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            slots.put((end, error))

    thread = threading.Thread(target=produce, name="raw-load-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            batch, error = slots.get()
            if batch is end:
                if error is not None:
                    raise error
                return
            yield batch
    finally:
        stop.set()
        while thread.is_alive():  # a producer waiting on a full queue: make room
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.05)


def _then(batches: Iterator[pa.RecordBatch], on_end: Callable[[], None]):
    yield from batches
    on_end()


def load_files(
    root: Path,
    files: list[tuple[LandingFile, str]] | list[FileToRead],
    loaded_at: datetime,
    events: list[FileEvent] | None = None,
    on_end: Callable[[], None] | None = None,
) -> pa.RecordBatchReader:
    """The selected files as a stream of RAW_SCHEMA record batches (bounded memory).

    `on_end` is called once the last file was read, before the stream ends, when `events` holds
    every file's outcome: the raw load writes its file log there, so the lines go straight into
    the model's table (no temporary copy) and the log still follows the reading.
    """
    items = [item if isinstance(item, FileToRead) else FileToRead(*item) for item in files]
    batches = read_ahead(iter_batches(root, items, loaded_at, events))
    if on_end is not None:
        batches = _then(batches, on_end)
    return pa.RecordBatchReader.from_batches(RAW_SCHEMA, batches)


def reported_files(listing: LandingListing, previously_loaded: Iterable[str]) -> list[FileEvent]:
    """Unsupported files in the folder, and files loaded before that are no longer there."""
    present = {f.path for f in listing.candidates} | {f.path for f in listing.unsupported}
    events = [
        FileEvent(f.path, f.size, f.modified_at, None, "unsupported", 0,
                  "not a JSON-lines file name (.jsonl, .ndjson, optionally .gz): not loaded")
        for f in listing.unsupported
    ]  # fmt: skip
    events += [
        FileEvent(path, None, None, None, "missing", 0,
                  "loaded before, no longer in the landing folder: a full refresh drops its lines")
        for path in sorted(set(previously_loaded) - present)
    ]  # fmt: skip
    return events
