"""The landing contract end to end: plain `dbt build` with only environment variables set, on a
landing folder with good files of every JSON-lines extension, a truncated and a non-gzip `.gz`, a
re-delivered copy, a file still being written, temp names and files that are not JSON lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from personalization.dbt_runner import dbt_executable
from personalization.tracking_plan import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"
# an old, fixed modification time: these files are complete (settled) on any machine
SETTLED_MTIME = 1_767_225_600  # 2026-01-01T00:00:00Z
HALF_WRITTEN = "dt=2026-01-02/half-written.jsonl"
HALF_LINE = '{"messageId": "half-1", "type": "page", "userId": "u1", "anonymousId": "a1", '
REST_OF_LINE = (
    '"timestamp": "2026-01-02T09:00:00.000Z", "sentAt": "2026-01-02T09:00:00.000Z", '
    '"receivedAt": "2026-01-02T09:00:00.000Z", "properties": {"path": "/"}, "name": "Home"}\n'
)
# lines each good file holds (tests/fixtures/landing plus tests/fixtures/landing_files)
GOOD_FILES = {
    "dt=2026-01-01/part-0000.jsonl": 30,
    "dt=2026-01-02/part-0000.jsonl.gz": 11,
    "dt=2026-01-01/bom.jsonl": 2,
    "dt=2026-01-01/events.ndjson": 2,
    "dt=2026-01-01/rudderstack.json.gz": 2,
    "dt=2026-01-01/1735689600.gz": 2,
}
TRUNCATED_READABLE_LINES = 14
AS_OF = "2026-01-03T00:00:00Z"  # complete lines before the cut (40 were compressed)


def plain_dbt(args: list[str], root: Path, landing: Path) -> subprocess.CompletedProcess[str]:
    """`dbt <args>` as a user runs it: no --vars, only the environment says where things are."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("PERSONALIZATION_")
    }
    env |= {
        "PERSONALIZATION_LANDING": str(landing),
        # the fixture events' reference time (else now: months after them, a dead feed)
        "PERSONALIZATION_AS_OF": AS_OF,
        "PERSONALIZATION_DB": str(root / "warehouse.duckdb"),
        # dbt's default target is prod, which takes the key from the environment as a user's would
        "PERSONALIZATION_HMAC_KEY": "landing-contract-test-key-0123456789abcdef",
        "DBT_LOG_PATH": str(root / "logs"),
    }
    project = ["--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT)]
    command = [dbt_executable(), *args, *project, "--target-path", str(root / "target")]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)


def rows(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("landing_contract")
    landing = root / "landing"
    shutil.copytree(FIXTURES / "landing", landing)
    shutil.copytree(FIXTURES / "landing_files", landing, dirs_exist_ok=True)
    for path in landing.rglob("*"):
        os.utime(path, (SETTLED_MTIME, SETTLED_MTIME))
    half = landing / HALF_WRITTEN
    half.write_text(HALF_LINE)
    # its writer is still at it: modified "now" (in the future, so no settle time has passed)
    future = time.time() + 3600
    os.utime(half, (future, future))
    result = plain_dbt(["build"], root, landing)
    assert result.returncode == 0, result.stdout[-3000:]
    return root, landing, result.stdout


def test_env_only_build_loads_every_good_file_and_records_the_bad(landed) -> None:
    root, _, output = landed
    manifest = dict(
        (path, (count, status))
        for path, count, status in rows(
            root, "select file_path, row_count, load_status from raw.raw_landing_files"
        )
    )
    assert manifest == {
        **{path: (lines, "loaded") for path, lines in GOOD_FILES.items()},
        "dt=2026-01-02/truncated.jsonl.gz": (TRUNCATED_READABLE_LINES, "unreadable"),
        "dt=2026-01-02/not-gzip.jsonl.gz": (0, "unreadable"),
        "dt=2026-01-02/copy-of-bom.jsonl": (0, "redelivered"),
    }  # no half-written file, no .inflight.jsonl / .tmp, no notes.json / README.txt
    details = dict(
        rows(
            root,
            "select file_path, file_size::varchar || ' ' || file_hash || ' ' || load_detail "
            "from raw.raw_landing_files where load_status != 'loaded'",
        )
    )
    assert "Invalid gzip/zlib wrapper" in details["dt=2026-01-02/not-gzip.jsonl.gz"]
    assert "end-of-stream marker" in details["dt=2026-01-02/truncated.jsonl.gz"]
    assert "same bytes as dt=2026-01-01/bom.jsonl" in details["dt=2026-01-02/copy-of-bom.jsonl"]
    # the reference time came from the environment too, and the build recorded it
    builds = "select cast(as_of as varchar), as_of_pinned, status from raw.dbt_builds"
    assert rows(root, builds) == [("2026-01-03 00:00:00", True, "success")]
    # the build says so: a warning naming the count of files not loaded cleanly
    assert "Warning in test assert_landing_files_all_loaded" in output
    assert "Got 5 results, configured to warn" in output


def test_every_readable_line_is_conserved(landed) -> None:
    root, _, _ = landed
    expected = sum(GOOD_FILES.values()) + TRUNCATED_READABLE_LINES
    ((raw, staged, quarantined, duplicates),) = rows(
        root,
        "select (select count(*) from raw.raw_landing_events), "
        "(select count(*) from staging.stg_events), "
        "(select count(*) from staging.quarantined_events), "
        "(select count(*) from staging.stg_duplicate_events)",
    )
    assert raw == expected == 63
    assert staged + quarantined + duplicates == raw
    # the byte-order mark did not quarantine bom.jsonl's first event; truncated lines are staged
    staged_ids = {r[0] for r in rows(root, "select message_id from staging.stg_events")}
    assert {"bom-1", "bom-2", "trunc-1", f"trunc-{TRUNCATED_READABLE_LINES}"} <= staged_ids
    assert f"trunc-{TRUNCATED_READABLE_LINES + 1}" not in staged_ids


def test_data_quality_reports_every_landing_outcome(landed) -> None:
    root, _, _ = landed
    assert dict(
        rows(
            root,
            "select dimension, metric_value from marts.rpt_data_quality "
            "where metric_group = 'landing' and metric_name = 'files'",
        )
    ) == {"loaded": 6.0, "unreadable": 2.0, "redelivered": 1.0, "unsupported": 2.0}
    assert sorted(
        rows(root, "select file_path from raw.landing_file_log where status = 'unsupported'")
    ) == [("README.txt",), ("notes.json",)]


def test_settled_file_loads_and_a_deleted_file_is_reported_after_full_refresh(landed) -> None:
    root, landing, _ = landed
    half = landing / HALF_WRITTEN
    half.write_text(HALF_LINE + REST_OF_LINE)  # the writer finished
    os.utime(half, (SETTLED_MTIME, SETTLED_MTIME))
    (landing / "dt=2026-01-01" / "bom.jsonl").unlink()  # deleted after it was loaded
    result = plain_dbt(
        ["run", "--select", "raw_landing_events", "raw_landing_files", "--full-refresh"],
        root,
        landing,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    manifest = {
        path: (count, status)
        for path, count, status in rows(
            root, "select file_path, row_count, load_status from raw.raw_landing_files"
        )
    }
    assert manifest[HALF_WRITTEN] == (1, "loaded")
    assert manifest["dt=2026-01-01/bom.jsonl"] == (0, "missing")
    # with the original gone, its copy is no longer a re-delivery: its lines are loaded once
    assert manifest["dt=2026-01-02/copy-of-bom.jsonl"] == (2, "loaded")
    assert rows(root, "select count(*) from raw.raw_landing_events") == [(63 + 1,)]


def test_missing_landing_folder_fails_naming_it(tmp_path: Path) -> None:
    absent = tmp_path / "no-such-folder"
    result = plain_dbt(["run", "--select", "raw_landing_events"], tmp_path, absent)
    assert result.returncode != 0
    assert f"landing folder {absent} does not exist" in result.stdout


def test_empty_landing_folder_on_a_new_warehouse_fails_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "landing"
    empty.mkdir()
    (empty / "manifest.json").write_text("{}\n")
    result = plain_dbt(["run", "--select", "raw_landing_events"], tmp_path, empty)
    assert result.returncode != 0
    assert f"no landing file (.jsonl, .ndjson, optionally .gz) under {empty}" in result.stdout


def test_source_freshness_and_docs_generate_with_only_the_environment(landed) -> None:
    root, landing, _ = landed
    stale = plain_dbt(["source", "freshness"], root, landing)
    # every file is dated 2026-01-01: stale against now (an error, not a parser error)
    assert "ERROR STALE freshness of landing.events" in stale.stdout, stale.stdout[-2000:]
    newest = landing / "dt=2026-01-02" / "part-0000.jsonl.gz"
    os.utime(newest, None)  # a file just landed
    fresh = plain_dbt(["source", "freshness"], root, landing)
    assert fresh.returncode == 0, fresh.stdout[-2000:]
    assert "PASS freshness of landing.events" in fresh.stdout
    docs = plain_dbt(["docs", "generate"], root, landing)
    assert docs.returncode == 0, docs.stdout[-2000:]
