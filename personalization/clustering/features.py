"""Feature matrix: eligible users, the choice of features (constant, near-duplicate and
undefined ones are dropped, with the reason), log1p transform and standard scaling (and their
inverse)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

ELIGIBILITY_COLUMN = "is_clusterable"
KEY = "canonical_user_id"

log = logging.getLogger(__name__)


def eligible_mask(vectors: pd.DataFrame) -> np.ndarray:
    """Users clustered: the vectors' is_clusterable flag (enough events); every user if absent."""
    if ELIGIBILITY_COLUMN not in vectors.columns:
        return np.ones(len(vectors), dtype=bool)
    return vectors[ELIGIBILITY_COLUMN].fillna(False).to_numpy(dtype=bool)


@dataclass(frozen=True)
class FeatureChoice:
    """The features clustered on and, for each candidate left out, why (in candidate order)."""

    used: tuple[str, ...]
    dropped: dict[str, str]

    def dropped_text(self) -> str:
        """E.g. "orders_per_checkout: undefined for 100% of users; sessions: near-duplicate of
        orders (r=0.99)"; empty when nothing was dropped."""
        return "; ".join(f"{feature}: {reason}" for feature, reason in self.dropped.items())


def choose_features(
    eligible: pd.DataFrame,
    candidates: tuple[str, ...],
    max_undefined_share: float = 0.5,
    max_correlation: float = 0.95,
    max_common_share: float = 0.99,
) -> FeatureChoice:
    """Candidates in order, dropping (reason logged) a feature that is undefined (null) for more
    than `max_undefined_share` of the users, constant after log1p, near-constant (one value for
    at least `max_common_share` of the users: a handful of outliers would form their own
    cluster), or correlated above
    `max_correlation` (|Pearson r| of the log1p values) with a feature already kept. Raises
    KeyError for a missing column and ValueError when no feature is left."""
    missing = [f for f in candidates if f not in eligible.columns]
    if missing:
        raise KeyError(f"behaviour vectors lack clustering feature(s): {', '.join(missing)}")
    used: list[str] = []
    kept_values: list[np.ndarray] = []
    dropped: dict[str, str] = {}
    for feature in candidates:
        raw = eligible[feature].to_numpy(dtype=float, na_value=np.nan)
        undefined = float(np.isnan(raw).mean()) if len(raw) else 0.0
        if undefined > max_undefined_share:
            dropped[feature] = f"undefined for {undefined:.0%} of users"
            continue
        values = _log1p(np.where(np.isnan(raw), _median(raw), raw))
        if len(values) < 2 or float(np.ptp(values)) < 1e-9:
            constant = float(values[0]) if len(values) else 0.0
            dropped[feature] = f"constant ({float(np.expm1(constant)):g} for every user)"
            continue
        common_value, common_share = _most_common(values)
        if common_share >= max_common_share:
            dropped[feature] = (
                f"near-constant ({common_share:.1%} of users at {float(np.expm1(common_value)):g})"
            )
            continue
        duplicate = None
        for name, other in zip(used, kept_values, strict=True):
            r = float(np.corrcoef(values, other)[0, 1])
            if abs(r) > max_correlation:
                duplicate = f"near-duplicate of {name} (r={r:.2f})"
                break
        if duplicate:
            dropped[feature] = duplicate
            continue
        used.append(feature)
        kept_values.append(values)
    for feature, reason in dropped.items():
        log.warning("clustering feature %s dropped: %s", feature, reason)
    if not used:
        raise ValueError(f"no usable clustering feature among {', '.join(candidates)}")
    return FeatureChoice(used=tuple(used), dropped=dropped)


@dataclass(frozen=True)
class FeatureTransform:
    """log1p then standardise each feature (z = (log1p(x) - mean) / std); exactly invertible.
    A user's undefined (null) value takes the feature's median (`fill`, real units): neutral,
    it claims nothing about the user."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    fill: np.ndarray

    @classmethod
    def fit(cls, vectors: pd.DataFrame, features: tuple[str, ...]) -> FeatureTransform:
        raw = _raw_features(vectors, features)
        fill = np.array([_median(raw[:, i]) for i in range(len(features))])
        if len(raw) == 0:  # nobody to cluster: an identity transform
            ones = np.ones(len(features))
            return cls(features=features, mean=np.zeros(len(features)), std=ones, fill=fill)
        logged = _log1p(np.where(np.isnan(raw), fill, raw))
        mean = logged.mean(axis=0)
        std = logged.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(features=features, mean=mean, std=std, fill=fill)

    def transform(self, vectors: pd.DataFrame) -> np.ndarray:
        raw = _raw_features(vectors, self.features)
        return (_log1p(np.where(np.isnan(raw), self.fill, raw)) - self.mean) / self.std

    def transform_real(self, real: np.ndarray) -> np.ndarray:
        """Rows of real-unit values (same feature order) into the scaled space."""
        return (np.log1p(np.clip(np.asarray(real, dtype=float), 0.0, None)) - self.mean) / self.std

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled points (e.g. centroids) back into real units."""
        return np.expm1(np.asarray(scaled, dtype=float) * self.std + self.mean)


def _raw_features(vectors: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    missing = [f for f in features if f not in vectors.columns]
    if missing:
        raise KeyError(f"behaviour vectors lack clustering feature(s): {', '.join(missing)}")
    return (
        vectors[list(features)]
        .to_numpy(dtype=float, na_value=np.nan)
        .reshape(len(vectors), len(features))
    )


def _log1p(values: np.ndarray) -> np.ndarray:
    # every feature is a count, amount, rate or duration: negative values are clipped to 0
    return np.log1p(np.clip(values, 0.0, None))


def _most_common(values: np.ndarray) -> tuple[float, float]:
    """The most frequent value and its share of the rows."""
    unique, counts = np.unique(values, return_counts=True)
    top = int(counts.argmax())
    return float(unique[top]), float(counts[top]) / len(values)


def _median(values: np.ndarray) -> float:
    """Median of the defined values; 0 when none is defined."""
    defined = values[~np.isnan(values)]
    return float(np.median(defined)) if len(defined) else 0.0


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
