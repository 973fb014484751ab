"""Stable cluster ids between runs: new clusters take the ids of the previous run's clusters
they share most members with (or whose centroids are nearest; Hungarian matching either way),
so cluster 3 stays cluster 3 when behaviour barely changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    return _fill_free_ids(ids, sizes)


def stable_ids_by_members(
    labels: np.ndarray,
    user_ids: np.ndarray,
    sizes: np.ndarray,
    previous_user_ids: np.ndarray | None = None,
    previous_cluster_ids: np.ndarray | None = None,
) -> np.ndarray:
    """The stable id of each new cluster 0..k-1 (`labels` per user of `user_ids`): the
    assignment maximising the members shared with the previous run's clusters (its users and
    their non-negative cluster ids) maps new clusters onto previous ids; clusters sharing no
    member with a previous one, or left over, get the smallest free ids, largest first."""
    k = len(sizes)
    ids = np.full(k, -1, dtype=np.int64)
    if previous_user_ids is not None and previous_cluster_ids is not None:
        previous = pd.Series(
            np.asarray(previous_cluster_ids, dtype=np.int64), index=previous_user_ids
        )
        previous = previous[previous >= 0]
        if len(previous):
            before = previous.reindex(user_ids).to_numpy(dtype=float)
            known = ~np.isnan(before)
            prev_ids = np.unique(before[known]).astype(np.int64)
            overlap = np.zeros((k, len(prev_ids)))
            np.add.at(
                overlap,
                (labels[known], np.searchsorted(prev_ids, before[known].astype(np.int64))),
                1.0,
            )
            rows, cols = linear_sum_assignment(-overlap)
            shared = overlap[rows, cols] > 0
            ids[rows[shared]] = prev_ids[cols[shared]]
    return _fill_free_ids(ids, sizes)


def _fill_free_ids(ids: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Clusters still without an id (-1) take the smallest ids not in use, largest first."""
    k = len(ids)
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
