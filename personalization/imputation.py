"""kNN imputation of age from behaviour, with an honest accuracy estimate.

Users whose age is known train the model; users without one get the mean age of their k nearest
known neighbours in a standardised behaviour space. For users whose age IS known, the module also
returns an out-of-fold prediction (the model never saw that user), so accuracy can be measured
against the declared values without leaking them.
"""

from __future__ import annotations

import logging

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


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    values = frame.loc[:, list(FEATURES)].astype(float).fillna(0.0).copy()
    for column in LOG_FEATURES:
        values[column] = np.log1p(values[column].clip(lower=0))
    return values.to_numpy()


def _model(neighbours: int):
    return make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=neighbours))


def impute_age(
    frame: pd.DataFrame, neighbours: int = 25, folds: int = 5, seed: int = 0
) -> pd.DataFrame:
    """Return canonical_user_id, knn_age and is_out_of_fold for every row of frame.

    frame needs canonical_user_id, known_age (null when unknown) and the FEATURES columns.
    Rows with a known age get an out-of-fold prediction (is_out_of_fold true).
    """
    known = frame["known_age"].notna().to_numpy()
    result = pd.DataFrame(
        {
            "canonical_user_id": frame["canonical_user_id"].to_numpy(),
            "knn_age": np.full(len(frame), np.nan),
            "is_out_of_fold": known,
        }
    )
    if known.sum() < max(neighbours, folds) * 2:
        log.warning("only %d users with a known age: kNN imputation skipped", int(known.sum()))
        return result.assign(knn_age=pd.array([pd.NA] * len(frame), dtype="Int64"))
    features = _matrix(frame)
    ages = frame["known_age"].to_numpy(dtype=float)
    known_index = np.flatnonzero(known)
    predictions = np.full(len(frame), np.nan)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(known_index):
        model = _model(neighbours).fit(features[known_index[train]], ages[known_index[train]])
        predictions[known_index[test]] = model.predict(features[known_index[test]])
    unknown_index = np.flatnonzero(~known)
    if len(unknown_index):
        model = _model(neighbours).fit(features[known_index], ages[known_index])
        predictions[unknown_index] = model.predict(features[unknown_index])
    result["knn_age"] = pd.array(np.rint(predictions).astype(int), dtype="Int64")
    return result
