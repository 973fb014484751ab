"""Publishing marts for BI readers: atomic switch, consistent reads, failed builds, PII guard,
compatibility, retention, CLI, dbt docs and exposures."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from conftest import make_warehouse

from personalization import cli
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.publish import (
    PUBLISHED_DB_NAME,
    BuildFailedError,
    PiiFoundError,
    PublishError,
    build_and_publish,
    current_version,
    list_versions,
    pii_column_name,
    prune,
    publish,
    read_version,
)
from personalization.tracking_plan import PROJECT_ROOT

# Queries the published marts in a loop from its own process, one JSON line per read. A read
# opens current/published.duckdb, takes the version id stored in that file, reads every table in
# full (pausing between tables, so that a switch can fall in the middle of a read) and compares
# the row counts with that version's _version.json.
READER = """
import json, sys, time
from pathlib import Path
import duckdb

out, stop, log_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
deadline = time.monotonic() + 600  # safety net only: the stop file ends the loop
with log_path.open("w") as log:
    while not stop.exists() and time.monotonic() < deadline:
        try:
            con = duckdb.connect(str(out / "current" / "published.duckdb"), read_only=True)
            version = con.sql("select version_id from publish_meta.version_info").fetchone()[0]
            counts = {}
            for name in sorted(json.loads(
                (out / "versions" / version / "_version.json").read_text()
            )["row_counts"]):
                n, _ = con.sql(
                    f"select count(*), sum(length(cast(t as varchar))) from {name} as t"
                ).fetchone()
                counts[name] = n
                time.sleep(0.02)
            con.close()
            expected = json.loads(
                (out / "versions" / version / "_version.json").read_text()
            )["row_counts"]
            record = {"version": version, "consistent": counts == expected, "counts": counts}
        except Exception as error:
            record = {"error": repr(error)}
        log.write(json.dumps(record) + "\\n")
        log.flush()
        time.sleep(0.02)
"""


def make_marts_db(path: Path, tables: dict[str, str]) -> Path:
    """A small build database: schema marts with one table per `name: select ...`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        for name, select in tables.items():
            con.execute(f"create table marts.{name} as {select}")
    return path


CLEAN_TABLES = {
    "dim_users": "select 'u' || i as user_id, i * 2 as orders from range(5) as t(i)",
    "fct_orders": "select 'u' || (i % 5) as user_id, i as order_number from range(10) as t(i)",
}


def plain_client(*code: str) -> str:
    """Run code in a separate, plain Python process with only duckdb imported; its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", "import duckdb\n" + "\n".join(code)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# --- builds + publishes with a reader running (dbt; shared by the tests that need it) ----------


@dataclass
class Scenario:
    warehouse: Warehouse
    out: Path
    versions: list[Path]
    reads: list[dict]


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
    fixture_warehouse: Warehouse,
    generate: Callable[..., Path],
) -> Scenario:
    """Publish a copy of the session's fixture warehouse, then run two builds + publishes, each
    with one more day of generated events, while a reader process queries the published marts."""
    root = tmp_path_factory.mktemp("publish")
    shutil.copytree(fixture_warehouse.landing_path, root / "landing")
    shutil.copy2(fixture_warehouse.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, root / "landing", as_of=fixture_warehouse.as_of)
    generated = generate(root / "generated", events=300, users=30, days=2, seed=11)
    days = sorted(p.name for p in generated.glob("dt=*"))
    assert len(days) == 2
    out = root / "published"
    versions = [publish(warehouse.db_path, out, keep=3)]

    reader_script = root / "reader.py"
    reader_script.write_text(READER)
    stop, log_path = root / "stop", root / "reads.jsonl"
    reader = subprocess.Popen([sys.executable, str(reader_script), str(out), str(stop), log_path])
    try:
        _wait_for_reads(log_path, lambda reads: len(reads) >= 3)
        for day in days:
            shutil.copytree(generated / day, warehouse.landing_path / "generated" / day)
            versions.append(build_and_publish(warehouse, out, keep=3, target="dev"))
        last = versions[-1].name
        _wait_for_reads(log_path, lambda reads: any(r.get("version") == last for r in reads))
    finally:
        stop.touch()
        reader.wait(timeout=60)
    return Scenario(warehouse, out, versions, _reads(log_path))


def _reads(log_path: Path) -> list[dict]:
    if not log_path.exists():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def _wait_for_reads(log_path: Path, done: Callable[[list[dict]], bool]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if done(_reads(log_path)):
            return
        time.sleep(0.1)
    raise AssertionError(f"reader did not get there: {_reads(log_path)[-3:]}")


def test_reader_sees_whole_versions_while_builds_publish(scenario: Scenario) -> None:
    reads = scenario.reads
    failed = [r for r in reads if "error" in r]
    inconsistent = [r for r in reads if "error" not in r and not r["consistent"]]
    assert failed == []
    assert inconsistent == []
    # the reader ran through both switches: it saw all three versions, in publish order
    ids = [v.name for v in scenario.versions]
    seen = [r["version"] for r in reads]
    assert set(seen) == set(ids)
    assert seen == sorted(seen)
    # and the versions differ, so a read mixing two of them would not have matched either
    counts = [read_version(scenario.out, i)["row_counts"] for i in ids]
    assert counts[0] != counts[1] != counts[2]
    assert counts[0]["marts.dim_user_profiles"] < counts[2]["marts.dim_user_profiles"]
    assert len(reads) > 50
    per_version = {i: seen.count(i) for i in ids}
    logging.getLogger(__name__).info("reader: %d reads, per version %s", len(reads), per_version)


def test_published_version_matches_the_build(scenario: Scenario) -> None:
    version = read_version(scenario.out)
    assert version["version_id"] == scenario.versions[-1].name == current_version(scenario.out)
    assert Path(version["source_db"]) == scenario.warehouse.db_path.resolve()
    with duckdb.connect(str(scenario.warehouse.db_path), read_only=True) as con:
        marts = con.sql(
            "select table_name from duckdb_tables() where schema_name = 'marts' "
            "union all select view_name from duckdb_views() where schema_name = 'marts'"
        ).fetchall()
        built = {
            f"marts.{name}": con.sql(f"select count(*) from marts.{name}").fetchone()[0]
            for (name,) in marts
        }
        profiles = con.sql("select * from marts.dim_user_profiles order by 1").fetchall()
    # every mart is published (so marts added later are too), with the build's row counts
    assert version["row_counts"] == built
    assert "marts.rpt_identity_audit" in built
    published = scenario.out / "current" / PUBLISHED_DB_NAME
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.sql("select * from marts.dim_user_profiles order by 1").fetchall() == profiles
    for info in version["tables"].values():
        assert (scenario.versions[-1] / info["file"]).is_file()


def test_published_file_opens_read_only_in_a_plain_client(scenario: Scenario) -> None:
    path = scenario.out / "current" / PUBLISHED_DB_NAME
    expected = read_version(scenario.out)["row_counts"]["marts.dim_user_profiles"]
    code = (
        f"con = duckdb.connect({str(path)!r}, read_only=True)",
        "print(con.sql('select count(*) from marts.dim_user_profiles').fetchone()[0])",
        "print(con.sql(\"select tags['storage_version'] from duckdb_databases() "
        "where database_name = 'published'\").fetchone()[0])",
    )
    # two plain clients at once: read-only opens share the file
    with subprocess.Popen([sys.executable, "-c", "import duckdb\n" + "\n".join(code)]) as other:
        rows, storage = plain_client(*code).splitlines()
        assert other.wait(timeout=60) == 0
    assert int(rows) == expected
    assert storage == "v1.0.0+"  # readable by every DuckDB 1.x (not a 1.5-only format)


def test_dbt_docs_generate_with_exposures(scenario: Scenario, tmp_path: Path) -> None:
    docs = Warehouse(
        scenario.warehouse.db_path,
        scenario.warehouse.landing_path,
        tmp_path / "docs_target",
        scenario.warehouse.as_of,
    )
    run_dbt(["docs", "generate"], docs)
    assert (tmp_path / "docs_target" / "index.html").is_file()
    catalog = json.loads((tmp_path / "docs_target" / "catalog.json").read_text())
    assert "model.personalization.dim_user_profiles" in catalog["nodes"]
    manifest = json.loads((tmp_path / "docs_target" / "manifest.json").read_text())
    exposures = manifest["exposures"]
    assert {e["name"] for e in exposures.values()} == {
        "user_profiles_dashboard",
        "segments_dashboard",
        "cluster_personas_notebook",
        "data_quality_dashboard",
        "personalization_dashboard",
    }
    for exposure in exposures.values():
        assert exposure["type"] in ("dashboard", "notebook", "application")
        assert exposure["owner"]["name"]
        assert exposure["depends_on"]["nodes"]
        assert all(node in manifest["nodes"] for node in exposure["depends_on"]["nodes"])


def test_failed_build_publishes_nothing(scenario: Scenario) -> None:
    """Runs last among the scenario tests: it breaks the landing zone."""
    before = current_version(scenario.out)
    versions_before = list_versions(scenario.out)
    # a landing file whose content changed after it was loaded stops the build
    changed = scenario.warehouse.landing_path / "dt=2026-01-01" / "part-0000.jsonl"
    # (rewritten, not appended to: a file that only grew has its new lines loaded)
    changed.write_text(changed.read_text().splitlines()[1] + "\n" + changed.read_text())
    with pytest.raises(BuildFailedError, match="nothing published"):
        build_and_publish(scenario.warehouse, scenario.out, keep=3, target="dev")
    assert current_version(scenario.out) == before
    assert list_versions(scenario.out) == versions_before
    expected = read_version(scenario.out)["row_counts"]
    with duckdb.connect(str(scenario.out / "current" / PUBLISHED_DB_NAME), read_only=True) as con:
        for name, rows in expected.items():
            assert con.sql(f"select count(*) from {name}").fetchone()[0] == rows


# --- fast tests on small hand-made build databases ----------------------------------------------


def test_open_connection_keeps_its_version_across_a_switch(tmp_path: Path) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    out = tmp_path / "published"
    publish(db, out)
    make_marts_db(db, {**CLEAN_TABLES, "dim_users": "select 'x' as user_id, 1 as orders"})
    opened = publish(db, out)  # published while a current version exists
    reader = duckdb.connect(str(out / "current" / PUBLISHED_DB_NAME), read_only=True)
    try:
        make_marts_db(db, {**CLEAN_TABLES, "dim_users": "select 'y' as user_id, 2 as orders"})
        newer = publish(db, out)
        assert current_version(out) == newer.name != opened.name
        # the connection opened before the switch still reads its own version's files
        assert reader.sql("select * from marts.dim_users").fetchall() == [("x", 1)]
        view_sql = reader.sql("select sql from duckdb_views() where view_name = 'dim_users'")
        assert f"{opened.resolve()}/marts/dim_users.parquet" in view_sql.fetchone()[0]
    finally:
        reader.close()
    with duckdb.connect(str(out / "current" / PUBLISHED_DB_NAME), read_only=True) as con:
        assert con.sql("select * from marts.dim_users").fetchall() == [("y", 2)]


def test_pii_guard_refuses_a_mart_with_an_email(tmp_path: Path) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    out = tmp_path / "published"
    first = publish(db, out)
    make_marts_db(
        db,
        {
            **CLEAN_TABLES,
            # an e-mail hidden in a free-text column with an innocent name
            "dim_contacts": "select 'u1' as user_id, 'reach me at Jane.Doe+x@mail.example.co.uk' "
            "as note union all select 'u2', 'no contact'",
            # an identifier column by name, even when empty
            "dim_people": "select 'u1' as user_id, null::varchar as first_name, "
            "'10.0.0.1' as ip_address",
            # e-mails inside a list column
            "fct_events": "select 'u1' as user_id, ['a', 'bob@example.com'] as tags",
        },
    )
    with pytest.raises(PiiFoundError) as raised:
        publish(db, out)
    message = str(raised.value)
    assert "marts.dim_contacts.note: 1 value(s) look like e-mail addresses" in message
    assert "marts.dim_people.first_name" in message
    assert "marts.dim_people.ip_address" in message
    assert "marts.fct_events.tags: 1 value(s)" in message
    assert "marts.dim_users" not in message and "Jane.Doe" not in message
    # nothing switched, no new version left behind
    assert current_version(out) == first.name
    assert list_versions(out) == [first.name]
    assert sorted(p.name for p in (out / "versions").iterdir()) == [first.name]


def test_pii_guard_lets_pseudonymised_and_non_text_columns_through(tmp_path: Path) -> None:
    db = make_marts_db(
        tmp_path / "build.duckdb",
        {
            "dim_users": "select 'u1' as user_id, sha256('a@b.com') as email_hash, "
            "true as has_email, 3 as emails_sent, 'DE' as country, 'not an email: a@b' as note",
        },
    )
    version = publish(db, tmp_path / "published")
    assert read_version(tmp_path / "published")["row_counts"] == {"marts.dim_users": 1}
    assert version.name == current_version(tmp_path / "published")


@pytest.mark.parametrize(
    ("name", "flagged"),
    [
        ("email", True),
        ("user_email", True),
        ("Email_Address", True),
        ("phone_number", True),
        ("ip", True),
        ("first_name", True),
        ("last_name", True),
        ("address", True),
        ("email_hash", False),
        ("canonical_user_id", False),
        ("ship_country", False),
        ("name", False),
        ("zip", False),
    ],
)
def test_pii_column_names(name: str, flagged: bool) -> None:
    assert pii_column_name(name) is flagged


def test_pruning_keeps_n_versions_and_never_the_current(tmp_path: Path) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    out = tmp_path / "published"
    ids = [publish(db, out, keep=3).name for _ in range(5)]
    assert ids == sorted(ids)
    assert list_versions(out) == ids[-3:]
    assert current_version(out) == ids[-1]
    # an unfinished folder left by a crashed publish goes at the next publish
    (out / "versions" / "00000000T000000000000Z-crashed").mkdir()
    ids.append(publish(db, out, keep=3).name)
    assert sorted(p.name for p in (out / "versions").iterdir()) == ids[-3:]
    # after a manual rollback to the oldest kept version, pruning keeps it as well
    rollback = out / "rollback"
    rollback.symlink_to(Path("versions") / ids[-3])
    os.replace(rollback, out / "current")
    assert prune(out, keep=2) == []
    assert list_versions(out) == ids[-3:]
    with duckdb.connect(str(out / "current" / PUBLISHED_DB_NAME), read_only=True) as con:
        assert con.sql("select version_id from publish_meta.version_info").fetchone()[0] == ids[-3]
    with pytest.raises(PublishError, match="keep must be at least 2"):
        publish(db, out, keep=1)


def test_locked_build_database_is_a_clear_error(tmp_path: Path) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; con = duckdb.connect({str(db)!r}); print('ready', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(PublishError, match="locked by a writer"):
            publish(db, tmp_path / "published", lock_attempts=2, lock_wait_seconds=0.1)
    finally:
        holder.kill()
        holder.wait()
    assert current_version(tmp_path / "published") is None
    publish(db, tmp_path / "published")  # the writer is gone: it publishes


def test_cli_publish_and_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    out = tmp_path / "published"
    assert cli.main(["publish", f"--db={db}", f"--out={out}", "--keep=2"]) == 0
    assert read_version(out)["row_counts"] == {"marts.dim_users": 5, "marts.fct_orders": 10}
    assert cli.main(["publish", f"--db={tmp_path / 'missing.duckdb'}", f"--out={out}"]) == 2
    assert "does not exist" in caplog.text
    assert cli.main(["publish", f"--db={db}", f"--out={out}", "--keep=1"]) == 2
    make_marts_db(db, {"dim_users": "select 'someone@example.org' as login"})
    assert cli.main(["publish", f"--db={db}", f"--out={out}"]) == 2
    assert "marts.dim_users.login" in caplog.text
    assert len(list_versions(out)) == 1


def test_nothing_to_publish_is_an_error(tmp_path: Path) -> None:
    db = make_marts_db(tmp_path / "build.duckdb", {})
    with pytest.raises(PublishError, match="nothing to publish"):
        publish(db, tmp_path / "published")
    assert list_versions(tmp_path / "published") == []


@pytest.mark.slow
def test_older_duckdb_reads_the_published_file(tmp_path: Path) -> None:
    """DuckDB 1.1.3 from PyPI in a throwaway venv (scripts/check_bi_compat.sh) reads every view
    (the oldest claimed, 1.0.0, installed by `make install`: tests/test_mart_docs.py)."""
    db = make_marts_db(tmp_path / "build.duckdb", CLEAN_TABLES)
    version = publish(db, tmp_path / "published")
    result = subprocess.run(
        [
            "bash",
            str(PROJECT_ROOT / "scripts" / "check_bi_compat.sh"),
            str(version / PUBLISHED_DB_NAME),
            "1.1.3",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BI_COMPAT_VENV": str(tmp_path / "venv")},
    )
    assert result.returncode == 0, result.stderr
    assert "ok marts.dim_users: 5 rows" in result.stdout
    assert "duckdb 1.1.3 read 2 views" in result.stdout
