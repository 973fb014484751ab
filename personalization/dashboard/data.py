"""The dashboard's queries: each returns a DataFrame read from the published snapshot.

Kept apart from the Streamlit pages so they can be tested on known inputs without a browser.
Every connection is read-only: the published file is shared with BI tools and notebooks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from personalization.tracking_plan import PROJECT_ROOT

PUBLISHED_ENV = "PERSONALIZATION_PUBLISHED_DB"
PICTURES_ENV = "PERSONALIZATION_PICTURES"
DEFAULT_PUBLISHED = PROJECT_ROOT / "data" / "published" / "current" / "published.duckdb"
DEFAULT_PICTURES = PROJECT_ROOT / "data" / "reports"


def published_db() -> Path:
    """The published DuckDB file: $PERSONALIZATION_PUBLISHED_DB or data/published/current."""
    return Path(os.environ.get(PUBLISHED_ENV) or DEFAULT_PUBLISHED)


def pictures_dir() -> Path:
    """Where the demo writes cluster pictures: $PERSONALIZATION_PICTURES or data/reports."""
    return Path(os.environ.get(PICTURES_ENV) or DEFAULT_PICTURES)


@contextmanager
def connect(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection; a missing file is a clear error, not an empty new database."""
    if not db_path.exists():
        raise FileNotFoundError(
            f"no published snapshot at {db_path}: run `make demo` or `personalization publish`"
        )
    with duckdb.connect(str(db_path), read_only=True) as con:
        yield con


def _frame(db_path: Path, sql: str) -> pd.DataFrame:
    with connect(db_path) as con:
        return con.sql(sql).df()


def published_version(db_path: Path) -> pd.DataFrame:
    """Which publish this is (version_id, published_at, source_db): publish_meta.version_info."""
    return _frame(db_path, "select * from publish_meta.version_info")


def row_counts(db_path: Path) -> pd.DataFrame:
    """Rows of every published mart at publish time: publish_meta.row_counts."""
    return _frame(
        db_path, "select table_name, row_count from publish_meta.row_counts order by table_name"
    )


def segment_sizes_over_time(db_path: Path) -> pd.DataFrame:
    """Members of each segment at every build that changed a membership (from the spells)."""
    return _frame(
        db_path,
        """
        with builds as (
            select distinct event_at as built_at from marts.fct_segment_events
        ),
        segments as (select distinct segment_name from marts.dim_segments)
        select
            builds.built_at,
            segments.segment_name,
            count(history.canonical_user_id) as members
        from builds
        cross join segments
        left join marts.fct_segment_membership_history as history
            on history.segment_name = segments.segment_name
            and history.valid_from <= builds.built_at
            and (history.valid_to is null or history.valid_to > builds.built_at)
        group by all
        order by built_at, segment_name
        """,
    )


def segment_events_per_day(db_path: Path) -> pd.DataFrame:
    """Entries and exits per day and segment (exits negative, for a diverging bar chart)."""
    return _frame(
        db_path,
        """
        select
            cast(event_at as date) as event_date,
            segment_name,
            count(*) filter (where event_type = 'entered') as entered,
            count(*) filter (where event_type = 'exited') as exited
        from marts.fct_segment_events
        group by all
        order by event_date, segment_name
        """,
    )


def overlap_matrix(db_path: Path) -> pd.DataFrame:
    """Jaccard overlap of every pair of segments, as a square matrix (both halves filled)."""
    pairs = _frame(
        db_path,
        """
        select segment_a, segment_b, jaccard from marts.rpt_segment_overlap
        union all
        select segment_b, segment_a, jaccard from marts.rpt_segment_overlap
        """,
    )
    names = sorted(set(pairs["segment_a"]) | set(pairs["segment_b"]))
    matrix = pairs.pivot_table(
        index="segment_a", columns="segment_b", values="jaccard", aggfunc="first"
    ).reindex(index=names, columns=names)
    for name in names:
        matrix.loc[name, name] = 1.0
    matrix.index.name = matrix.columns.name = None
    return matrix


def clusters(db_path: Path) -> pd.DataFrame:
    """Every cluster's persona, size and share, per method (cluster -1 = not clustered)."""
    return _frame(db_path, "select * from marts.dim_clusters order by method, size desc")


def cluster_quality(db_path: Path) -> pd.DataFrame:
    return _frame(db_path, "select * from marts.rpt_cluster_quality order by method")


def quality_history(db_path: Path) -> pd.DataFrame:
    """Every data-quality figure at every build (rpt_data_quality_history)."""
    return _frame(
        db_path,
        """
        select snapshot_at, metric_group, metric_name, dimension, metric_value
        from marts.rpt_data_quality_history
        order by snapshot_at, metric_group, metric_name, dimension
        """,
    )


def event_volume(db_path: Path) -> pd.DataFrame:
    return _frame(db_path, "select * from marts.rpt_event_volume_daily order by event_date")


def bias_audit(db_path: Path, flagged_only: bool = False) -> pd.DataFrame:
    """The composition audit; with flagged_only, the cells failing the four-fifths rule."""
    where = "where is_four_fifths_flag" if flagged_only else ""
    return _frame(
        db_path,
        f"""
        select * from marts.rpt_segment_composition_audit {where}
        order by group_type, group_name, attribute_name, attribute_value
        """,
    )
