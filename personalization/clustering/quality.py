"""Quality figures: silhouette (on a sample), Davies-Bouldin, stability across seeds (adjusted
Rand index of refits) and drift of the centroids against the previous run."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score

from personalization.clustering.features import sample_indices


def silhouette_on_sample(x: np.ndarray, labels: np.ndarray, size: int, seed: int) -> float | None:
    """Silhouette on a seeded sample of at most `size` rows; None with fewer than 2 clusters."""
    idx = sample_indices(len(x), size, seed)
    if len(np.unique(labels[idx])) < 2 or len(idx) <= len(np.unique(labels[idx])):
        return None
    return float(silhouette_score(x[idx], labels[idx]))


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float | None:
    """Davies-Bouldin index on every row (lower is better); None with fewer than 2 clusters."""
    if len(np.unique(labels)) < 2:
        return None
    return float(davies_bouldin_score(x, labels))


def stability_ari(
    reference: np.ndarray, refit: Callable[[int], np.ndarray], seeds: list[int]
) -> float | None:
    """Mean adjusted Rand index between the reference labels and refits with other seeds
    (each `refit(seed)` returns labels for the same rows as `reference`)."""
    if not seeds:
        return None
    scores = [adjusted_rand_score(reference, refit(seed)) for seed in seeds]
    return float(np.mean(scores))


def drift(shifts: np.ndarray) -> tuple[float | None, float | None]:
    """Mean and max centroid shift (scaled units) over clusters that existed in the previous run."""
    known = shifts[~np.isnan(shifts)] if len(shifts) else shifts
    if len(known) == 0:
        return None, None
    return float(known.mean()), float(known.max())
