"""The three clustering outputs, each a pandas DataFrame for a thin dbt Python model:

- assign_clusters: one row per (user, method) - fct_user_clusters;
- describe_clusters: one row per (method, cluster) persona - dim_clusters;
- quality_report: one row per method - rpt_cluster_quality.

Users without enough events (is_clusterable false) get cluster -1 'insufficient_data'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from personalization.clustering import labels as stable
from personalization.clustering import personas, quality
from personalization.clustering.config import (
    INSUFFICIENT_DATA_ID,
    INSUFFICIENT_DATA_NAME,
    METHODS,
    ClusteringConfig,
)
from personalization.clustering.features import (
    KEY,
    FeatureChoice,
    FeatureTransform,
    choose_features,
    eligible_mask,
    nearest_centroid,
    sample_indices,
)
from personalization.clustering.hierarchical import fit_ward
from personalization.clustering.kmeans import Fit, fit_kmeans, select_k

log = logging.getLogger(__name__)

ASSIGNMENT_COLUMNS = ["canonical_user_id", "method", "cluster_id", "cluster_name"]
CATEGORY_PREFIX = "share_"


@dataclass(frozen=True)
class Prepared:
    """Eligible users, the features chosen for them and their scaled feature matrix."""

    user_ids: np.ndarray  # eligible users, sorted by canonical_user_id
    other_ids: np.ndarray  # users not clustered
    transform: FeatureTransform
    x: np.ndarray
    eligible: pd.DataFrame  # the eligible rows of the vectors
    choice: FeatureChoice

    @property
    def features(self) -> tuple[str, ...]:
        return self.choice.used

    def medians(self, labels: np.ndarray | None = None) -> np.ndarray:
        """Median (real units, undefined values skipped) of each used feature: over every
        clustered user, or per label 0..max(labels) (one row each) when labels are given."""
        values = self.eligible[list(self.features)].astype(float)
        if labels is None:
            return values.median().to_numpy()
        return values.groupby(labels).median().sort_index().to_numpy()


def minimum_users(config: ClusteringConfig) -> int:
    """Fewer clusterable users than this: everyone is 'insufficient_data' (no fit)."""
    return 2 * config.k_min


def prepare(vectors: pd.DataFrame, config: ClusteringConfig) -> Prepared:
    """Eligible users (is_clusterable, and at least minimum_users of them), the features chosen
    for them and their matrix. Rows are sorted by canonical_user_id first: the order in which
    the warehouse returns them must never change a sample, a fit or a name."""
    if vectors[KEY].duplicated().any():
        raise ValueError("behaviour vectors must have one row per canonical_user_id")
    vectors = vectors.sort_values(KEY, kind="stable").reset_index(drop=True)
    mask = eligible_mask(vectors)
    if 0 < mask.sum() < minimum_users(config):
        log.warning(
            "only %d clusterable users (fewer than 2 x k_min = %d): nobody is clustered",
            mask.sum(),
            minimum_users(config),
        )
        mask = np.zeros(len(vectors), dtype=bool)
    eligible = vectors.loc[mask].reset_index(drop=True)
    if len(eligible):
        choice = choose_features(
            eligible,
            config.features,
            config.max_undefined_share,
            config.max_feature_correlation,
            config.max_common_share,
        )
    else:
        choice = FeatureChoice(used=config.features, dropped={})
    transform = FeatureTransform.fit(eligible, choice.used)
    return Prepared(
        user_ids=eligible[KEY].to_numpy(),
        other_ids=vectors.loc[~mask, KEY].to_numpy(),
        transform=transform,
        x=transform.transform(eligible),
        eligible=eligible,
        choice=choice,
    )


def centroid_columns(config: ClusteringConfig) -> list[str]:
    """One centroid column per candidate feature (null for a feature the build dropped), so
    dim_clusters keeps its columns whatever the data."""
    return [f"centroid_{f}" for f in config.features]


def centroid_values(
    config: ClusteringConfig, used: tuple[str, ...], real: np.ndarray
) -> dict[str, float]:
    by_feature = dict(zip(used, real, strict=True))
    return {f"centroid_{f}": by_feature.get(f, np.nan) for f in config.features}


def previous_centroids(
    previous: pd.DataFrame | None,
    method: str,
    config: ClusteringConfig,
    transform: FeatureTransform,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The previous run's centroids (from its dim_clusters) in the current scaled space."""
    if previous is None or previous.empty:
        return None, None
    columns = [f"centroid_{f}" for f in transform.features]
    missing = [c for c in [*columns, "method", "cluster_id"] if c not in previous.columns]
    if missing:
        log.warning("previous clusters lack %s: labels start afresh", ", ".join(missing))
        return None, None
    rows = previous[(previous["method"] == method) & (previous["cluster_id"] >= 0)]
    rows = rows.dropna(subset=columns)
    if rows.empty:
        return None, None
    real = rows[columns].to_numpy(dtype=float)
    return transform.transform_real(real), rows["cluster_id"].to_numpy(dtype=np.int64)


def previous_members(
    previous: pd.DataFrame | None, method: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The previous run's users and cluster ids for `method` (None, None without one)."""
    if previous is None or previous.empty or "cluster_id" not in previous.columns:
        return None, None
    rows = previous[previous["method"] == method]
    return rows[KEY].to_numpy(), rows["cluster_id"].to_numpy(dtype=np.int64)


def fit_method(method: str, x: np.ndarray, config: ClusteringConfig) -> Fit:
    if method == "kmeans":
        return fit_kmeans(x, config)
    if method == "hierarchical":
        return fit_ward(x, config)
    raise ValueError(f"unknown clustering method {method!r}; known: {', '.join(METHODS)}")


def member_means(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean scaled vector and size of each label 0..k-1 (a label without members keeps NaN)."""
    sizes = np.bincount(labels, minlength=k)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / sizes[:, None], sizes


def assign_clusters(
    vectors: pd.DataFrame,
    config: ClusteringConfig,
    previous_assignments: pd.DataFrame | None = None,
    methods: tuple[str, ...] = METHODS,
    fit: Callable[[str, np.ndarray, ClusteringConfig], Fit] = fit_method,
) -> pd.DataFrame:
    """Every user in `vectors` exactly once per method: canonical_user_id, method, cluster_id,
    cluster_name, distance_to_centroid (scaled units; null for the insufficient_data cluster).
    Cluster ids follow `previous_assignments` (the previous output of this function, e.g. the
    model's own previous table): a cluster keeps the id of the previous cluster it shares most
    members with. `fit` fits one method on the scaled features (scikit-learn here; Spark MLlib
    in personalization.spark.clustering)."""
    prep = prepare(vectors, config)
    frames = []
    for method in methods:
        frames.append(_insufficient(prep.other_ids, method))
        if len(prep.user_ids) == 0:
            continue
        fitted = fit(method, prep.x, config)
        means, sizes = member_means(prep.x, fitted.labels, fitted.k)
        means = np.where(np.isnan(means), fitted.centroids, means)
        ids = stable.stable_ids_by_members(
            fitted.labels, prep.user_ids, sizes, *previous_members(previous_assignments, method)
        )
        names = personas.unique_names(
            prep.features, means, ids, prep.medians(fitted.labels), prep.medians()
        )
        log.info(
            "%s: k=%d, clusters %s", method, fitted.k, dict(zip(ids.tolist(), names, strict=True))
        )
        frames.append(
            pd.DataFrame(
                {
                    KEY: prep.user_ids,
                    "method": method,
                    "cluster_id": ids[fitted.labels],
                    "cluster_name": np.asarray(names, dtype=object)[fitted.labels],
                    "distance_to_centroid": fitted.distances,
                }
            )
        )
    result = pd.concat(frames, ignore_index=True)
    result["cluster_id"] = result["cluster_id"].astype(np.int64)
    return result


def _insufficient(user_ids: np.ndarray, method: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            KEY: pd.Series(user_ids, dtype=object),
            "method": pd.Series([method] * len(user_ids), dtype=object),
            "cluster_id": np.full(len(user_ids), INSUFFICIENT_DATA_ID, dtype=np.int64),
            "cluster_name": pd.Series([INSUFFICIENT_DATA_NAME] * len(user_ids), dtype=object),
            "distance_to_centroid": np.full(len(user_ids), np.nan),
        }
    )


def _labels_for(prep: Prepared, assignments: pd.DataFrame, method: str) -> np.ndarray:
    rows = assignments[assignments["method"] == method].set_index(KEY)["cluster_id"]
    labels = rows.reindex(prep.user_ids).to_numpy()
    if np.isnan(labels.astype(float)).any():
        raise ValueError(f"assignments for {method} miss some clustered users")
    return labels.astype(np.int64)


def describe_clusters(
    vectors: pd.DataFrame,
    assignments: pd.DataFrame,
    config: ClusteringConfig,
    previous_clusters: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One persona row per (method, cluster_id): name, size, share of all users, centroid in
    real units (centroid_<feature>), the distinguishing features as z-scores, the category
    whose share of product views is most over-represented (vs all clustered users), and the
    centroid's shift since the previous run."""
    prep = prepare(vectors, config)
    total = len(vectors)
    categories = [c for c in vectors.columns if c.startswith(CATEGORY_PREFIX)]
    overall = prep.eligible[categories].mean().replace(0.0, np.nan) if categories else None
    rows = []
    for method in assignments["method"].drop_duplicates().tolist():
        labels = _labels_for(prep, assignments, method)
        names = (
            assignments[assignments["method"] == method]
            .drop_duplicates("cluster_id")
            .set_index("cluster_id")["cluster_name"]
        )
        ids = np.unique(labels)
        index = np.searchsorted(ids, labels)
        means, sizes = member_means(prep.x, index, len(ids))
        prev_c, prev_ids = previous_centroids(previous_clusters, method, config, prep.transform)
        shifts = stable.drift_from_previous(means, ids, prev_c, prev_ids)
        real = np.clip(prep.transform.inverse(means), 0.0, None).round(4) + 0.0
        category_means = prep.eligible[categories].groupby(labels).mean() if categories else None
        for i, cluster_id in enumerate(ids):
            top_category = None
            if category_means is not None and overall is not None:
                lift = category_means.loc[cluster_id] / overall
                if lift.notna().any():
                    top_category = str(lift.idxmax())[len(CATEGORY_PREFIX) :]
            rows.append(
                {
                    "method": method,
                    "cluster_id": int(cluster_id),
                    "cluster_name": names[cluster_id],
                    "size": int(sizes[i]),
                    "share": sizes[i] / total,
                    **centroid_values(config, prep.features, real[i]),
                    "distinguishing_features": personas.distinguishing_text(
                        prep.features, means[i]
                    ),
                    "top_category": top_category,
                    "drift_from_previous": shifts[i],
                }
            )
        n_other = len(prep.other_ids)
        if n_other:
            rows.append(
                {
                    "method": method,
                    "cluster_id": INSUFFICIENT_DATA_ID,
                    "cluster_name": INSUFFICIENT_DATA_NAME,
                    "size": n_other,
                    "share": n_other / total,
                    **dict.fromkeys(centroid_columns(config), np.nan),
                    "distinguishing_features": "not clustered: too few events",
                    "top_category": None,
                    "drift_from_previous": np.nan,
                }
            )
    columns = [
        "method",
        "cluster_id",
        "cluster_name",
        "size",
        "share",
        *centroid_columns(config),
        "distinguishing_features",
        "top_category",
        "drift_from_previous",
    ]
    return pd.DataFrame(rows, columns=columns)


def naive_utc(value: object) -> pd.Timestamp:
    """A timestamp (string, datetime or Timestamp) as naive UTC; NaT for None."""
    if value is None:
        return pd.NaT
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def quality_report(
    vectors: pd.DataFrame,
    assignments: pd.DataFrame,
    clusters: pd.DataFrame,
    config: ClusteringConfig,
    fitted_at: object,
) -> pd.DataFrame:
    """One row per method: k, silhouette (sample), Davies-Bouldin, stability across seeds (mean
    ARI of refits), centroid drift vs the previous run (mean and max), user counts and the share
    left unclustered (insufficient_data), fitted_at; the silhouette of every k tried, the best
    one and whether it is weak (< config.weak_silhouette: little cluster structure); the
    features used and the ones dropped with the reason."""
    prep = prepare(vectors, config)
    rows = []
    seeds = [config.random_state + s for s in range(1, config.stability_seeds + 1)]
    eval_idx = sample_indices(len(prep.x), config.quality_sample_size, config.random_state + 7)
    x_eval = prep.x[eval_idx]
    for method in assignments["method"].drop_duplicates().tolist():
        labels = _labels_for(prep, assignments, method)
        k = len(np.unique(labels))
        if method == "kmeans":

            def refit(seed: int, k: int = k) -> np.ndarray:
                return fit_kmeans(x_eval, config, k=k, seed=seed).labels

        else:

            def refit(seed: int, k: int = k) -> np.ndarray:
                centroids = fit_ward(prep.x, config, k=k, seed=seed, assign=False).centroids
                return nearest_centroid(x_eval, centroids)[0]

        shifts = clusters.loc[
            (clusters["method"] == method) & (clusters["cluster_id"] >= 0), "drift_from_previous"
        ].to_numpy(dtype=float)
        drift_mean, drift_max = quality.drift(shifts)
        clustered = k >= 2
        tried = silhouettes_tried(method, prep.x, config) if clustered else {}
        best = max(tried.values()) if tried else None
        rows.append(
            {
                "method": method,
                "k": k,
                "silhouette": quality.silhouette_on_sample(
                    prep.x, labels, config.quality_sample_size, config.random_state
                ),
                "davies_bouldin": quality.davies_bouldin(prep.x, labels),
                "stability_ari": (
                    quality.stability_ari(labels[eval_idx], refit, seeds) if clustered else None
                ),
                "drift_mean": drift_mean,
                "drift_max": drift_max,
                "n_users": len(vectors),
                "n_clustered": len(prep.user_ids),
                "n_insufficient_data": len(prep.other_ids),
                "share_insufficient_data": (
                    len(prep.other_ids) / len(vectors) if len(vectors) else None
                ),
                "silhouette_by_k": "; ".join(f"k={c}: {v:.3f}" for c, v in tried.items()),
                "best_silhouette": best,
                "is_weak_structure": None if best is None else best < config.weak_silhouette,
                "features_used": ", ".join(prep.features) if clustered else "",
                "features_dropped": prep.choice.dropped_text() if clustered else "",
                "fitted_at": naive_utc(fitted_at),
            }
        )
    columns = [
        "method",
        "k",
        "silhouette",
        "davies_bouldin",
        "stability_ari",
        "drift_mean",
        "drift_max",
        "n_users",
        "n_clustered",
        "n_insufficient_data",
        "share_insufficient_data",
        "silhouette_by_k",
        "best_silhouette",
        "is_weak_structure",
        "features_used",
        "features_dropped",
        "fitted_at",
    ]
    report = pd.DataFrame(rows, columns=columns)
    for column in (
        "silhouette",
        "davies_bouldin",
        "stability_ari",
        "drift_mean",
        "drift_max",
        "share_insufficient_data",
        "best_silhouette",
    ):
        report[column] = report[column].astype(float)
    report["is_weak_structure"] = report["is_weak_structure"].astype("boolean")
    return report


def silhouettes_tried(method: str, x: np.ndarray, config: ClusteringConfig) -> dict[int, float]:
    """The silhouette of every k the method's k selection tried (the same seeded samples as the
    fit, so the same figures)."""
    if method == "kmeans":
        return select_k(x, config)[0]
    return fit_ward(x, config, assign=False).silhouettes
