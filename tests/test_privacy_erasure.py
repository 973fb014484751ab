"""Erasure with suppression (personalization.erasure): forget one stitched user (u9 and the
anonymous id a9 of their pre-login events, one of them in a gzip landing file), scan everything
for zero hits, compare with a build of the same data without them, full-refresh and scan again,
re-send one of their events and see it suppressed; and the retention purge."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURE_AS_OF, FIXTURE_LANDING, make_warehouse, query, user_key

from personalization import erasure
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.privacy import DEVELOPMENT_KEY, pseudonymise, user_pseudonym
from personalization.publish import list_versions, publish

KEY = DEVELOPMENT_KEY.encode()  # the tests build on the dev target
USER, ANON, EMAIL = "u9", "a9", "nine@example.com"
NOW = datetime(2026, 1, 3, tzinfo=UTC)
# columns that differ between any two builds of the same data (the time a load ran)
# when a row was written, and by which run (a build history differs from a fresh build's)
BUILD_TIME_COLUMNS = {
    "loaded_at",
    "last_loaded_at",
    "file_modified_at",
    "recorded_at",
    "build_sequence",
    "build_id",
}
# tables that legitimately differ: the erasure's own records, and the logs of runs (which
# builds ran, which files each load saw) - they hold no identifiers
OWN_RECORDS = {
    "privacy.privacy_requests",
    "privacy.privacy_suppression_list",
    "marts.rpt_privacy_requests",
    "raw.dbt_builds",
    "raw.dbt_build_models",
    "raw.landing_file_log",
    # the touched-user run log: which users each run recomputed and why (an erasure recomputes
    # everyone); pseudonyms of remaining users only, scanned like every table
    "intermediate.int_touched_users",
    "intermediate.int_touched_user_runs",
}


def landing_lines(landing: Path) -> dict[str, list[str]]:
    files = {}
    for path in sorted(landing.rglob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            files[path.relative_to(landing).as_posix()] = handle.read().splitlines()
    return files


def is_theirs(line: str) -> bool:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return False
    return event.get("userId") == USER or event.get("anonymousId") == ANON


def needles() -> dict[str, str]:
    """What must not be found anywhere: raw ids (as whole tokens), pseudonyms, the e-mail."""
    token = r"(^|[^A-Za-z0-9]){}([^A-Za-z0-9]|$)"
    return {
        "user id": token.format(USER),
        "anonymous id": token.format(ANON),
        "user pseudonym": pseudonymise(USER, KEY),
        "anonymous pseudonym": pseudonymise(ANON, KEY),
        "user key": user_pseudonym(USER, KEY),
        "anonymous key": user_pseudonym(ANON, KEY),
        "e-mail": re.escape(EMAIL),
        "e-mail pseudonym": pseudonymise(EMAIL, KEY),
    }


def scan_database(con: duckdb.DuckDBPyConnection, prefix: str = "") -> list[str]:
    """'table.column: what' for every hit in every table (every column as text)."""
    hits = []
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where not temporary"
    ).fetchall()
    for schema, table in tables:
        relation = f'{prefix}"{schema}"."{table}"'
        columns = [row[0] for row in con.execute(f"describe {relation}").fetchall()]
        for column in columns:
            for what, pattern in needles().items():
                (count,) = con.execute(
                    f'select count(*) from {relation} where regexp_matches(cast("{column}" as '
                    "varchar), $p)",
                    {"p": pattern},
                ).fetchone()
                if count:
                    hits.append(f"{schema}.{table}.{column}: {what}")
    return hits


def scan_everything(warehouse: Warehouse, published: Path) -> list[str]:
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        hits = scan_database(con)
    with duckdb.connect() as con:
        for parquet in sorted(published.rglob("*.parquet")):
            con.execute(f"create or replace view p as select * from read_parquet('{parquet}')")
            hits += [f"{parquet.name}:{h}" for h in scan_database(con)]
    for name, lines in landing_lines(warehouse.landing_path).items():
        for what, pattern in needles().items():
            if any(re.search(pattern, line) for line in lines):
                hits.append(f"landing {name}: {what}")
    return hits


def table_rows(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every row of every table, build-time columns left out, sorted."""
    result = {}
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where not temporary"
        ).fetchall()
        for schema, table in tables:
            if f"{schema}.{table}" in OWN_RECORDS or "__dbt_tmp" in table:
                continue
            columns = [
                f'"{name}"'
                for name, *_ in con.execute(f'describe "{schema}"."{table}"').fetchall()
                if name not in BUILD_TIME_COLUMNS
            ]
            rows = con.execute(f'select {", ".join(columns)} from "{schema}"."{table}"').fetchall()
            result[f"{schema}.{table}"] = sorted(rows, key=repr)
    return result


def assert_same_tables(actual: Warehouse, expected: Warehouse) -> None:
    got, want = table_rows(actual), table_rows(expected)
    assert sorted(got) == sorted(want)
    differing = [name for name in want if got[name] != want[name]]
    assert differing == [], {name: (got[name][:3], want[name][:3]) for name in differing}


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    """The fixture data without u9/a9's lines, built from scratch."""
    root = tmp_path_factory.mktemp("erasure_control")
    landing = root / "landing"
    for name, lines in landing_lines(FIXTURE_LANDING).items():
        kept = "".join(line + "\n" for line in lines if not is_theirs(line))
        target = landing / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".gz":
            # written as the erasure writes gzip (no name, no time), so the hashes compare
            with (
                open(target, "wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as handle,
            ):
                handle.write(kept.encode())
        else:
            target.write_text(kept)
    warehouse = make_warehouse(root, landing)
    run_dbt(["build"], warehouse)
    return warehouse


@pytest.fixture(scope="module")
def forgotten(
    tmp_path_factory: pytest.TempPathFactory, fixture_warehouse: Warehouse
) -> tuple[Warehouse, Path, erasure.ErasureReport]:
    """A copy of the session's fixture build, published twice, then `forget --user-id u9`."""
    root = tmp_path_factory.mktemp("erasure")
    shutil.copytree(fixture_warehouse.landing_path, root / "landing")
    shutil.copy(fixture_warehouse.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, root / "landing")
    published = root / "published"
    publish(warehouse.db_path, published)
    publish(warehouse.db_path, published)
    # before: the person is everywhere the scan looks
    assert len(scan_everything(warehouse, published)) > 10
    report = erasure.forget(
        warehouse.db_path, warehouse.landing_path, KEY, [USER], [], [published], now=NOW
    )
    return warehouse, published, report


def test_forget_removes_both_identities_everywhere(forgotten, control) -> None:
    warehouse, published, report = forgotten
    # 5 landing lines: a9's two anonymous events, u9's identify, order and revoke (gzip file)
    assert (report.identities, report.landing_lines_removed, report.landing_files_rewritten) == (
        2,
        5,
        1,
    )
    assert report.published_versions_rewritten == 2 and report.published_rows_removed > 0
    assert len(list_versions(published)) == 2
    assert scan_everything(warehouse, published) == []
    # the shared device's users and the others are untouched
    assert query(warehouse, "select count(*) from raw.raw_landing_events")[0][0] == 41 - 5
    # the request is recorded, without PII
    [(request_type, identities, lines)] = query(
        warehouse,
        "select request_type, identities, landing_lines_removed from privacy.privacy_requests",
    )
    assert (request_type, identities, lines) == ("erasure", 2, 5)
    # the suppression list holds domain-separated pseudonyms, equal to no other pseudonym
    suppressed = {
        h for (h,) in query(warehouse, "select identity_hash from privacy.privacy_suppression_list")
    }
    assert suppressed == {erasure.suppression_hash(USER, KEY), erasure.suppression_hash(ANON, KEY)}
    assert not suppressed & {pseudonymise(USER, KEY), pseudonymise(ANON, KEY)}


def test_after_a_build_every_table_equals_a_build_without_them(forgotten, control) -> None:
    warehouse, published, _ = forgotten
    run_dbt(["build"], warehouse)  # incremental: loading goes on over the rewritten files
    assert scan_everything(warehouse, published) == []
    assert_same_tables(warehouse, control)
    [(count,)] = query(warehouse, "select count(*) from marts.rpt_privacy_requests")
    assert count == 1
    # a full refresh cannot bring them back
    run_dbt(["build", "--full-refresh"], warehouse)
    assert scan_everything(warehouse, published) == []
    assert_same_tables(warehouse, control)
    assert query(warehouse, "select count(*) from privacy.privacy_suppression_list") == [(2,)]


def test_a_re_sent_event_is_suppressed_and_conserved(forgotten) -> None:
    warehouse, _, _ = forgotten
    late = warehouse.landing_path / "dt=2026-01-03" / "part-0000.jsonl"
    late.parent.mkdir()
    event = {
        "messageId": "resent-1",
        "type": "track",
        "event": "Order Completed",
        "anonymousId": ANON.upper() + " ",  # ids compare trimmed and case-insensitively
        "timestamp": "2026-01-02T20:00:00.000Z",
        "sentAt": "2026-01-02T20:00:00.000Z",
        "receivedAt": "2026-01-02T20:00:00.000Z",
        "properties": {
            "order_id": "O9-again",
            "revenue": 12.5,
            "products": [{"product_id": "P1", "category": "books", "price": 12.5, "quantity": 1}],
        },
        "context": {"consent": {"categoryPreferences": {"personalization": True}}},
    }
    other = {**event, "messageId": "resent-other", "anonymousId": "a-new"}
    late.write_text(json.dumps(event) + "\n" + json.dumps(other) + "\n")
    run_dbt(["build"], warehouse)  # the conservation test runs in it
    rows = query(
        warehouse,
        "select message_id, status, reasons from staging.stg_landing__events_checked "
        "where message_id like 'resent-%' order by 1",
    )
    assert rows == [("resent-1", "quarantined", ["suppressed"]), ("resent-other", "staged", [])]
    # the suppressed line keeps its place and reason (conservation) but none of its text
    assert query(
        warehouse,
        "select raw_line, user_id, anonymous_id, previous_id, properties, page_name "
        "from staging.stg_landing__events_checked where message_id = 'resent-1'",
    ) == [(None,) * 6]
    assert query(
        warehouse, "select raw_line from staging.quarantined_events where message_id = 'resent-1'"
    ) == [(None,)]
    profiles = "select count(*) from marts.dim_user_profiles where canonical_user_id = "
    for anonymous_id in (ANON, ANON.upper()):
        assert query(warehouse, profiles + f"'{user_key(anonymous_id)}'") == [(0,)]
    assert query(warehouse, profiles + f"'{user_key('a-new')}'") == [(1,)]


def test_retention_purges_old_raw_events(tmp_path: Path, fixture_warehouse: Warehouse) -> None:
    shutil.copytree(fixture_warehouse.landing_path, tmp_path / "landing")
    shutil.copy(fixture_warehouse.db_path, tmp_path / "warehouse.duckdb")
    warehouse = make_warehouse(tmp_path, tmp_path / "landing")
    as_of = datetime.fromisoformat(FIXTURE_AS_OF.replace("Z", "+00:00"))
    old = query(
        warehouse,
        "select count(*) from staging.stg_landing__events_checked where event_at < '2025-12-31'",
    )[0][0]
    assert old >= 1  # ok-late (2025-12-30) and the like
    report = erasure.purge_expired(warehouse.db_path, warehouse.landing_path, 3, as_of, now=NOW)
    assert report.landing_lines_removed == old
    assert query(
        warehouse,
        "select count(*) from staging.stg_landing__events_checked where event_at < '2025-12-31'",
    ) == [(0,)]
    remaining = sum(len(lines) for lines in landing_lines(warehouse.landing_path).values())
    assert query(warehouse, "select count(*) from raw.raw_landing_events") == [(remaining,)]


def test_erasure_job_is_defined_with_the_forget_then_rebuild_steps() -> None:
    from orchestration.definitions import defs

    job = defs.resolve_job_def("erasure_job")
    assert [node.name for node in job.graph.nodes_in_topological_order] == [
        "forget_person",
        "rebuild_after_erasure",
    ]
    assert job.tags["personalization/kind"] == "erasure"


def test_forget_without_a_person_or_a_key_refuses(tmp_path: Path, monkeypatch) -> None:
    from personalization import cli
    from personalization.privacy import KEY_ENV_VAR

    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(erasure.ErasureError, match="name the person"):
        erasure.forget(tmp_path / "w.duckdb", tmp_path, KEY)
    # the command needs the key to pseudonymise the ids (the demo may ask for the public one)
    args = ["forget", "--user-id", "u1", "--db", str(tmp_path / "w.duckdb")]
    assert cli.main(args) == 2
    assert cli.main([*args, "--development-key"]) == 2  # no warehouse there: a clear error
    assert not (tmp_path / "w.duckdb").exists()
