"""The Streamlit dashboard over the published marts: `make dashboard` (docs/dashboard.md).

One page per question: segments over time, segment overlap, clusters, data quality over builds,
event volume with anomalies, the bias audit. Every page reads the published snapshot read-only
and says how many rows it shows ("N rows from marts.x"), which the browser test checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.navigation.page import StreamlitPage

from personalization.dashboard import data

log = logging.getLogger(__name__)

# url path -> title; dbt exposures link to http://127.0.0.1:8501/<url path> (models/marts).
PAGES = {
    "segments": "Segments over time",
    "overlap": "Segment overlap",
    "clusters": "Clusters and personas",
    "quality": "Data quality over time",
    "volume": "Event volume",
    "bias": "Bias audit",
}


@st.cache_data(ttl=60, show_spinner=False)
def _load(name: str, db_path: str) -> pd.DataFrame:
    """A cached query of the data module by name (re-read at most once a minute)."""
    query: Callable[[Path], pd.DataFrame] = getattr(data, name)
    return query(Path(db_path))


def _rows(frame: pd.DataFrame, source: str) -> bool:
    """Say how many rows a page shows; False (and a warning) when there are none."""
    if frame.empty:
        st.warning(f"no rows in {source} yet: build and publish first")
        return False
    st.caption(f"{len(frame):,} rows from {source}")
    return True


def overview_page() -> None:
    st.header("Personalization: the published marts")
    db = str(data.published_db())
    version = _load("published_version", db)
    if not version.empty:
        row = version.iloc[0]
        st.write(f"Version `{row['version_id']}`, published {row['published_at']}.")
    for page in _pages().values():
        st.page_link(page)
    counts = _load("row_counts", db)
    if _rows(counts, "publish_meta.row_counts"):
        st.dataframe(counts, hide_index=True)


def segments_page() -> None:
    st.header(PAGES["segments"])
    db = str(data.published_db())
    sizes = _load("segment_sizes_over_time", db)
    st.subheader("Members at each build")
    if _rows(sizes, "marts.fct_segment_membership_history"):
        st.altair_chart(
            alt.Chart(sizes)
            .mark_line(point=True)
            .encode(
                x=alt.X("built_at:T", title="build (as_of)"),
                y=alt.Y("members:Q"),
                color="segment_name:N",
                tooltip=["built_at:T", "segment_name:N", "members:Q"],
            ),
            width="stretch",
        )
    events = _load("segment_events_per_day", db)
    st.subheader("Entries and exits per day")
    if _rows(events, "marts.fct_segment_events"):
        long = events.melt(
            id_vars=["event_date", "segment_name"],
            value_vars=["entered", "exited"],
            var_name="event_type",
            value_name="users",
        )
        long.loc[long["event_type"] == "exited", "users"] *= -1
        st.altair_chart(
            alt.Chart(long)
            .mark_bar()
            .encode(
                x=alt.X("event_date:T", title="day"),
                y=alt.Y("sum(users):Q", title="entered (+) / exited (-)"),
                color="event_type:N",
                tooltip=["event_date:T", "segment_name:N", "event_type:N", "users:Q"],
            ),
            width="stretch",
        )
        st.dataframe(events, hide_index=True)


def overlap_page() -> None:
    st.header(PAGES["overlap"])
    matrix = _load("overlap_matrix", str(data.published_db()))
    if _rows(matrix, "marts.rpt_segment_overlap"):
        st.write("Jaccard index of current members (shared / union); 1 on the diagonal.")
        cells = matrix.rename_axis("segment_a").reset_index()
        cells = cells.melt(id_vars="segment_a", var_name="segment_b", value_name="jaccard")
        base = alt.Chart(cells).encode(x="segment_b:N", y="segment_a:N")
        st.altair_chart(
            base.mark_rect().encode(color=alt.Color("jaccard:Q", scale=alt.Scale(domain=[0, 1])))
            + base.mark_text(fontSize=10).encode(text=alt.Text("jaccard:Q", format=".2f")),
            width="stretch",
        )


def clusters_page() -> None:
    st.header(PAGES["clusters"])
    db = str(data.published_db())
    quality = _load("cluster_quality", db)
    if _rows(quality, "marts.rpt_cluster_quality"):
        st.dataframe(quality, hide_index=True)
    personas = _load("clusters", db)
    if _rows(personas, "marts.dim_clusters"):
        for method, group in personas.groupby("method"):
            st.subheader(f"{method}")
            st.altair_chart(
                alt.Chart(group)
                .mark_bar()
                .encode(
                    x=alt.X("size:Q"),
                    y=alt.Y("cluster_name:N", sort="-x", title=None),
                    tooltip=["cluster_name:N", "size:Q", "share:Q", "distinguishing_features:N"],
                ),
                width="stretch",
            )
            shown = [c for c in group.columns if not c.startswith("centroid_")]
            st.dataframe(group[shown], hide_index=True)
    pictures = sorted(data.pictures_dir().glob("clusters_*.png"))
    if pictures:
        st.subheader("Pictures")
        for picture in pictures:
            st.image(str(picture), caption=picture.name)
    else:
        st.info(f"no cluster pictures in {data.pictures_dir()} (written by `make demo`)")


def quality_page() -> None:
    st.header(PAGES["quality"])
    history = _load("quality_history", str(data.published_db()))
    if not _rows(history, "marts.rpt_data_quality_history"):
        return
    builds = history["snapshot_at"].nunique()
    st.write(f"{builds} build(s) recorded; each build adds one snapshot of rpt_data_quality.")
    panels = {
        "quarantine": "Quarantined rows by reason",
        "trait_quarantine": "Trait values nulled by reason",
        "ingestion": "Ingestion (duplicates, totals)",
        "imputation": "Imputation",
        "freshness": "Freshness",
    }
    for group, title in panels.items():
        frame = history[history["metric_group"] == group]
        if frame.empty:
            continue
        st.subheader(title)
        frame = frame.assign(series=frame["metric_name"] + " / " + frame["dimension"])
        st.altair_chart(
            alt.Chart(frame)
            .mark_line(point=True)
            .encode(
                x=alt.X("snapshot_at:T", title="build (as_of)"),
                y=alt.Y("metric_value:Q", title=None),
                color=alt.Color("series:N", title=None),
                tooltip=["snapshot_at:T", "metric_name:N", "dimension:N", "metric_value:Q"],
            ),
            width="stretch",
        )


def volume_page() -> None:
    st.header(PAGES["volume"])
    volume = _load("event_volume", str(data.published_db()))
    if not _rows(volume, "marts.rpt_event_volume_daily"):
        return
    anomalies = int(volume["is_anomaly"].sum())
    st.metric("anomalous days", anomalies)
    base = alt.Chart(volume).encode(x=alt.X("event_date:T", title="day"))
    chart = base.mark_line().encode(y=alt.Y("events:Q")) + base.mark_line(
        strokeDash=[4, 4], color="gray"
    ).encode(y="baseline_events:Q")
    marked = volume[volume["is_anomaly"]]
    if not marked.empty:
        chart += (
            alt.Chart(marked)
            .mark_point(color="red", size=120, filled=True)
            .encode(x="event_date:T", y="events:Q", tooltip=["event_date:T", "volume_ratio:Q"])
        )
    st.altair_chart(chart, width="stretch")
    st.dataframe(volume, hide_index=True)


def bias_page() -> None:
    st.header(PAGES["bias"])
    audit = _load("bias_audit", str(data.published_db()))
    if not _rows(audit, "marts.rpt_segment_composition_audit"):
        return
    flagged = audit[audit["is_four_fifths_flag"]]
    st.metric("cells under the four-fifths rule", len(flagged))
    st.subheader("Flagged cells")
    if flagged.empty:
        st.write("No group under-represents any attribute value below 0.8.")
    else:
        st.dataframe(flagged, hide_index=True)
    st.subheader("Representation ratio per group (suppressed cells blank)")
    attribute = st.selectbox("attribute", sorted(audit["attribute_name"].unique()))
    cells = audit[audit["attribute_name"] == attribute]
    st.altair_chart(
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x="attribute_value:N",
            y="group_name:N",
            # 1 = represented as in the population: neutral; red below, blue above
            color=alt.Color(
                "representation_ratio:Q", scale=alt.Scale(scheme="redblue", domainMid=1)
            ),
            tooltip=["group_name:N", "attribute_value:N", "representation_ratio:Q"],
        ),
        width="stretch",
    )


def _pages() -> dict[str, StreamlitPage]:
    """The pages by url path (the overview, the default page, is served at /)."""
    functions = {
        "segments": segments_page,
        "overlap": overlap_page,
        "clusters": clusters_page,
        "quality": quality_page,
        "volume": volume_page,
        "bias": bias_page,
    }
    return {
        path: st.Page(functions[path], title=title, url_path=path) for path, title in PAGES.items()
    }


def main() -> None:
    st.set_page_config(page_title="personalization", layout="wide")
    st.sidebar.caption(f"published snapshot: {data.published_db()}")
    if not data.published_db().exists():
        st.error(
            f"No published snapshot at {data.published_db()}: run `make demo` (or "
            "`personalization publish` after a build), or set PERSONALIZATION_PUBLISHED_DB."
        )
        st.stop()
    overview = st.Page(overview_page, title="Overview", default=True)
    st.navigation([overview, *_pages().values()]).run()


if __name__ == "__main__":  # `streamlit run` executes this file as __main__
    main()
