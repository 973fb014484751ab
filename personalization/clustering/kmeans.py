"""K-Means: k chosen by silhouette on a sample, MiniBatchKMeans above a size threshold."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.features import nearest_centroid, sample_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fit:
    """A fitted partition: centroids (scaled space), a label per row and distances to centroids."""

    method: str
    k: int
    centroids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    silhouettes: dict[int, float]  # k -> silhouette on the selection sample (empty if k given)


def candidate_ks(n: int, config: ClusteringConfig) -> list[int]:
    """The k range, capped so that every k leaves at least two points per cluster on average."""
    ks = [k for k in range(config.k_min, config.k_max + 1) if k <= max(n // 2, 1)]
    if not ks:
        raise ValueError(f"{n} users are too few to cluster into at least {config.k_min} clusters")
    return ks


def pick_k(silhouettes: dict[int, float], tolerance: float) -> int:
    """The smallest k whose silhouette is within `tolerance` of the best one."""
    best = max(silhouettes.values())
    return min(k for k, s in silhouettes.items() if s >= best - tolerance)


def _kmeans(
    n: int, k: int, seed: int, config: ClusteringConfig, init: np.ndarray | None = None
) -> KMeans | MiniBatchKMeans:
    """KMeans, or MiniBatchKMeans above the size threshold (started from `init` when given)."""
    if n > config.minibatch_threshold:
        return MiniBatchKMeans(
            n_clusters=k,
            init="k-means++" if init is None else init,
            batch_size=config.minibatch_batch_size,
            n_init=config.n_init if init is None else 1,
            random_state=seed,
        )
    return KMeans(n_clusters=k, n_init=config.n_init, random_state=seed)


def select_k(
    x: np.ndarray, config: ClusteringConfig
) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """Silhouette of a K-Means fit for every candidate k on one seeded sample of the rows, and
    the centroids of those sample fits."""
    sample = x[sample_indices(len(x), config.selection_sample_size, config.random_state)]
    scores: dict[int, float] = {}
    centroids: dict[int, np.ndarray] = {}
    for k in candidate_ks(len(sample), config):
        model = KMeans(k, n_init=config.n_init, random_state=config.random_state).fit(sample)
        if len(np.unique(model.labels_)) < 2:
            continue
        scores[k] = float(silhouette_score(sample, model.labels_))
        centroids[k] = np.asarray(model.cluster_centers_, dtype=float)
    if not scores:
        raise ValueError("no candidate k produced two or more clusters (identical users?)")
    log.info("k-means silhouette by k: %s", {k: round(s, 3) for k, s in scores.items()})
    return scores, centroids


def choose_k(x: np.ndarray, config: ClusteringConfig) -> dict[int, float]:
    """Silhouette of a K-Means fit for every candidate k, on one seeded sample of the rows."""
    return select_k(x, config)[0]


def fit_kmeans(
    x: np.ndarray, config: ClusteringConfig, k: int | None = None, seed: int | None = None
) -> Fit:
    """Fit K-Means on every row (k by silhouette unless given). Above the size threshold,
    MiniBatchKMeans starts from the selection sample's centroids for the chosen k."""
    silhouettes: dict[int, float] = {}
    init = None
    if k is None:
        silhouettes, sample_centroids = select_k(x, config)
        k = pick_k(silhouettes, config.silhouette_tolerance)
        init = sample_centroids[k]
    seed = config.random_state if seed is None else seed
    model = _kmeans(len(x), k, seed, config, init=init).fit(x)
    centroids = np.asarray(model.cluster_centers_, dtype=float)
    labels, distances = nearest_centroid(x, centroids)
    return Fit("kmeans", k, centroids, labels, distances, silhouettes)
