"""The raw loader module: file listing, line reading, changed-file detection."""

from __future__ import annotations

import gzip
import os
from datetime import datetime

import pytest

from personalization.raw_load import (
    ChangedLandingFileError,
    LoadedFile,
    files_to_load,
    list_landing_files,
    load_files,
)


def write(path, text: str, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def loaded_state(root, landing_file, file_hash):
    return {
        landing_file.path: LoadedFile(
            landing_file.path, landing_file.size, landing_file.modified_at, file_hash
        )
    }


def test_lists_jsonl_and_gz_only_sorted(tmp_path):
    write(tmp_path / "dt=2026-01-02" / "b.jsonl.gz", "{}\n", gz=True)
    write(tmp_path / "dt=2026-01-01" / "a.jsonl", "{}\n")
    write(tmp_path / "ground_truth" / "users.csv", "x\n")
    write(tmp_path / "manifest.json", "{}")
    assert [f.path for f in list_landing_files(tmp_path)] == [
        "dt=2026-01-01/a.jsonl",
        "dt=2026-01-02/b.jsonl.gz",
    ]


def test_missing_landing_folder_loads_nothing(tmp_path):
    assert list_landing_files(tmp_path / "absent") == []


def test_reads_lines_verbatim_including_blank_and_bad_utf8(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\nnot json\n\xff\xfe broken\n')
    files = files_to_load(tmp_path, list_landing_files(tmp_path), {})
    table = load_files(tmp_path, files, datetime(2026, 1, 1)).read_all()
    assert table.column("raw_line").to_pylist() == [
        '{"a": 1}',
        "",
        "not json",
        "\ufffd\ufffd broken",
    ]
    assert table.column("has_encoding_error").to_pylist() == [False, False, False, True]
    assert table.column("line_number").to_pylist() == [1, 2, 3, 4]


def test_gzip_files_are_decompressed(tmp_path):
    write(tmp_path / "a.jsonl.gz", '{"x": 1}\n{"x": 2}\n', gz=True)
    files = files_to_load(tmp_path, list_landing_files(tmp_path), {})
    table = load_files(tmp_path, files, datetime(2026, 1, 1)).read_all()
    assert table.column("raw_line").to_pylist() == ['{"x": 1}', '{"x": 2}']


def test_loaded_file_is_skipped_without_reading(tmp_path):
    write(tmp_path / "a.jsonl", "{}\n")
    [landing_file] = list_landing_files(tmp_path)
    # a wrong stored hash proves the file was not hashed again: size and mtime matched
    assert files_to_load(tmp_path, [landing_file], loaded_state(tmp_path, landing_file, "x")) == []


def test_touched_but_unchanged_file_is_skipped(tmp_path):
    write(tmp_path / "a.jsonl", "{}\n")
    [before] = list_landing_files(tmp_path)
    [(_, digest)] = files_to_load(tmp_path, [before], {})
    os.utime(tmp_path / "a.jsonl", (1_000_000_000, 1_000_000_000))
    [after] = list_landing_files(tmp_path)
    assert files_to_load(tmp_path, [after], loaded_state(tmp_path, before, digest)) == []


def test_changed_file_is_an_error_naming_it(tmp_path):
    write(tmp_path / "a.jsonl", "{}\n")
    [before] = list_landing_files(tmp_path)
    [(_, digest)] = files_to_load(tmp_path, [before], {})
    write(tmp_path / "a.jsonl", "{}\n{}\n")
    [after] = list_landing_files(tmp_path)
    with pytest.raises(
        ChangedLandingFileError, match=r"landing file a\.jsonl changed after it was loaded"
    ):
        files_to_load(tmp_path, [after], loaded_state(tmp_path, before, digest))


def test_changed_file_can_be_skipped_with_a_warning(tmp_path, caplog):
    write(tmp_path / "a.jsonl", "{}\n")
    [before] = list_landing_files(tmp_path)
    [(_, digest)] = files_to_load(tmp_path, [before], {})
    write(tmp_path / "a.jsonl", "{}\n{}\n")
    [after] = list_landing_files(tmp_path)
    assert files_to_load(tmp_path, [after], loaded_state(tmp_path, before, digest), "warn") == []
    assert "a.jsonl changed after it was loaded" in caplog.text


def test_unknown_policy_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="on_changed_landing_file must be"):
        files_to_load(tmp_path, [], {}, on_changed="ignore")
