"""Clustering beyond browsing data: the real purchase-only CDNOW sample and the generator's
purchase-only mode (both built with dbt), and a small hand-written purchase-only fixture.
Checked: the feature set chosen, every persona claim true, every user assigned (the unclustered
share reported), identical output from a second build whatever the row order."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from clustering_checks import assert_everyone_assigned_once, false_claims
from conftest import make_warehouse

from personalization import cli
from personalization.clustering import (
    ClusteringConfig,
    assign_clusters,
    describe_clusters,
    quality_report,
)
from personalization.dbt_runner import run_dbt
from personalization.generator.cdnow import CdnowFormatError, convert_cdnow

CDNOW_SAMPLE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow" / "CDNOW_sample.txt"
)
CONFIG = ClusteringConfig()
TABLES = {
    "vectors": "intermediate.int_user_behaviour_vectors",
    "assignments": "marts.fct_user_clusters",
    "clusters": "marts.dim_clusters",
    "quality": "marts.rpt_cluster_quality",
    "profiles": "marts.dim_user_profiles",
}
# the clustering marts, the profiles and everything upstream, with their tests (segments and
# the other marts are not needed here)
SELECTION = ["+rpt_cluster_quality", "+dim_user_profiles"]


def build_and_read(root: Path, as_of: str) -> dict[str, pd.DataFrame]:
    """The tables of TABLES after a dbt build, and the build's log (key "log")."""
    warehouse = make_warehouse(root, root / "landing", as_of=as_of)
    build = run_dbt(["build", "--select", *SELECTION], warehouse)
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        tables = {key: con.sql(f"select * from {table}").df() for key, table in TABLES.items()}
    return {**tables, "log": pd.DataFrame({"line": build.stdout.splitlines()})}


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    if not CDNOW_SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {CDNOW_SAMPLE}")
    root = tmp_path_factory.mktemp("cdnow")
    manifest = convert_cdnow(CDNOW_SAMPLE, root / "landing")
    assert (manifest["rows"], manifest["customers"]) == (6919, 2357)
    return build_and_read(root, str(manifest["as_of"]))


@pytest.fixture(scope="module")
def purchase_only(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("purchase_only")
    args = ["--events=100000", "--users=600", "--days=30", "--seed=7", "--purchase-only"]
    assert cli.main(["generate", "--quiet", f"--out={root / 'landing'}", *args]) == 0
    return build_and_read(root, "2026-01-31T00:00:00Z")


def test_cdnow_features_personas_and_everyone_assigned(cdnow):
    vectors, assignments, quality = cdnow["vectors"], cdnow["assignments"], cdnow["quality"]
    assert len(vectors) == len(cdnow["profiles"]) == 2357
    assert_everyone_assigned_once(cdnow["profiles"], assignments)
    for row in quality.itertuples():
        # recency, frequency, monetary value and basket size; browsing features are gone
        assert row.features_used.startswith("recency_days, orders, revenue, basket_units_per_order")
        dropped = row.features_dropped
        assert "orders_per_checkout: undefined for 100% of users" in dropped
        assert "page_and_screen_views_per_session: constant (0 for every user)" in dropped
        assert "sessions: near-duplicate of orders" in dropped
        # 1,969 customers (83.5%) bought fewer than 5 times: explicitly not clustered
        unclustered = int((~vectors["is_clusterable"]).sum())
        assert unclustered == 1969 and row.n_insufficient_data == unclustered
        assert row.share_insufficient_data == pytest.approx(unclustered / 2357)
        assert row.silhouette_by_k.count("k=") == 6  # k = 3..8, every one reported
    # Ward's best silhouette on CDNOW is weak (0.233 < 0.25): the dbt test (a Dagster asset
    # check) warns
    assert quality["is_weak_structure"].any()
    warned = cdnow["log"]["line"].str.contains("Warning in test cluster_structure_weak").any()
    assert warned
    # no checkout events, everybody bought: no persona may say otherwise
    names = " ".join(cdnow["clusters"]["cluster_name"]).lower()
    assert "non-buyers" not in names and "checkout" not in names
    assert false_claims(vectors, assignments) == []


def test_cdnow_second_build_is_identical(cdnow):
    """A second build from the same events, rows arriving in another order: the same
    assignments, k and names as the dbt build."""
    shuffled = cdnow["vectors"].sample(frac=1.0, random_state=11).reset_index(drop=True)
    again = assign_clusters(shuffled, CONFIG)
    key = ["method", "canonical_user_id"]
    built = cdnow["assignments"].sort_values(key).reset_index(drop=True)
    again = again.sort_values(key).reset_index(drop=True)
    columns = ["method", "canonical_user_id", "cluster_id", "cluster_name"]
    pd.testing.assert_frame_equal(built[columns], again[columns], check_dtype=False)
    clusters = describe_clusters(shuffled, again, CONFIG)
    report = quality_report(shuffled, again, clusters, CONFIG, "1998-07-01T00:00:00Z")
    built_quality = cdnow["quality"].sort_values("method").reset_index(drop=True)
    report = report.sort_values("method").reset_index(drop=True)
    assert report["k"].tolist() == built_quality["k"].tolist()
    assert report["silhouette_by_k"].tolist() == built_quality["silhouette_by_k"].tolist()


def purchase_only_fixture() -> pd.DataFrame:
    """A small real-shaped purchase-only table (no browsing, no checkout events): 60 frequent
    big spenders, 60 occasional small buyers who lapsed, 60 recent one-basket bulk buyers; 20
    users who only sent identify calls (no behaviour at all)."""
    rng = np.random.default_rng(5)
    rows = []
    groups = [
        ("f", 60, (10, 14), (40, 60), (1, 3), (1, 10)),
        ("o", 60, (5, 6), (10, 15), (1, 2), (200, 300)),
        ("b", 60, (5, 6), (30, 40), (6, 9), (1, 20)),
    ]
    for prefix, n, orders, aov, units, recency in groups:
        for i in range(n):
            o = int(rng.integers(*orders, endpoint=True))
            rows.append(
                {
                    "canonical_user_id": f"{prefix}{i:03d}",
                    "recency_days": float(rng.uniform(*recency)),
                    "orders": o,
                    "revenue": o * float(rng.uniform(*aov)),
                    "basket_units_per_order": float(rng.uniform(*units)),
                    "sessions": o,
                    "orders_per_checkout": np.nan,
                    "is_clusterable": True,
                }
            )
    for i in range(20):
        rows.append({"canonical_user_id": f"i{i:03d}", "orders": 0, "sessions": 0})
    frame = pd.DataFrame(rows)
    for feature in CONFIG.features:
        if feature not in frame.columns:
            frame[feature] = 0.0
    frame["is_clusterable"] = frame["is_clusterable"].eq(True)
    return frame


def test_hand_written_purchase_only_fixture():
    vectors = purchase_only_fixture()
    assignments = assign_clusters(vectors, CONFIG)
    clusters = describe_clusters(vectors, assignments, CONFIG)
    report = quality_report(vectors, assignments, clusters, CONFIG, "2026-01-03T00:00:00Z")
    assert_everyone_assigned_once(vectors, assignments)
    assert (
        report["features_used"].tolist()
        == ["recency_days, orders, revenue, basket_units_per_order"] * 2
    )
    assert "sessions: near-duplicate of orders (r=1.00)" in report["features_dropped"][0]
    assert report["share_insufficient_data"].tolist() == pytest.approx([20 / 200] * 2)
    identify_only = assignments[assignments["canonical_user_id"].str.startswith("i")]
    assert (identify_only["cluster_name"] == "insufficient_data").all()
    assert false_claims(vectors, assignments) == []
    kmeans = assignments[(assignments["method"] == "kmeans") & (assignments["cluster_id"] >= 0)]
    assert report.loc[report["method"] == "kmeans", "k"].item() == 3
    by_group = kmeans.groupby(kmeans["canonical_user_id"].str[0])["cluster_name"].agg(set)
    assert all(len(names) == 1 for names in by_group)  # each planted group is one cluster
    assert "Repeat buyers" in next(iter(by_group["f"]))
    assert "Lapsed" in next(iter(by_group["o"])) or "lapsed" in next(iter(by_group["o"]))
    assert "arge baskets" in next(iter(by_group["b"]))


def test_cdnow_converter_rejects_bad_lines(tmp_path):
    source = tmp_path / "cdnow.txt"
    source.write_text(" 00001 19970101  2   29.33\n 00002 1997-01-02  1  10.00\n")
    with pytest.raises(CdnowFormatError, match="line 2"):
        convert_cdnow(source, tmp_path / "landing")


def test_generated_purchase_only_data(purchase_only):
    """The generator without browsing: recency, frequency, monetary and basket features, true
    personas, everyone assigned."""
    vectors, assignments = purchase_only["vectors"], purchase_only["assignments"]
    assert (vectors["page_views"] + vectors["product_views"] + vectors["cart_adds"]).sum() == 0
    assert_everyone_assigned_once(purchase_only["profiles"], assignments)
    for row in purchase_only["quality"].itertuples():
        assert row.features_used.startswith("recency_days, orders, revenue, basket_units_per_order")
        assert "orders_per_checkout: undefined for 100% of users" in row.features_dropped
        assert "sessions: near-duplicate of orders" in row.features_dropped
        assert row.n_clustered >= 50
        assert row.share_insufficient_data == pytest.approx(
            (~vectors["is_clusterable"]).sum() / len(vectors)
        )
    assert false_claims(vectors, assignments) == []
