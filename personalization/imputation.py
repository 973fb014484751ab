"""Age imputation that has to earn its place, with an honest accuracy estimate.

Three candidate methods are scored by out-of-fold mean absolute error on the users whose age is
known (the same folds for all three, so the model never sees the user it predicts):

- knn: the mean age of the k nearest known users in a standardised behaviour space;
- group_median: the median known age of the user's group (e.g. favourite category), the global
  median for a group with too few known ages;
- global_median: the median of all known ages - the baseline.

The winner is the method with the lowest error, but a method is used only if it beats the global
median's error by `margin` (a share, e.g. 0.05 = 5% lower). When none does, nobody is imputed:
an age that is no better than a guess is left unknown, and the log says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

log = logging.getLogger(__name__)

FEATURES = (
    "events",
    "page_view_share",
    "product_view_share",
    "search_share",
    "cart_add_share",
    "feature_use_share",
    "orders",
    "revenue",
    "average_price_viewed",
    "mobile_share",
)
LOG_FEATURES = ("events", "orders", "revenue", "average_price_viewed")
METHODS = ("knn", "group_median", "global_median")
GROUP_COLUMN = "age_group"
MIN_GROUP_SIZE = 5  # a group with fewer known ages (in the training fold) uses the global median


@dataclass(frozen=True)
class Choice:
    """Out-of-fold error (years) per method, the chosen method (None: no imputation) and why."""

    errors: dict[str, float]
    method: str | None
    reason: str


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    values = frame.loc[:, list(FEATURES)].astype(float).fillna(0.0).copy()
    for column in LOG_FEATURES:
        values[column] = np.log1p(values[column].clip(lower=0))
    return values.to_numpy()


def _model(neighbours: int):
    return make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=neighbours))


def _groups(frame: pd.DataFrame) -> np.ndarray:
    if GROUP_COLUMN not in frame.columns:
        return np.full(len(frame), "all", dtype=object)
    return frame[GROUP_COLUMN].fillna("unknown").astype(str).to_numpy(dtype=object)


def _group_median_predict(
    groups_train: np.ndarray, ages_train: np.ndarray, groups_test: np.ndarray
) -> np.ndarray:
    train = pd.DataFrame({"group": groups_train, "age": ages_train})
    stats = train.groupby("group")["age"].agg(["median", "size"])
    medians = stats.loc[stats["size"] >= MIN_GROUP_SIZE, "median"]
    fallback = float(np.median(ages_train))
    return pd.Series(groups_test).map(medians).fillna(fallback).to_numpy(dtype=float)


def _predict(
    method: str,
    neighbours: int,
    features: np.ndarray,
    groups: np.ndarray,
    ages: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
) -> np.ndarray:
    """Ages of the rows `test` predicted by `method` from the rows `train` (known ages)."""
    if method == "knn":
        return _model(neighbours).fit(features[train], ages[train]).predict(features[test])
    if method == "group_median":
        return _group_median_predict(groups[train], ages[train], groups[test])
    return np.full(len(test), float(np.median(ages[train])))


def choose_method(errors: dict[str, float], margin: float) -> Choice:
    """The method with the lowest error, if it beats the global median's by `margin`."""
    baseline = errors["global_median"]
    best = min((m for m in METHODS if m != "global_median"), key=lambda m: (errors[m], m))
    needed = baseline * (1.0 - margin)
    if errors[best] <= needed:
        reason = (
            f"{best} error {errors[best]:.2f} years beats the global median's "
            f"{baseline:.2f} by at least {margin:.0%}"
        )
        return Choice(errors, best, reason)
    reason = (
        f"no imputation: the best method ({best}, {errors[best]:.2f} years) does not beat the "
        f"global median's {baseline:.2f} years by {margin:.0%}"
    )
    return Choice(errors, None, reason)


def impute_age(
    frame: pd.DataFrame,
    neighbours: int = 25,
    folds: int = 5,
    seed: int = 0,
    margin: float = 0.05,
) -> pd.DataFrame:
    """Return, for every row of frame: canonical_user_id; knn_age, the age imputed by the
    chosen method for users without one (null when no method is chosen) and that method's
    out-of-fold prediction for users with one; is_out_of_fold; imputation_method (the chosen
    method, null when none); oof_<method>_age for the three methods (users with a known age;
    whole years, as imputed ages are).

    frame needs canonical_user_id, known_age (null when unknown), the FEATURES columns and
    optionally the age_group column (for group_median). Rows are sorted by canonical_user_id
    first, so the folds never depend on the order the rows arrive in.
    """
    frame = frame.sort_values("canonical_user_id", kind="stable").reset_index(drop=True)
    known = frame["known_age"].notna().to_numpy()
    n = len(frame)
    result = pd.DataFrame(
        {
            "canonical_user_id": frame["canonical_user_id"].to_numpy(),
            "knn_age": pd.array([pd.NA] * n, dtype="Int64"),
            "is_out_of_fold": known,
            "imputation_method": pd.Series([None] * n, dtype="string"),
            **{f"oof_{m}_age": np.full(n, np.nan) for m in METHODS},
        }
    )
    if known.sum() < max(neighbours, folds) * 2:
        log.warning("only %d users with a known age: age imputation skipped", int(known.sum()))
        return result
    features = _matrix(frame)
    groups = _groups(frame)
    ages = frame["known_age"].to_numpy(dtype=float)
    known_index = np.flatnonzero(known)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(known_index):
        for method in METHODS:
            predicted = _predict(
                method, neighbours, features, groups, ages, known_index[train], known_index[test]
            )
            # whole years, as imputed ages are: the errors are those of the ages users get
            result.loc[known_index[test], f"oof_{method}_age"] = np.rint(predicted)
    errors = {
        m: float(np.mean(np.abs(result.loc[known_index, f"oof_{m}_age"] - ages[known_index])))
        for m in METHODS
    }
    choice = choose_method(errors, margin)
    log.info("age imputation errors (years): %s; %s", errors, choice.reason)
    if choice.method is None:
        log.warning("%s", choice.reason)
        return result
    predictions = result[f"oof_{choice.method}_age"].to_numpy(dtype=float).copy()
    unknown_index = np.flatnonzero(~known)
    if len(unknown_index):
        predictions[unknown_index] = _predict(
            choice.method, neighbours, features, groups, ages, known_index, unknown_index
        )
    result["knn_age"] = pd.array(np.rint(predictions).astype(int), dtype="Int64")
    result["imputation_method"] = choice.method
    return result
