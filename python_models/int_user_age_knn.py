"""kNN age imputation from behaviour (personalization.imputation).

Grain: one row per canonical_user_id. knn_age is the imputed age for users without one, and an
out-of-fold prediction for users with a known age (is_out_of_fold), used to measure accuracy.
"""

from personalization.imputation import impute_age


def model(dbt, session):
    dbt.config(materialized="table", schema="intermediate")
    features = dbt.ref("int_user_imputation_features").df()
    return impute_age(features.sort_values("canonical_user_id").reset_index(drop=True))
