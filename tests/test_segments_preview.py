"""`segments preview` without dbt: the SQL rendered in Python is the SQL dbt compiles, and the
figures equal the built fct_segment_membership for every shipped segment (fixture warehouse)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURE_AS_OF, query, user_key

from personalization import dbt_runner, warm_dbt
from personalization.dbt_runner import Warehouse
from personalization.segments import preview, render


@pytest.fixture
def no_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any dbt invocation (or other child process) fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"preview started a process: {args}")

    monkeypatch.setattr(dbt_runner, "run_dbt", refuse)
    monkeypatch.setattr(warm_dbt, "run", refuse)  # the suite's warm dbt server
    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def compiled_sql(warehouse: Warehouse) -> str:
    assert warehouse.target_path is not None
    folder = warehouse.target_path / "compiled" / "personalization" / "models" / "marts"
    return (folder / "segments" / "fct_segment_membership.sql").read_text()


def test_rendered_sql_is_what_dbt_compiles(fixture_warehouse: Warehouse, no_dbt: None) -> None:
    """Same macros, same definitions, same as_of: the same SQL text, character for character."""
    definitions = preview.load_definitions(None)
    db_path = fixture_warehouse.db_path
    with duckdb.connect(str(db_path), read_only=True) as con:
        sql = render.render_membership_sql(
            definitions, preview.relation_resolver(con, db_path), {"as_of": FIXTURE_AS_OF}
        )
    assert sql == compiled_sql(fixture_warehouse)


def test_preview_equals_the_build_for_every_shipped_segment(
    fixture_warehouse: Warehouse, no_dbt: None
) -> None:
    built: dict[str, set[tuple[str, str]]] = {}
    for name, user, status in query(
        fixture_warehouse,
        "select segment_name, canonical_user_id, status from marts.fct_segment_membership",
    ):
        built.setdefault(name, set()).add((user, status))
    names = [segment["name"] for segment in preview.load_definitions(None)]
    assert len(names) >= 20
    non_empty = 0
    for name in names:
        expected = built.get(name, set())
        members = sorted(user for user, status in expected if status == "member")
        result = preview.preview_segment(name, fixture_warehouse.db_path, sample=1000)
        assert (result.size, result.pending) == (
            len(members),
            len(expected) - len(members),
        ), name
        assert result.sample == members, name
        shared = dict((segment, count) for segment, count, _ in result.overlap)
        assert shared.get(name, 0) == len(members), name
        non_empty += bool(members)
    assert non_empty >= 3  # the comparison is not between empty sets only


@pytest.mark.parametrize(
    ("as_of", "size", "u1_member"),
    [
        # new_visitors: first_seen_at within 7d; u1 was first seen at 2025-12-30 09:00:00
        ("2026-01-06T08:59:59Z", 10, True),  # one second inside the window
        ("2026-01-06T09:00:00Z", 9, False),  # exactly on the boundary: outside
        ("2026-01-08T10:00:00Z", 5, False),  # u2-u5 (2026-01-01 10:00) on the boundary
    ],
)
def test_preview_evaluates_at_the_given_as_of(
    fixture_warehouse: Warehouse, no_dbt: None, as_of: str, size: int, u1_member: bool
) -> None:
    """--as-of moves the windows, not the wall clock; the edge is exclusive as in a build."""
    result = preview.preview_segment(
        "new_visitors", fixture_warehouse.db_path, as_of=as_of, sample=100
    )
    assert (result.size, result.pending) == (size, 0)
    assert (user_key("u1") in result.sample) is u1_member


def test_preview_of_a_file_segment_and_its_errors(
    fixture_warehouse: Warehouse, tmp_path: Path, no_dbt: None
) -> None:
    """A new segment referencing a shipped one renders both; a typo gets a suggestion."""
    file = tmp_path / "new.yml"
    file.write_text(
        "- name: new_and_budget\n  description: d\n  owner: o\n  rule:\n    all:\n"
        "      - segment: new_visitors\n      - segment: budget_browsers_7d\n"
    )
    both = set.intersection(
        *(
            {
                user
                for (user,) in query(
                    fixture_warehouse,
                    "select canonical_user_id from marts.fct_segment_membership "
                    f"where segment_name = '{name}' and status = 'member'",
                )
            }
            for name in ("new_visitors", "budget_browsers_7d")
        )
    )
    result = preview.preview_segment("new_and_budget", fixture_warehouse.db_path, file)
    assert result.size == len(both) == 3
    assert set(result.sample) == both
    with pytest.raises(preview.PreviewError, match="did you mean 'new_visitors'"):
        preview.preview_segment("new_visitor", fixture_warehouse.db_path)
