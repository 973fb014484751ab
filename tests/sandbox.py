"""A throw-away copy of the working tree as a fresh git clone would have it, for tests that run
the project's own commands (make demo, make clean, the README's shell blocks) without touching
the real checkout's data/, target/ or tracked files.

The copy holds the files git would (tracked plus untracked-but-not-ignored), committed in a new
repository, so `git status --porcelain` there shows exactly what a command changed. The virtual
environment is shared by a symlink, and PYTHONPATH puts the copy's own `personalization` package
first, so its PROJECT_ROOT (and every default path under it) is the copy.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from personalization.tracking_plan import PROJECT_ROOT

# small enough for a test, large enough for every mart (clusters included) to have rows
SMALL_DEMO = {"DEMO_EVENTS": "6000", "DEMO_USERS": "200", "DEMO_DAYS": "7"}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def working_tree_files() -> list[str]:
    listed = git(PROJECT_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    return sorted({f for f in listed.split("\0") if f and (PROJECT_ROOT / f).is_file()})


def make_sandbox(root: Path) -> Path:
    """Copy the working tree to root/checkout (mtimes kept, so make sees .venv as up to date)."""
    checkout = root / "checkout"
    for name in working_tree_files():
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target)
    (checkout / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    # make must never reinstall into the shared environment from the copy: the copy's
    # pyproject.toml is as old as the last install
    installed = (PROJECT_ROOT / ".venv" / ".installed").stat().st_mtime
    os.utime(checkout / "pyproject.toml", (installed - 1, installed - 1))
    git(checkout, "init", "--quiet")
    git(checkout, "add", "--all")
    git(
        checkout,
        *("-c", "user.name=test", "-c", "user.email=test@example.com"),
        *("commit", "--quiet", "--no-verify", "-m", "sandbox"),
    )
    return checkout


def sandbox_env(checkout: Path) -> dict[str, str]:
    """The environment a user of the copy would have: none of the project's overrides set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONALIZATION_", "DBT_"))}
    return {**env, "PYTHONPATH": str(checkout), "PERSONALIZATION_DUCKDB_MEMORY_LIMIT": "2GB"}


def run(checkout: Path, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a shell command in the copy with bash (-e, pipefail), output captured."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=checkout,
        env=sandbox_env(checkout),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def porcelain(checkout: Path) -> str:
    return git(checkout, "status", "--porcelain", "--untracked-files=all")


@functools.cache
def demo_sandbox(root: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A copy after `make demo` on small data (once per test session, shared by test modules)."""
    root.mkdir(parents=True, exist_ok=True)
    checkout = make_sandbox(root)
    size = " ".join(f"{k}={v}" for k, v in SMALL_DEMO.items())
    return checkout, run(checkout, f"make demo {size}")
