"""personalization.clustering on known inputs and on generated data (archetype ground truth)."""

from __future__ import annotations

import time

import duckdb
import numpy as np
import pandas as pd
import pytest
from clustering_checks import assert_everyone_assigned_once, false_claims
from conftest import ground_truth
from sklearn.cluster import MiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from personalization.clustering import (
    ClusteringConfig,
    MemoryBudgetError,
    assign_clusters,
    describe_clusters,
    quality_report,
    write_cluster_pictures,
)
from personalization.clustering.features import (
    FeatureTransform,
    choose_features,
    nearest_centroid,
)
from personalization.clustering.hierarchical import fit_ward, ward_memory_bytes
from personalization.clustering.kmeans import _kmeans, choose_k, fit_kmeans, pick_k
from personalization.clustering.labels import drift_from_previous, stable_ids
from personalization.clustering.personas import persona_name, unique_names
from personalization.clustering.warehouse import fitted_at

CONFIG = ClusteringConfig()


@pytest.fixture(scope="module")
def vectors(generated_warehouse) -> pd.DataFrame:
    with duckdb.connect(str(generated_warehouse.db_path), read_only=True) as con:
        return con.sql(
            "select * from intermediate.int_user_behaviour_vectors order by canonical_user_id"
        ).df()


@pytest.fixture(scope="module")
def archetypes(generated_warehouse) -> dict[str, str]:
    """Of the users the shipped analytics policy profiles and clusters."""
    return {user: row["archetype"] for user, row in ground_truth(generated_warehouse).items()}


@pytest.fixture(scope="module")
def first_run(vectors) -> tuple[pd.DataFrame, pd.DataFrame]:
    assignments = assign_clusters(vectors, CONFIG)
    return assignments, describe_clusters(vectors, assignments, CONFIG)


def scaled(vectors: pd.DataFrame) -> np.ndarray:
    eligible = vectors[vectors["is_clusterable"]]
    return FeatureTransform.fit(eligible, CONFIG.features).transform(eligible)


# --- generated data: the Must-show figures -------------------------------------------------


@pytest.mark.parametrize("method", ["kmeans", "hierarchical"])
def test_clusters_recover_generator_archetypes(first_run, archetypes, method):
    """ARI >= 0.8 against the generator's archetypes (0.865 measured with seed 7; shared-device
    rows have no archetype of their own; users with too few events are cluster -1 and left
    out)."""
    assignments, _ = first_run
    rows = assignments[(assignments["method"] == method) & (assignments["cluster_id"] >= 0)]
    truth = rows["canonical_user_id"].map(archetypes)
    assert truth.notna().all()  # every clustered user is a ground-truth user
    keep = truth != "shared_device"
    assert keep.sum() >= 450
    ari = adjusted_rand_score(truth[keep], rows.loc[keep, "cluster_id"])
    assert ari >= 0.8, ari


def test_refits_with_different_seeds_agree(vectors):
    x = scaled(vectors)
    k = fit_kmeans(x, CONFIG).k
    labels = [fit_kmeans(x, CONFIG, k=k, seed=seed).labels for seed in (1, 2, 3)]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert adjusted_rand_score(labels[a], labels[b]) >= 0.9


def test_labels_stable_across_refit_on_slightly_changed_data(vectors, first_run):
    """5% of users gone, every count and amount jittered by up to 5%: with the previous run's
    centroids, at least 90% of the remaining users keep their cluster id."""
    assignments, clusters = first_run
    rng = np.random.default_rng(3)
    changed = vectors.sample(frac=0.95, random_state=3).reset_index(drop=True)
    numeric = [c for c in CONFIG.features if c in changed.columns]
    changed[numeric] = changed[numeric] * rng.uniform(0.95, 1.05, size=(len(changed), len(numeric)))
    again = assign_clusters(changed, CONFIG, previous_assignments=assignments)
    for method in ("kmeans", "hierarchical"):
        before = assignments[assignments["method"] == method].set_index("canonical_user_id")
        after = again[again["method"] == method].set_index("canonical_user_id")
        common = after.index
        same = (before.loc[common, "cluster_id"] == after["cluster_id"]).mean()
        assert same >= 0.9, (method, same)
    # the persona table of the refit reports how far each centroid moved: a little
    described = describe_clusters(changed, again, CONFIG, previous_clusters=clusters)
    shifts = described.loc[described["cluster_id"] >= 0, "drift_from_previous"]
    assert shifts.notna().all() and (shifts < 0.5).all()


def test_quality_report_on_generated_data(vectors, first_run):
    assignments, clusters = first_run
    report = quality_report(vectors, assignments, clusters, CONFIG, "2026-01-11T00:00:00Z")
    assert list(report["method"]) == ["kmeans", "hierarchical"]
    n_clustered = int(vectors["is_clusterable"].sum())
    assert (report["n_users"] == len(vectors)).all()
    assert (report["n_clustered"] == n_clustered).all()
    assert (report["silhouette"] > 0.2).all() and (report["davies_bouldin"] > 0).all()
    assert (report["stability_ari"] >= 0.9).all()
    assert report["drift_mean"].isna().all()  # a first run has nothing to drift from
    assert (report["fitted_at"] == pd.Timestamp("2026-01-11 00:00:00")).all()
    # the same run described against itself: no drift at all
    again = describe_clusters(vectors, assignments, CONFIG, previous_clusters=clusters)
    report = quality_report(vectors, assignments, again, CONFIG, "2026-01-11T00:00:00Z")
    assert report["drift_mean"].tolist() == pytest.approx([0.0, 0.0], abs=1e-3)


def test_personas_on_generated_data(vectors, first_run):
    assignments, clusters = first_run
    for method, group in clusters.groupby("method"):
        assert group["size"].sum() == len(vectors)
        assert group["share"].sum() == pytest.approx(1.0)
        assert group["cluster_name"].is_unique
        per_user = assignments[assignments["method"] == method]
        assert per_user["cluster_id"].value_counts().sort_index().tolist() == (
            group.sort_values("cluster_id")["size"].tolist()
        )
    # the big buyers' persona: named after buying, centroid orders far above the rest (revenue
    # itself is dropped on this data as a near-duplicate of orders, r = 0.97)
    kmeans = clusters[(clusters["method"] == "kmeans") & (clusters["cluster_id"] >= 0)]
    assert kmeans["centroid_revenue"].isna().all()
    top = kmeans.loc[kmeans["centroid_orders"].idxmax()]
    assert top["cluster_name"].startswith("Repeat buyers")
    assert top["centroid_orders"] > 5 * kmeans["centroid_orders"].drop(top.name).max()
    assert top["top_category"] in {"electronics", "computers", "furniture", "jewelry"}


def test_write_cluster_pictures(generated_warehouse, tmp_path):
    paths = write_cluster_pictures(generated_warehouse.db_path, tmp_path / "reports")
    assert sorted(p.name for p in paths) == [
        "clusters_hierarchical_heatmap.png",
        "clusters_hierarchical_pca.png",
        "clusters_kmeans_heatmap.png",
        "clusters_kmeans_pca.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


# --- memory guard ---------------------------------------------------------------------------


def test_memory_guard_rejects_oversized_ward_sample():
    """40k rows of Ward would need ~12 GB: a clear error before anything is allocated."""
    config = ClusteringConfig(ward_sample_size=40_000, memory_budget_mb=1_024)
    x = np.random.default_rng(0).normal(size=(50_000, 3))
    start = time.perf_counter()
    with pytest.raises(MemoryBudgetError, match=r"12,207 MB.*1,024 MB.*at most 11,585"):
        fit_ward(x, config)
    assert time.perf_counter() - start < 1.0
    assert ward_memory_bytes(40_000) == 12_800_000_000


def test_memory_guard_through_the_pipeline():
    vectors = blob_vectors(300)
    with pytest.raises(MemoryBudgetError):
        assign_clusters(vectors, blob_config(ward_sample_size=5_000, memory_budget_mb=0.5))
    # a sample below the budget: fine (300 rows need ~0.7 MB)
    config = blob_config(ward_sample_size=5_000, memory_budget_mb=1.0)
    assert len(assign_clusters(vectors, config)) == 600


# --- units on known inputs ------------------------------------------------------------------


def blob_vectors(n: int, centers: int = 4, seed: int = 0) -> pd.DataFrame:
    """Vectors whose log1p is four well-separated blobs, in the first three default features."""
    x, _ = make_blobs(n, n_features=3, centers=centers, cluster_std=0.3, random_state=seed)
    values = np.expm1(x - x.min() + 0.1)
    frame = pd.DataFrame(values, columns=list(CONFIG.features[:3]))
    frame.insert(0, "canonical_user_id", [f"u{i:05d}" for i in range(n)])
    frame["is_clusterable"] = True
    return frame


def blob_config(**overrides: object) -> ClusteringConfig:
    settings: dict = {"features": CONFIG.features[:3], "k_min": 2, "k_max": 8, **overrides}
    return ClusteringConfig(**settings)


def test_choose_k_finds_the_number_of_blobs():
    vectors = blob_vectors(400)
    x = FeatureTransform.fit(vectors, CONFIG.features[:3]).transform(vectors)
    scores = choose_k(x, blob_config())
    assert pick_k(scores, 0.01) == 4
    assert fit_kmeans(x, blob_config()).k == 4
    assert fit_ward(x, blob_config()).k == 4


def test_pick_k_prefers_the_smallest_k_within_tolerance():
    assert pick_k({3: 0.40, 4: 0.395, 5: 0.41}, 0.01) == 3
    assert pick_k({3: 0.30, 4: 0.395, 5: 0.41}, 0.01) == 5
    assert pick_k({3: 0.30, 4: 0.395, 5: 0.41}, 0.02) == 4


def test_minibatch_above_the_size_threshold():
    config = blob_config(minibatch_threshold=1_000)
    assert isinstance(_kmeans(1_001, 4, 0, config), MiniBatchKMeans)
    assert not isinstance(_kmeans(1_000, 4, 0, config), MiniBatchKMeans)
    vectors = blob_vectors(3_000)
    x = FeatureTransform.fit(vectors, config.features).transform(vectors)
    mini = fit_kmeans(x, config, k=4)
    full = fit_kmeans(x, blob_config(), k=4)
    assert adjusted_rand_score(mini.labels, full.labels) > 0.99


def test_insufficient_data_users_are_assigned_cluster_minus_one():
    vectors = blob_vectors(200)
    vectors.loc[[3, 7], "is_clusterable"] = False
    out = assign_clusters(vectors, blob_config(k_min=3, k_max=5))
    assert len(out) == 400
    assert out.groupby("method")["canonical_user_id"].apply(lambda s: s.is_unique).all()
    minus = out[out["cluster_id"] == -1]
    assert sorted(minus["canonical_user_id"]) == ["u00003", "u00003", "u00007", "u00007"]
    assert (minus["cluster_name"] == "insufficient_data").all()
    assert minus["distance_to_centroid"].isna().all()
    assert out.loc[out["cluster_id"] >= 0, "distance_to_centroid"].ge(0).all()


def test_duplicate_users_and_missing_features_are_rejected():
    vectors = blob_vectors(50)
    with pytest.raises(ValueError, match="one row per canonical_user_id"):
        assign_clusters(pd.concat([vectors, vectors.head(1)]), blob_config())
    with pytest.raises(KeyError, match="lack clustering feature"):
        assign_clusters(vectors.drop(columns=[CONFIG.features[0]]), blob_config())


@pytest.mark.parametrize("n", [0, 5])
def test_too_few_users_are_all_insufficient_data(n):
    """Fewer than 2 x k_min clusterable users (a tiny or new warehouse): no fit, no crash;
    everyone is cluster -1 and the quality row says k = 0."""
    vectors = blob_vectors(max(n, 1)).head(n)
    config = blob_config(k_min=3)
    out = assign_clusters(vectors, config)
    assert len(out) == 2 * n and (out["cluster_id"] == -1).all()
    assert list(out.columns) == [
        "canonical_user_id",
        "method",
        "cluster_id",
        "cluster_name",
        "distance_to_centroid",
    ]
    described = describe_clusters(vectors, out, config)
    assert described[["method", "cluster_id", "size"]].values.tolist() == (
        [["kmeans", -1, n], ["hierarchical", -1, n]] if n else []
    )
    report = quality_report(vectors, out, described, config, "2026-01-03T00:00:00Z")
    if n:
        assert report["k"].tolist() == [0, 0] and report["n_clustered"].tolist() == [0, 0]
        assert report[["silhouette", "stability_ari"]].isna().all().all()
    assert "davies_bouldin" in report.columns


def test_feature_transform_is_invertible():
    vectors = blob_vectors(100)
    transform = FeatureTransform.fit(vectors, CONFIG.features[:3])
    x = transform.transform(vectors)
    assert x.mean(axis=0) == pytest.approx([0, 0, 0], abs=1e-9)
    assert x.std(axis=0) == pytest.approx([1, 1, 1])
    real = vectors[list(CONFIG.features[:3])].to_numpy()
    assert transform.inverse(x) == pytest.approx(real)
    assert transform.transform_real(real) == pytest.approx(x)


def test_nearest_centroid_in_chunks():
    x = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 1.0], [0.5, 0.0]])
    centroids = np.array([[10.0, 0.0], [0.0, 0.0]])
    labels, distances = nearest_centroid(x, centroids, chunk=3)
    assert labels.tolist() == [1, 0, 0, 1]
    assert distances == pytest.approx([0.0, 0.0, np.sqrt(2.0), 0.5])


def test_stable_ids_follow_the_previous_centroids():
    previous = np.array([[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]])
    previous_ids = np.array([0, 1, 2])
    # the same clusters, slightly moved and listed in another order, sizes reversed
    new = np.array([[10.2, 0.1], [0.1, -0.1], [5.0, 5.2]])
    sizes = np.array([10, 20, 30])
    assert stable_ids(new, sizes).tolist() == [2, 1, 0]  # without history: by size
    assert stable_ids(new, sizes, previous, previous_ids).tolist() == [2, 0, 1]
    shift = drift_from_previous(new, np.array([2, 0, 1]), previous, previous_ids)
    assert shift == pytest.approx([np.hypot(0.2, 0.1), np.hypot(0.1, 0.1), 0.2])
    # k grew: the extra cluster takes the smallest free id
    grown = np.vstack([new, [[20.0, 20.0]]])
    ids = stable_ids(grown, np.array([10, 20, 30, 5]), previous, previous_ids)
    assert ids.tolist() == [2, 0, 1, 3]
    # k shrank: survivors keep their ids (the gap stays)
    ids = stable_ids(new[[0, 2]], np.array([10, 30]), previous, previous_ids)
    assert ids.tolist() == [2, 1]
    # ids of a previous run need not be 0..k-1
    ids = stable_ids(new, sizes, previous, np.array([4, 7, 9]))
    assert ids.tolist() == [9, 4, 7]


def test_persona_names_come_from_the_distinguishing_features():
    features = ("revenue", "sessions", "recency_days", "searches_per_session")
    assert persona_name(features, np.array([2.1, 0.9, -0.2, 0.1])) == (
        "High spenders, frequent visitors"
    )
    assert persona_name(features, np.array([-0.3, -0.6, 1.5, 0.0])) == "Lapsed, occasional visitors"
    assert persona_name(features, np.array([0.2, -0.1, 0.3, 0.4])) == "Typical users"
    assert persona_name(("unknown_feature",), np.array([1.0])) == "High unknown_feature"
    zs = np.array([[2.0, 1.0, 0.6, 0.0], [2.0, 1.0, -0.6, 0.0], [0.1, 0.0, 0.0, 0.0]])
    names = unique_names(features, zs, np.array([0, 1, 2]))
    assert names == [
        "High spenders, frequent visitors, lapsed",
        "High spenders, frequent visitors, recently active",
        "Typical users",
    ]
    same = unique_names(features, np.array([[2.0, 0, 0, 0], [2.0, 0, 0, 0]]), np.array([4, 5]))
    assert same == ["High spenders (cluster 4)", "High spenders (cluster 5)"]


def test_config_from_dbt_settings():
    config = ClusteringConfig.from_settings(
        k_min="2", k_max="6", random_state="7", memory_budget_mb="512", features="[a, b]"
    )
    assert (config.k_min, config.k_max, config.random_state) == (2, 6, 7)
    assert config.memory_budget_mb == 512.0 and config.features == ("a", "b")
    assert ClusteringConfig.from_settings(k_min=None).k_min == CONFIG.k_min
    with pytest.raises(ValueError, match="unknown clustering setting"):
        ClusteringConfig.from_settings(kk=3)
    with pytest.raises(ValueError, match="k_min <= k_max"):
        ClusteringConfig(k_min=5, k_max=4)


def test_fitted_at_is_the_as_of_var():
    assert fitted_at("2026-01-11T00:00:00Z") == pd.Timestamp("2026-01-11 00:00:00")
    assert fitted_at("2026-01-11T02:00:00+02:00") == pd.Timestamp("2026-01-11 00:00:00")


# --- issue 15: true personas, reproducibility, honest structure, chosen features ----------


def test_persona_claims_hold_on_generated_data(vectors, first_run):
    assignments, clusters = first_run
    assert_everyone_assigned_once(vectors, assignments)
    assert false_claims(vectors, assignments) == []


def test_no_absolute_claim_without_its_fact():
    """Everybody bought 5-14 times: the cluster with the fewest orders is "fewer orders", never
    "non-buyers"; a phrase never repeats a word ("frequent visitors" and "repeat buyers")."""
    features = ("orders", "sessions")
    z = np.array([[-1.2, -0.9], [1.3, 1.1]])
    members = np.array([[6.0, 6.0], [12.0, 12.0]])
    population = np.array([8.0, 8.0])
    names = unique_names(features, z, np.array([0, 1]), members, population)
    assert names == ["Fewer orders, occasional visitors", "Repeat buyers, frequent visitors"]
    # members' median on the wrong side of the population's: the phrase is left out
    assert persona_name(features, z[0], 2, np.array([9.0, 6.0]), population) == (
        "Occasional visitors"
    )
    # non-buyers only when the members' median is 0
    assert persona_name(("orders",), np.array([-1.0]), 2, np.array([0.0]), np.array([2.0])) == (
        "Non-buyers"
    )
    assert persona_name(("orders",), np.array([0.3]), 2, np.array([3.0]), np.array([2.0])) == (
        "Typical users"
    )


def test_row_order_never_changes_assignments_k_or_names(vectors, first_run):
    """Two builds of the same data whose rows arrive in different orders: identical output."""
    assignments, clusters = first_run
    shuffled = vectors.sample(frac=1.0, random_state=5).reset_index(drop=True)
    again = assign_clusters(shuffled, CONFIG)
    key = ["method", "canonical_user_id"]
    pd.testing.assert_frame_equal(
        assignments.sort_values(key).reset_index(drop=True),
        again.sort_values(key).reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(clusters, describe_clusters(shuffled, again, CONFIG))


def test_features_dropped_with_their_reason():
    vectors = blob_vectors(200)
    names = list(CONFIG.features[:3])
    vectors["constant"] = 4.0
    vectors["twin"] = vectors[names[0]] * 2.0 + 1.0
    vectors["undefined"] = np.where(np.arange(200) < 120, np.nan, 1.0)
    vectors["rare"] = np.where(np.arange(200) < 199, 0.0, 50.0)
    candidates = (*names, "constant", "twin", "undefined", "rare")
    choice = choose_features(vectors, candidates)
    assert choice.used == tuple(names)
    assert choice.dropped == {
        "constant": "constant (4 for every user)",
        "twin": f"near-duplicate of {names[0]} (r=1.00)",
        "undefined": "undefined for 60% of users",
        "rare": "near-constant (99.5% of users at 0)",
    }
    # at the boundary: 50% undefined is still used (undefined values take the median)
    vectors["undefined"] = np.where(np.arange(200) < 100, np.nan, np.arange(200) % 7)
    assert "undefined" in choose_features(vectors, (*names, "undefined")).used


def test_weak_structure_is_reported_for_every_k():
    """One Gaussian cloud in six features has no cluster structure (best silhouette 0.13):
    every k's silhouette is listed and the best one is below the weak threshold."""
    rng = np.random.default_rng(0)
    features = CONFIG.features[:6]
    vectors = pd.DataFrame(
        np.expm1(np.abs(rng.normal(2.0, 0.3, size=(300, 6)))), columns=list(features)
    )
    vectors.insert(0, "canonical_user_id", [f"u{i:04d}" for i in range(300)])
    vectors["is_clusterable"] = True
    config = ClusteringConfig(features=features, k_min=3, k_max=6)
    out = assign_clusters(vectors, config)
    report = quality_report(vectors, out, describe_clusters(vectors, out, config), config, None)
    for row in report.itertuples():
        assert [part.split(":")[0] for part in row.silhouette_by_k.split("; ")] == [
            "k=3",
            "k=4",
            "k=5",
            "k=6",
        ]
        assert row.best_silhouette < 0.25 and row.is_weak_structure
    blobs = blob_vectors(300)
    config = blob_config(k_min=3, k_max=6)
    out = assign_clusters(blobs, config)
    report = quality_report(blobs, out, describe_clusters(blobs, out, config), config, None)
    assert (report["best_silhouette"] > 0.5).all() and not report["is_weak_structure"].any()
