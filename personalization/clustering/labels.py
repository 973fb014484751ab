"""Stable cluster ids between runs: new centroids take the ids of the previous run's nearest
centroids (Hungarian matching), so cluster 3 stays cluster 3 when behaviour barely changes."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def stable_ids(
    centroids: np.ndarray,
    sizes: np.ndarray,
    previous_centroids: np.ndarray | None = None,
    previous_ids: np.ndarray | None = None,
) -> np.ndarray:
    """The stable id of each new cluster (index i of `centroids` gets ids[i]).

    Without a previous run, ids follow size (0 = largest, ties by position). With one, the
    assignment minimising the total centroid distance maps new clusters onto previous ids; new
    clusters left over (k grew) get the smallest ids not in use, largest cluster first.
    """
    k = len(centroids)
    ids = np.full(k, -1, dtype=np.int64)
    if previous_centroids is not None and len(previous_centroids) > 0:
        if previous_ids is None or len(previous_ids) != len(previous_centroids):
            raise ValueError("previous_ids must give one id per previous centroid")
        cost = np.linalg.norm(centroids[:, None, :] - previous_centroids[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(cost)
        ids[rows] = np.asarray(previous_ids, dtype=np.int64)[cols]
    used = set(ids[ids >= 0].tolist())
    free = (i for i in range(k + len(used) + 1) if i not in used)
    for index in sorted(np.flatnonzero(ids < 0), key=lambda i: (-int(sizes[i]), int(i))):
        ids[index] = next(free)
    return ids


def drift_from_previous(
    centroids: np.ndarray,
    ids: np.ndarray,
    previous_centroids: np.ndarray | None,
    previous_ids: np.ndarray | None,
) -> np.ndarray:
    """Distance (scaled units) from each cluster's centroid to the previous centroid with the
    same id; NaN where there is none."""
    shift = np.full(len(centroids), np.nan)
    if previous_centroids is None or previous_ids is None:
        return shift
    by_id = {int(i): c for i, c in zip(previous_ids, previous_centroids, strict=True)}
    for index, cluster_id in enumerate(ids):
        if int(cluster_id) in by_id:
            shift[index] = float(np.linalg.norm(centroids[index] - by_id[int(cluster_id)]))
    return shift
