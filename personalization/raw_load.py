"""Incremental raw load of landing files: each file is read once, as text lines.

A landing file is identified by its path. A run loads the files whose path is not yet in the load
manifest; a known path whose size or modification time changed is hashed again, and if its content
differs from what was loaded, that is reported (error, or a warning and a skip) - never silently
loaded twice. Lines are kept verbatim as text so that invalid JSON reaches quarantine intact.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

log = logging.getLogger(__name__)

LANDING_PATTERNS = ("*.jsonl", "*.jsonl.gz")

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


class ChangedLandingFileError(RuntimeError):
    """A landing file's content changed after it was loaded."""


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


def list_landing_files(root: Path) -> list[LandingFile]:
    """Every landing file under root, sorted by path (date-partitioned names sort by arrival)."""
    if not root.exists():
        log.warning("landing path %s does not exist: nothing to load", root)
        return []
    found: dict[str, LandingFile] = {}
    for pattern in LANDING_PATTERNS:
        for path in root.rglob(pattern):
            if path.is_file():
                stat = path.stat()
                relative = path.relative_to(root).as_posix()
                modified = datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None)
                found[relative] = LandingFile(relative, stat.st_size, modified)
    return [found[key] for key in sorted(found)]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lines(path: Path) -> Iterator[tuple[str, bool]]:
    """Yield (text, has_encoding_error) per line; gzip by suffix. The final newline ends a line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for raw in handle:
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                yield raw.decode("utf-8"), False
            except UnicodeDecodeError:
                yield raw.decode("utf-8", errors="replace"), True


def files_to_load(
    root: Path,
    candidates: Iterable[LandingFile],
    loaded: dict[str, LoadedFile],
    on_changed: str = "error",
) -> list[tuple[LandingFile, str]]:
    """Decide which files to load; returns (file, content hash) pairs.

    A path already loaded with the same size and mtime is skipped without reading it. If size or
    mtime moved, the file is hashed: the same hash is a touch (skipped), another is a changed file.
    """
    if on_changed not in ("error", "warn"):
        raise ValueError(f"on_changed_landing_file must be 'error' or 'warn', not {on_changed!r}")
    selected = []
    for candidate in candidates:
        previous = loaded.get(candidate.path)
        if previous is not None and (previous.size, previous.modified_at) == (
            candidate.size,
            candidate.modified_at,
        ):
            continue
        content_hash = file_hash(root / candidate.path)
        if previous is None:
            selected.append((candidate, content_hash))
        elif previous.file_hash != content_hash:
            message = (
                f"landing file {candidate.path} changed after it was loaded "
                f"(sha256 {previous.file_hash[:12]}... -> {content_hash[:12]}...). Landing files "
                "are append-only: write new events to a new file, or rebuild from scratch with "
                "`dbt build --full-refresh`."
            )
            if on_changed == "error":
                raise ChangedLandingFileError(message)
            log.warning("%s Skipping it (on_changed_landing_file=warn).", message)
    return selected


BATCH_LINES = 100_000


def _batch(
    landing_file: LandingFile,
    content_hash: str,
    loaded_at: datetime,
    numbers: list[int],
    lines: list[str],
    bad: list[bool],
) -> pa.RecordBatch:
    count = len(numbers)
    return pa.record_batch(
        [
            pa.array([landing_file.path] * count, pa.string()),
            pa.array([landing_file.size] * count, pa.int64()),
            pa.array([landing_file.modified_at] * count, pa.timestamp("us")),
            pa.array([content_hash] * count, pa.string()),
            pa.array(numbers, pa.int64()),
            pa.array(lines, pa.string()),
            pa.array(bad, pa.bool_()),
            pa.array([loaded_at] * count, pa.timestamp("us")),
        ],
        schema=RAW_SCHEMA,
    )


def iter_batches(
    root: Path, files: list[tuple[LandingFile, str]], loaded_at: datetime
) -> Iterator[pa.RecordBatch]:
    """Stream the selected files as Arrow record batches of at most BATCH_LINES lines."""
    for landing_file, content_hash in files:
        numbers: list[int] = []
        lines: list[str] = []
        bad: list[bool] = []
        total = 0
        for number, (text, bad_encoding) in enumerate(read_lines(root / landing_file.path), 1):
            numbers.append(number)
            lines.append(text)
            bad.append(bad_encoding)
            total = number
            if len(numbers) == BATCH_LINES:
                yield _batch(landing_file, content_hash, loaded_at, numbers, lines, bad)
                numbers, lines, bad = [], [], []
        if numbers:
            yield _batch(landing_file, content_hash, loaded_at, numbers, lines, bad)
        log.info("loaded %s: %d lines", landing_file.path, total)


def load_files(
    root: Path, files: list[tuple[LandingFile, str]], loaded_at: datetime
) -> pa.RecordBatchReader:
    """The selected files as a stream of RAW_SCHEMA record batches (bounded memory)."""
    return pa.RecordBatchReader.from_batches(RAW_SCHEMA, iter_batches(root, files, loaded_at))
