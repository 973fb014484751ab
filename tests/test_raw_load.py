"""The raw loader module: file listing, line reading, changed-file detection."""

from __future__ import annotations

import gzip
import os
import threading
from datetime import datetime

import pytest

from personalization.raw_load import (
    UTF8_BOM,
    ChangedLandingFileError,
    FileEvent,
    FileToRead,
    LoadedFile,
    files_to_load,
    list_landing_files,
    load_files,
    plan_load,
    read_ahead,
    read_lines,
    reported_files,
    scan_landing,
    settled,
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
    write(tmp_path / "a.jsonl", '{"x": 1}\n')  # loaded bytes rewritten, not appended to
    [after] = list_landing_files(tmp_path)
    with pytest.raises(
        ChangedLandingFileError, match=r"landing file a\.jsonl changed after it was loaded"
    ):
        files_to_load(tmp_path, [after], loaded_state(tmp_path, before, digest))


def test_changed_file_can_be_skipped_with_a_warning(tmp_path, caplog):
    write(tmp_path / "a.jsonl", "{}\n")
    [before] = list_landing_files(tmp_path)
    [(_, digest)] = files_to_load(tmp_path, [before], {})
    write(tmp_path / "a.jsonl", '{"x": 1}\n')
    [after] = list_landing_files(tmp_path)
    assert files_to_load(tmp_path, [after], loaded_state(tmp_path, before, digest), "warn") == []
    assert "a.jsonl changed after it was loaded" in caplog.text


def test_unknown_policy_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="on_changed_landing_file must be"):
        files_to_load(tmp_path, [], {}, on_changed="ignore")


def read_all(root, items) -> tuple[list[str], list[FileEvent]]:
    events: list[FileEvent] = []
    table = load_files(root, items, datetime(2026, 1, 1), events).read_all()
    return table.column("raw_line").to_pylist(), events


def test_json_lines_extensions_are_read_and_other_files_reported(tmp_path):
    for name in ("a.jsonl", "b.ndjson", "c.NDJSON", "d.jsonl.gz", "e.ndjson.gz", "f.json.gz",
                 "1735689600.gz", "g.json", "h.csv", "i.csv.gz", ".j.jsonl", "_tmp/k.jsonl",
                 "l.jsonl.tmp", "m.jsonl.part"):  # fmt: skip
        write(tmp_path / name, "{}\n", gz=name.lower().endswith(".gz"))
    listing = scan_landing(tmp_path)
    assert [f.path for f in listing.candidates] == [
        "1735689600.gz", "a.jsonl", "b.ndjson", "c.NDJSON", "d.jsonl.gz", "e.ndjson.gz",
        "f.json.gz",
    ]  # fmt: skip
    assert [f.path for f in listing.unsupported] == ["g.json", "h.csv", "i.csv.gz"]
    assert listing.in_progress == [".j.jsonl", "_tmp/k.jsonl", "l.jsonl.tmp", "m.jsonl.part"]
    events = reported_files(listing, previously_loaded=["a.jsonl", "gone.jsonl"])
    assert [(e.path, e.status) for e in events] == [
        ("g.json", "unsupported"), ("h.csv", "unsupported"), ("i.csv.gz", "unsupported"),
        ("gone.jsonl", "missing"),
    ]  # fmt: skip


def test_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"b": 2}\n')
    write(tmp_path / "b.jsonl.gz", '\ufeff{"c": 3}\n', gz=True)
    assert [text for text, _ in read_lines(tmp_path / "a.jsonl")] == [
        '{"a": 1}',
        '\ufeff{"b": 2}',  # only a file's leading mark is dropped; this one stays (and quarantines)
    ]
    assert [text for text, _ in read_lines(tmp_path / "b.jsonl.gz")] == ['{"c": 3}']


def test_unreadable_gzip_files_are_recorded_and_the_others_load(tmp_path):
    data = "".join(f'{{"n": {i}, "pad": "{i * 7919 % 10007:05d}{i:04d}"}}\n' for i in range(2000))
    full = gzip.compress(data.encode(), mtime=0)
    (tmp_path / "a-truncated.jsonl.gz").write_bytes(full[: len(full) // 2])
    write(tmp_path / "b-not-gzip.jsonl.gz", '{"plain": 1}\n')
    write(tmp_path / "c-good.jsonl", '{"good": 1}\n{"good": 2}\n')
    to_read, events = plan_load(tmp_path, list_landing_files(tmp_path), {})
    assert events == []
    lines, events = read_all(tmp_path, to_read)
    by_path = {e.path: e for e in events}
    truncated = by_path["a-truncated.jsonl.gz"]
    assert truncated.status == "unreadable"
    assert "end-of-stream marker" in truncated.detail
    # every complete line before the cut is kept, in order, and nothing after it
    assert 0 < truncated.lines_loaded < 2000
    assert lines[: truncated.lines_loaded] == data.splitlines()[: truncated.lines_loaded]
    assert by_path["b-not-gzip.jsonl.gz"].status == "unreadable"
    assert "Invalid gzip/zlib wrapper" in by_path["b-not-gzip.jsonl.gz"].detail
    assert by_path["b-not-gzip.jsonl.gz"].lines_loaded == 0
    assert (by_path["c-good.jsonl"].status, by_path["c-good.jsonl"].lines_loaded) == ("loaded", 2)
    assert lines[truncated.lines_loaded :] == ['{"good": 1}', '{"good": 2}']


def test_multi_member_gzip_is_read_whole(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(
        gzip.compress(b'{"m": 1}\n', mtime=0) + gzip.compress(b'{"m": 2}\n', mtime=0)
    )
    assert [text for text, _ in read_lines(tmp_path / "a.jsonl.gz")] == ['{"m": 1}', '{"m": 2}']


def test_redelivered_file_is_flagged_not_loaded_twice(tmp_path):
    write(tmp_path / "a.jsonl", '{"x": 1}\n')
    write(tmp_path / "b-copy.jsonl", '{"x": 1}\n')  # the same bytes in the same run
    to_read, events = plan_load(tmp_path, list_landing_files(tmp_path), {})
    assert [item.file.path for item in to_read] == ["a.jsonl"]
    assert [(e.path, e.status, e.detail) for e in events] == [
        ("b-copy.jsonl", "redelivered", "same bytes as a.jsonl: not loaded again")
    ]
    # and in a later run, against what was loaded before
    [first] = [f for f in list_landing_files(tmp_path) if f.path == "a.jsonl"]
    loaded = {"a.jsonl": LoadedFile("a.jsonl", first.size, first.modified_at,
                                    to_read[0].file_hash, 1)}  # fmt: skip
    write(tmp_path / "c-again.jsonl", '{"x": 1}\n')
    to_read, events = plan_load(tmp_path, list_landing_files(tmp_path), loaded)
    assert to_read == []
    assert sorted((e.path, e.status) for e in events) == [
        ("b-copy.jsonl", "redelivered"), ("c-again.jsonl", "redelivered"),
    ]  # fmt: skip


def test_a_file_that_grew_has_only_its_new_lines_loaded(tmp_path):
    write(tmp_path / "a.jsonl", '{"n": 1}\n{"n": 2}\n')
    [before] = list_landing_files(tmp_path)
    [item] = plan_load(tmp_path, [before], {})[0]
    loaded = {"a.jsonl": LoadedFile("a.jsonl", before.size, before.modified_at, item.file_hash, 2)}
    write(tmp_path / "a.jsonl", '{"n": 1}\n{"n": 2}\n{"n": 3}\n')  # the writer went on
    to_read, events = plan_load(tmp_path, list_landing_files(tmp_path), loaded)
    assert events == []
    lines, read_events = read_all(tmp_path, to_read)
    assert lines == ['{"n": 3}']
    assert [(e.status, e.lines_loaded) for e in read_events] == [("appended", 1)]


def test_files_still_settling_are_not_taken(tmp_path):
    write(tmp_path / "old.jsonl", "{}\n")
    write(tmp_path / "new.jsonl", "{}\n")
    os.utime(tmp_path / "old.jsonl", (1_767_225_600, 1_767_225_600))  # 2026-01-01 00:00
    os.utime(tmp_path / "new.jsonl", (1_767_225_640, 1_767_225_640))  # 40 s later
    now = datetime(2026, 1, 1, 0, 1, 0)  # 60 s after old, 20 s after new
    files = list_landing_files(tmp_path)
    assert [f.path for f in settled(files, now, 30)] == ["old.jsonl"]
    assert [f.path for f in settled(files, now, 5)] == ["new.jsonl", "old.jsonl"]
    assert [f.path for f in settled(files, now, 0)] == ["new.jsonl", "old.jsonl"]


def test_valid_runs_of_lines_are_split_as_sent(tmp_path):
    """The fast path (Arrow splits a run of valid UTF-8 lines): carriage returns, blank lines,
    non-ASCII text and a last line without a newline come out as the line-by-line path gives
    them, across runs of more than one read block, and a file that grew skips its loaded lines."""
    lines = [f'{{"n": {n}, "name": "Zoë {"x" * (n % 1400)}"}}' for n in range(4000)]
    body = "\r\n".join(lines[:2000]) + "\r\n\n" + "\n".join(lines[2000:])
    path = tmp_path / "a.jsonl"
    path.write_bytes(UTF8_BOM + body.encode())
    assert path.stat().st_size > 2 << 20  # three read blocks
    expected = [*lines[:2000], "", *lines[2000:]]
    assert list(read_lines(path)) == [(line, False) for line in expected]
    (item,) = plan_load(tmp_path, list_landing_files(tmp_path), {})[0]
    grown = FileToRead(item.file, item.file_hash, skip_lines=1500, status="appended")
    table = load_files(tmp_path, [grown], datetime(2026, 1, 1)).read_all()
    assert table.column("raw_line").to_pylist() == expected[1500:]
    assert table.column("line_number").to_pylist() == list(range(1501, len(expected) + 1))


def test_read_ahead_keeps_order_and_raises_the_readers_error_where_it_happened():
    def numbers():
        yield from range(10)
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for number in read_ahead(numbers(), depth=2):
            seen.append(number)
    assert seen == list(range(10))


def test_read_ahead_stops_its_thread_when_the_reader_stops_early():
    produced = []

    def numbers():
        for number in range(1000):
            produced.append(number)
            yield number

    batches = read_ahead(numbers(), depth=2)
    assert [next(batches) for _ in range(3)] == [0, 1, 2]
    batches.close()
    assert not any(t.name == "raw-load-read-ahead" for t in threading.enumerate())
    assert len(produced) < 10  # it stopped, it did not read the rest


def test_end_callback_sees_every_files_outcome_before_the_stream_ends(tmp_path):
    write(tmp_path / "a.jsonl", "{}\n{}\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b"{}\n{}\n{}\n")[:-8])  # no trailer
    items = files_to_load(tmp_path, list_landing_files(tmp_path), {})
    events: list[FileEvent] = []
    at_end = []
    reader = load_files(
        tmp_path, items, datetime(2026, 1, 1), events,
        on_end=lambda: at_end.append([(e.path, e.status, e.lines_loaded) for e in events]),
    )  # fmt: skip
    batches = list(reader)
    assert at_end == [[("a.jsonl", "loaded", 2), ("b.jsonl.gz", "unreadable", 3)]]
    assert sum(len(batch) for batch in batches) == 5
