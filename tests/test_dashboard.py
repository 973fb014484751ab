"""The quality history across builds, and the dashboard in a real headless browser.

One copy of the session's generated warehouse is rebuilt at a later as_of (segments and the
quality history only), so the pages show two builds: a trend, entries and exits. It is published
to a temporary folder, Streamlit serves it on a free port in its own process group, and the
system Chromium (driven by Playwright) opens every page: each must show rows and no error.
Screenshots go to $PERSONALIZATION_SCREENSHOTS (docs/images/ refreshes the README's) or tmp.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import make_warehouse, query

from personalization.clustering import write_cluster_pictures
from personalization.dashboard.app import PAGES
from personalization.dbt_runner import Warehouse, run_dbt
from personalization.publish import publish

CHROMIUM = Path(os.environ.get("PERSONALIZATION_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
APP = Path(__file__).parents[1] / "personalization" / "dashboard" / "app.py"
HISTORY = "marts.rpt_data_quality_history"


@dataclass(frozen=True)
class TwoBuilds:
    warehouse: Warehouse
    first_as_of: str
    second_as_of: str


def _later(iso: str, days: int) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def two_builds(
    generated_warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> TwoBuilds:
    """A copy of the generated warehouse, its segments and quality history rebuilt 2 days on."""
    root = tmp_path_factory.mktemp("dashboard_warehouse")
    shutil.copy(generated_warehouse.db_path, root / "warehouse.duckdb")
    first = str(generated_warehouse.as_of)
    second = _later(first, 2)
    warehouse = make_warehouse(root, generated_warehouse.landing_path, as_of=second)
    # rule evaluation onwards: windows ("last 24 hours") now end 2 days after the data, so users
    # leave segments and the membership history gets exits
    selection = ["fct_segment_membership+", "rpt_data_quality_history"]
    run_dbt(["build", "--select", *selection], warehouse)
    return TwoBuilds(warehouse, first, second)


def test_the_second_build_moved_segment_membership(two_builds: TwoBuilds) -> None:
    """The fixture the pages show has two builds with entries and exits (not a flat line)."""
    events = dict(
        query(
            two_builds.warehouse,
            "select event_type, count(*) from marts.fct_segment_events group by 1",
        )
    )
    assert events.get("entered", 0) > 0 and events.get("exited", 0) > 0, events


def test_quality_history_keeps_one_snapshot_per_build(two_builds: TwoBuilds) -> None:
    snapshots = query(
        two_builds.warehouse,
        f"select strftime(snapshot_at, '%Y-%m-%dT%H:%M:%SZ'), count(*) from {HISTORY} "
        "group by 1 order by 1",
    )
    (current,) = query(two_builds.warehouse, "select count(*) from marts.rpt_data_quality")[0]
    assert current > 10
    assert snapshots == [(two_builds.first_as_of, current), (two_builds.second_as_of, current)]
    # each snapshot holds exactly the figures of rpt_data_quality
    differing = query(
        two_builds.warehouse,
        f"""
        select count(*) from (
            select metric_group, metric_name, dimension, metric_value from marts.rpt_data_quality
            except
            select metric_group, metric_name, dimension, metric_value from {HISTORY}
            where snapshot_at = (select max(snapshot_at) from {HISTORY})
        )
        """,
    )
    assert differing == [(0,)]


def test_quality_history_rerun_at_the_same_as_of_replaces_its_snapshot(
    two_builds: TwoBuilds, tmp_path: Path
) -> None:
    root = tmp_path / "rerun"
    root.mkdir()
    shutil.copy(two_builds.warehouse.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, two_builds.warehouse.landing_path, two_builds.second_as_of)
    before = query(warehouse, f"select count(*) from {HISTORY}")
    run_dbt(["run", "--select", "rpt_data_quality_history"], warehouse)
    assert query(warehouse, f"select count(*) from {HISTORY}") == before
    assert query(warehouse, f"select count(distinct snapshot_at) from {HISTORY}") == [(2,)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"streamlit did not listen on {port} within {timeout} s")


@pytest.fixture(scope="module")
def dashboard_url(two_builds: TwoBuilds, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Streamlit serving the published copy of two_builds, in its own process group."""
    root = tmp_path_factory.mktemp("dashboard_published")
    publish(two_builds.warehouse.db_path, root / "published")
    pictures = write_cluster_pictures(two_builds.warehouse.db_path, root / "pictures")
    assert pictures, "the generated warehouse has clusters to draw"
    port = _free_port()
    env = {
        **os.environ,
        "PERSONALIZATION_PUBLISHED_DB": str(root / "published" / "current" / "published.duckdb"),
        "PERSONALIZATION_PICTURES": str(root / "pictures"),
    }
    command = [
        *(sys.executable, "-m", "streamlit", "run", str(APP)),
        *("--server.address", "127.0.0.1", "--server.port", str(port)),
        *("--server.headless", "true", "--browser.gatherUsageStats", "false"),
    ]
    log = (root / "streamlit.log").open("w")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PERSONALIZATION_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


ROWS = re.compile(r"([\d,]+) rows from (?:marts|publish_meta)\.(\w+)")
ERROR_TEXT = re.compile(
    r"Traceback|Error|exception|no rows in|not found|does not seem to exist", re.IGNORECASE
)


def test_every_page_renders_data_in_a_browser(
    dashboard_url: str, two_builds: TwoBuilds, tmp_path: Path
) -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright

    shots = _screenshot_dir(tmp_path)
    seen: dict[str, dict[str, int]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path in ["", *PAGES]:
            page.goto(f"{dashboard_url}/{path}")
            page.get_by_text(re.compile(r"rows from (marts|publish_meta)\.")).first.wait_for(
                timeout=60_000
            )
            # wait for the script run to end (the status widget shows "Running..." until then)
            page.wait_for_function(
                "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
            )
            page.wait_for_timeout(1500)  # charts draw after the data arrives
            text = page.locator("body").inner_text()  # dialogs (page not found) included
            assert page.locator("[data-testid='stException']").count() == 0, text
            assert not ERROR_TEXT.search(text), f"/{path}: {ERROR_TEXT.search(text)}\n{text}"
            seen[path] = {m[1]: int(m[0].replace(",", "")) for m in ROWS.findall(text)}
            name = path or "overview"
            page.screenshot(path=str(shots / f"dashboard_{name}.png"), full_page=True)
        browser.close()
    assert set(seen) == {"", *PAGES}
    # the pages show both builds: sizes per (build, segment), every quality figure per build
    ((segments,),) = query(two_builds.warehouse, "select count(*) from marts.dim_segments")
    ((figures,),) = query(two_builds.warehouse, "select count(*) from marts.rpt_data_quality")
    assert seen["segments"]["fct_segment_membership_history"] == 2 * segments
    assert seen["quality"]["rpt_data_quality_history"] == 2 * figures
    assert all(counts and min(counts.values()) > 0 for counts in seen.values()), seen
    assert {
        "fct_segment_membership_history",
        "fct_segment_events",
        "rpt_segment_overlap",
        "dim_clusters",
        "rpt_data_quality_history",
        "rpt_event_volume_daily",
        "rpt_segment_composition_audit",
        "row_counts",
    } <= {mart for counts in seen.values() for mart in counts}
