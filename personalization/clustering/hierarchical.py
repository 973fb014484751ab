"""Hierarchical view: Ward linkage on a bounded sample, every other row to its nearest centroid.

Ward needs memory quadratic in the sample (the condensed distance matrix and scipy's working
copies: about 8 * n^2 bytes, ~12 GB at 40k rows), so a configuration whose sample would exceed
the memory budget raises MemoryBudgetError before anything is allocated.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import silhouette_score

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.features import nearest_centroid, sample_indices
from personalization.clustering.kmeans import Fit, candidate_ks, pick_k

log = logging.getLogger(__name__)

WARD_BYTES_PER_PAIR = 8  # bytes per (i, j) pair in n^2: condensed float64 matrix x 2 copies


class MemoryBudgetError(RuntimeError):
    """A clustering configuration would need more memory than its budget allows."""


def ward_memory_bytes(n_sample: int) -> int:
    """Estimated peak memory of Ward linkage on n_sample rows."""
    return WARD_BYTES_PER_PAIR * n_sample * n_sample


def check_ward_memory(n_sample: int, budget_mb: float) -> None:
    need_mb = ward_memory_bytes(n_sample) / 2**20
    if need_mb > budget_mb:
        largest = int((budget_mb * 2**20 / WARD_BYTES_PER_PAIR) ** 0.5)
        raise MemoryBudgetError(
            f"Ward linkage on a sample of {n_sample:,} rows needs about {need_mb:,.0f} MB, "
            f"over the memory budget of {budget_mb:,.0f} MB: lower ward_sample_size to at most "
            f"{largest:,} or raise memory_budget_mb"
        )


def fit_ward(
    x: np.ndarray,
    config: ClusteringConfig,
    k: int | None = None,
    seed: int | None = None,
    assign: bool = True,
) -> Fit:
    """Ward on a seeded sample (k by silhouette on that sample unless given); every row (unless
    `assign` is false: then labels and distances are empty) to its nearest sample centroid."""
    seed = config.random_state if seed is None else seed
    n_sample = min(len(x), config.ward_sample_size)
    check_ward_memory(n_sample, config.memory_budget_mb)
    sample = x[sample_indices(len(x), config.ward_sample_size, seed)]
    tree = linkage(sample, method="ward")
    silhouettes: dict[int, float] = {}
    cuts: dict[int, np.ndarray] = {}
    ks = [k] if k is not None else candidate_ks(len(sample), config)
    for candidate in ks:
        cut = fcluster(tree, t=candidate, criterion="maxclust") - 1
        if len(np.unique(cut)) < 2:
            continue
        cuts[candidate] = cut
        if k is None:
            silhouettes[candidate] = float(silhouette_score(sample, cut))
    if not cuts:
        raise ValueError("the Ward tree has fewer than two clusters (identical users?)")
    if k is None:
        log.info("ward silhouette by k: %s", {c: round(s, 3) for c, s in silhouettes.items()})
        k = pick_k(silhouettes, config.silhouette_tolerance)
    cut = cuts[k]
    centroids = np.vstack([sample[cut == c].mean(axis=0) for c in np.unique(cut)])
    if assign:
        labels, distances = nearest_centroid(x, centroids)
    else:
        labels, distances = np.empty(0, dtype=np.int64), np.empty(0)
    return Fit("hierarchical", len(centroids), centroids, labels, distances, silhouettes)
