"""The dashboard's queries on a tiny hand-made published file: known spells, known figures."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from personalization.dashboard import data


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard_data") / "published.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.dim_segments as
            select * from (values ('active'), ('buyers'), ('empty')) as t(segment_name)
            """
        )
        # builds on day 1, 2, 3: u1 in active from day 1 to day 3 (exits at 3), u2 from day 2,
        # u3 in buyers from day 1; nobody ever in `empty`
        con.execute(
            """
            create table marts.fct_segment_membership_history as
            select segment_name, canonical_user_id,
                cast(valid_from as timestamp) as valid_from,
                cast(valid_to as timestamp) as valid_to
            from (values
                ('active', 'u1', '2026-01-01', '2026-01-03'),
                ('active', 'u2', '2026-01-02', null),
                ('buyers', 'u3', '2026-01-01', null)
            ) as t(segment_name, canonical_user_id, valid_from, valid_to)
            """
        )
        con.execute(
            """
            create table marts.fct_segment_events as
            select segment_name, canonical_user_id, 'entered' as event_type,
                valid_from as event_at
            from marts.fct_segment_membership_history
            union all
            select segment_name, canonical_user_id, 'exited', valid_to
            from marts.fct_segment_membership_history where valid_to is not null
            """
        )
        con.execute(
            """
            create table marts.rpt_segment_overlap as
            select * from (values ('active', 'buyers', 0.25), ('active', 'empty', 0.0),
                ('buyers', 'empty', 0.0)) as t(segment_a, segment_b, jaccard)
            """
        )
        con.execute(
            """
            create table marts.rpt_segment_composition_audit as
            select * from (values
                ('segment', 'active', 'gender', 'female', true),
                ('segment', 'active', 'gender', 'male', false)
            ) as t(group_type, group_name, attribute_name, attribute_value, is_four_fifths_flag)
            """
        )
    return path


def test_segment_sizes_count_open_spells_at_each_build(published: Path) -> None:
    sizes = data.segment_sizes_over_time(published)
    got = {(str(row.built_at.date()), row.segment_name): row.members for row in sizes.itertuples()}
    assert got == {
        ("2026-01-01", "active"): 1,
        ("2026-01-01", "buyers"): 1,
        ("2026-01-01", "empty"): 0,
        ("2026-01-02", "active"): 2,
        ("2026-01-02", "buyers"): 1,
        ("2026-01-02", "empty"): 0,
        # u1's spell closed at day 3: valid_to is exclusive
        ("2026-01-03", "active"): 1,
        ("2026-01-03", "buyers"): 1,
        ("2026-01-03", "empty"): 0,
    }


def test_entries_and_exits_per_day(published: Path) -> None:
    events = data.segment_events_per_day(published)
    got = {
        (str(row.event_date.date()), row.segment_name): (row.entered, row.exited)
        for row in events.itertuples()
    }
    assert got == {
        ("2026-01-01", "active"): (1, 0),
        ("2026-01-01", "buyers"): (1, 0),
        ("2026-01-02", "active"): (1, 0),
        ("2026-01-03", "active"): (0, 1),
    }


def test_overlap_matrix_is_symmetric_with_a_unit_diagonal(published: Path) -> None:
    matrix = data.overlap_matrix(published)
    assert list(matrix.index) == ["active", "buyers", "empty"]
    assert list(matrix.columns) == ["active", "buyers", "empty"]
    assert matrix.loc["active", "buyers"] == matrix.loc["buyers", "active"] == 0.25
    assert [matrix.loc[n, n] for n in matrix.index] == [1.0, 1.0, 1.0]


def test_bias_audit_flagged_only(published: Path) -> None:
    assert len(data.bias_audit(published)) == 2
    flagged = data.bias_audit(published, flagged_only=True)
    assert list(flagged["attribute_value"]) == ["female"]


def test_a_missing_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.duckdb"
    with pytest.raises(FileNotFoundError, match="make demo"):
        data.event_volume(missing)
    assert not missing.exists()  # read-only: no empty database left behind
