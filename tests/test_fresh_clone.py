"""A fresh clone, as a newcomer has it, after `make demo` (small data; tests/sandbox.py): the
repository stays clean, and every command in the README's ```sh blocks works as written.

The README's blocks run in a copy of the checkout after the demo. Each block runs as one bash
script (-e, pipefail), in README order, so an `export` holds for the lines after it. A line that
cannot run here is listed in NOT_RUN with the reason; a listed line the README no longer has fails
the test, so the list cannot go stale. Generated files go to ignored folders, and the pictures
the README shows are tracked where `make clean` leaves them.

One module, so the demo runs once per suite also when test files are spread over workers; the
git-status tests come first, before the README's commands write into the same copy.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from sandbox import demo_sandbox, git, make_sandbox, porcelain, run

from personalization.tracking_plan import PROJECT_ROOT

NOT_RUN = {
    "make demo": "300k events (about 90 s): the fixture runs this target with DEMO_EVENTS=6000",
    "make test": "the whole suite, which this test is part of",
    "make dashboard": "a server that runs until stopped: tests/test_dashboard.py starts the same "
    "app and opens every page in Chromium",
    "make ui": "a server that runs until stopped: test_dagster_dev_parses_the_dbt_project loads "
    "its code location as `dagster dev` does",
    "make docs": "a server that runs until stopped: `dbt docs generate` below builds its files",
    "make worker": "a worker that runs until stopped: tests/test_worker.py runs the same command's "
    "worker process, lands files and stops it with SIGTERM",
    ".venv/bin/personalization generate --events 1000000 --users 20000 --days 30 --seed 1 "
    "--out data/big_landing": "a million events (hundreds of MB); the 20,000-event line above "
    "runs the same command",
}
SERVE = (
    "needs `make serve` running (a server that runs until stopped): tests/test_collector.py and "
    "tests/test_profile_api.py send the same requests to both services"
)
NOT_RUN |= {
    "curl -u dev-write-key: -H 'Content-Type: application/json' "
    "http://127.0.0.1:8088/v1/track \\": SERVE,
    '-d \'{"userId": "u1", "event": "Product Viewed", "properties": '
    '{"product_id": "P00133", "category": "furniture", "price": 120}}\'': SERVE,
    "curl -H 'Authorization: Bearer dev-read-key' http://127.0.0.1:8089/v1/profiles/u1": SERVE,
}
README_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)


def command_of(line: str) -> str:
    """The command of a README line, without its trailing comment (# after two spaces)."""
    return re.split(r"\s{2,}#", line.strip(), maxsplit=1)[0].strip()


def readme_blocks(text: str) -> list[list[str]]:
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in SH_BLOCK.findall(text)
    ]


def test_every_not_run_line_is_in_the_readme_with_a_reason() -> None:
    commands = {command_of(line) for block in readme_blocks(_readme()) for line in block}
    assert set(NOT_RUN) <= commands, set(NOT_RUN) - commands
    assert all(reason for reason in NOT_RUN.values())


def _readme() -> str:
    return (PROJECT_ROOT / "README.md").read_text()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    return demo_sandbox(tmp_path_factory.getbasetemp() / "demo_sandbox")


def test_make_demo_leaves_git_status_clean(demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    checkout, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "conservation" in result.stdout and ": ok" in result.stdout
    # it did write: the warehouse, the published marts and the cluster pictures, all ignored
    assert (checkout / "data" / "warehouse.duckdb").is_file()
    assert (checkout / "data" / "published" / "current" / "published.duckdb").is_file()
    assert sorted(p.name for p in (checkout / "data" / "reports").glob("*.png"))
    assert porcelain(checkout) == ""


def test_demo_shows_dbt_progress(demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    """dbt's per-node lines are streamed while it builds, before the summary."""
    _, result = demo
    done = re.findall(r"personalization\.dbt: .*\b(\d+) of (\d+) (OK|PASS)", result.stderr)
    # the build's nodes ("12 of 230 OK"); the on-run hooks count apart ("1 of 1 OK hook")
    total = max(int(of) for _, of, _ in done)
    assert total > 100 and sum(int(of) == total for _, of, _ in done) > 100
    assert "Done. PASS=" in result.stderr


# run in the copy: what the demo recorded in Dagster's instance, against the definitions and
# the warehouse (JSON on the last line)
DAGSTER_RECORD_PROBE = """
import json
import dagster as dg
import duckdb
from dagster_dbt.asset_utils import get_asset_check_key_for_test
from orchestration.dbt_assets import TRANSLATOR
from orchestration.definitions import defs

manifest = json.load(open("target/manifest.json"))
nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")]
graph = defs.resolve_asset_graph()
with dg.DagsterInstance.from_config("data/dagster") as instance:
    recorded = {}
    for node in nodes:
        key = TRANSLATOR.get_asset_spec(manifest, node["unique_id"], None).key
        event = instance.get_latest_materialization_event(key)
        if key in graph.get_all_asset_keys() and event is not None:
            metadata = event.asset_materialization.metadata
            recorded[key.to_user_string()] = {
                "unique_id": metadata["dbt unique_id"].value,
                "rows": metadata["dagster/row_count"].value
                if "dagster/row_count" in metadata else None,
                "columns": [c.name for c in metadata["dagster/column_schema"].schema.columns],
            }
    checks = [
        get_asset_check_key_for_test(manifest, TRANSLATOR, test_id, None)
        for test_id, test in manifest["nodes"].items() if test_id.startswith("test.")
        # the folded key guards run on sensor batches only (docs/orchestration.md)
        and (test.get("test_metadata") or {}).get("name") != "guard_keys"
    ]
    checks = [c for c in checks if c is not None]
    executions = instance.event_log_storage.get_latest_asset_check_execution_by_key(checks)
with duckdb.connect("data/warehouse.duckdb", read_only=True) as warehouse:
    rows = warehouse.execute("select count(*) from marts.dim_user_profiles").fetchone()[0]
    columns = [r[0] for r in warehouse.execute(
        "select column_name from information_schema.columns where table_schema = 'marts' "
        "and table_name = 'dim_user_profiles' order by ordinal_position").fetchall()]
print(json.dumps({
    "models": {n["unique_id"]: TRANSLATOR.get_asset_spec(manifest, n["unique_id"], None)
               .key.to_user_string() for n in nodes},
    "recorded": recorded, "checks": len(checks), "executed": len(executions),
    "profiles": {"rows": rows, "columns": columns},
}))
"""


def test_demo_build_is_shown_in_dagster(
    demo: tuple[Path, subprocess.CompletedProcess], tmp_path: Path
) -> None:
    """`make ui` after `make demo` shows the demo's build: every model and seed materialised
    with its dbt id, columns and row count, and every dbt test's check result."""
    checkout, result = demo
    probe = tmp_path / "probe.py"
    probe.write_text(DAGSTER_RECORD_PROBE)
    outcome = run(checkout, f".venv/bin/python {probe}")
    assert outcome.returncode == 0, outcome.stderr[-4000:]
    found = json.loads(outcome.stdout.splitlines()[-1])
    models, recorded = found["models"], found["recorded"]
    assert len(models) > 40
    assert {key: recorded[key]["unique_id"] for key in models.values()} == {
        key: unique_id for unique_id, key in models.items()
    }
    profiles = recorded["marts/dim_user_profiles"]
    assert profiles["rows"] == found["profiles"]["rows"] > 0
    assert profiles["columns"] == found["profiles"]["columns"]
    assert found["checks"] > 100 and found["executed"] == found["checks"]
    said = re.search(r"(\d+) assets materialised, (\d+) check results", result.stdout)
    assert said is not None, result.stdout[-2000:]
    assert (int(said[1]), int(said[2])) == (len(models), found["checks"])


def test_make_clean_keeps_tracked_files_and_readme_images(tmp_path: Path) -> None:
    checkout = make_sandbox(tmp_path)
    for generated in ("data/reports/clusters_kmeans_pca.png", "target/manifest.json"):
        (checkout / generated).parent.mkdir(parents=True, exist_ok=True)
        (checkout / generated).write_text("generated")
    result = run(checkout, "make clean")
    assert result.returncode == 0, result.stderr
    assert not (checkout / "data").exists() and not (checkout / "target").exists()
    assert porcelain(checkout) == ""
    images = README_IMAGE.findall((checkout / "README.md").read_text())
    assert images, "the README embeds pictures"
    tracked = set(git(checkout, "ls-files").split())
    for image in images:
        assert image in tracked and (checkout / image).is_file(), image


def test_readme_commands_run_as_written(demo: tuple[Path, subprocess.CompletedProcess]) -> None:
    checkout, result = demo
    assert result.returncode == 0, result.stderr[-3000:]
    ran: list[str] = []
    printed = ""
    for block in readme_blocks((checkout / "README.md").read_text()):
        script = [line for line in block if command_of(line) not in NOT_RUN]
        if not script:
            continue
        outcome = run(checkout, "\n".join(script))
        assert outcome.returncode == 0, (
            "README block failed:\n" + "\n".join(script) + "\n" + outcome.stderr[-4000:]
        )
        ran += [command_of(line) for line in script]
        printed += outcome.stdout
    # what the blocks print and write is real: the shell's answer, dbt's files, a publish
    assert any(c.startswith(".venv/bin/dbt docs generate") for c in ran)
    assert (checkout / "target" / "index.html").is_file()
    assert (checkout / "data" / "my_published" / "current" / "published.duckdb").exists()
    assert any(c.startswith(".venv/bin/duckdb -readonly") for c in ran)
    assert "segment_name" in printed and "metric_group" in printed
    assert ".venv/bin/dbt build" in ran and ".venv/bin/dbt source freshness" in ran


def test_dagster_dev_parses_the_dbt_project(
    demo: tuple[Path, subprocess.CompletedProcess],
) -> None:
    """`make ui` runs no `dbt parse` first: under `dagster dev` (DAGSTER_IS_DEV_CLI) loading the
    code location parses the project (DbtProject.prepare_if_dev), with dbt not on PATH."""
    checkout, _ = demo
    manifest = checkout / "target" / "manifest.json"
    manifest.unlink(missing_ok=True)
    outcome = run(
        checkout,
        "env PATH=/usr/bin:/bin DAGSTER_IS_DEV_CLI=1 .venv/bin/python -c 'import "
        "orchestration.definitions as d; print(len(list(d.defs.resolve_all_asset_keys())))'",
    )
    assert outcome.returncode == 0, outcome.stderr[-4000:]
    assert manifest.is_file()
    assert int(outcome.stdout.split()[-1]) > 40
