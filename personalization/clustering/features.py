"""Feature matrix: eligible users, log1p transform and standard scaling (and their inverse)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ELIGIBILITY_COLUMN = "is_clusterable"
KEY = "canonical_user_id"


def eligible_mask(vectors: pd.DataFrame) -> np.ndarray:
    """Users clustered: the vectors' is_clusterable flag (enough events); every user if absent."""
    if ELIGIBILITY_COLUMN not in vectors.columns:
        return np.ones(len(vectors), dtype=bool)
    return vectors[ELIGIBILITY_COLUMN].fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class FeatureTransform:
    """log1p then standardise each feature (z = (log1p(x) - mean) / std); exactly invertible."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, vectors: pd.DataFrame, features: tuple[str, ...]) -> FeatureTransform:
        logged = _log_features(vectors, features)
        if len(logged) == 0:  # nobody to cluster: an identity transform
            return cls(features=features, mean=np.zeros(len(features)), std=np.ones(len(features)))
        mean = logged.mean(axis=0)
        std = logged.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(features=features, mean=mean, std=std)

    def transform(self, vectors: pd.DataFrame) -> np.ndarray:
        return (_log_features(vectors, self.features) - self.mean) / self.std

    def transform_real(self, real: np.ndarray) -> np.ndarray:
        """Rows of real-unit values (same feature order) into the scaled space."""
        return (np.log1p(np.clip(np.asarray(real, dtype=float), 0.0, None)) - self.mean) / self.std

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled points (e.g. centroids) back into real units."""
        return np.expm1(np.asarray(scaled, dtype=float) * self.std + self.mean)


def _log_features(vectors: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    missing = [f for f in features if f not in vectors.columns]
    if missing:
        raise KeyError(f"behaviour vectors lack clustering feature(s): {', '.join(missing)}")
    values = vectors[list(features)].to_numpy(dtype=float, na_value=0.0)
    # every feature is a count, amount, rate or duration: negative values are clipped to 0
    return np.log1p(np.clip(np.nan_to_num(values, nan=0.0), 0.0, None))


def sample_indices(n: int, size: int, seed: int) -> np.ndarray:
    """A sorted random sample of row indices (all rows when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def nearest_centroid(
    x: np.ndarray, centroids: np.ndarray, chunk: int = 200_000
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and Euclidean distance to the nearest centroid for each row, in chunks."""
    labels = np.empty(len(x), dtype=np.int64)
    distances = np.empty(len(x), dtype=float)
    c_sq = (centroids**2).sum(axis=1)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        d2 = (part**2).sum(axis=1)[:, None] - 2.0 * part @ centroids.T + c_sq[None, :]
        idx = d2.argmin(axis=1)
        labels[start : start + chunk] = idx
        distances[start : start + chunk] = np.sqrt(np.maximum(d2[np.arange(len(part)), idx], 0.0))
    return labels, distances
