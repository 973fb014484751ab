"""Running the project leaves the repository as it was: generated files go to ignored folders,
and the pictures the README shows are tracked where `make clean` leaves them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from sandbox import demo_sandbox, git, make_sandbox, porcelain, run

README_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


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
