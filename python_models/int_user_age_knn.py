"""Age imputation chosen per build by out-of-fold error (personalization.imputation).

Grain: one row per canonical_user_id. knn_age (the historical name) is the age imputed by the
chosen method (knn or group_median, in imputation_method) for users without one - null for
everyone when no method beats the global median by var imputation_margin - and that method's
out-of-fold prediction for users with a known age (is_out_of_fold). oof_<method>_age hold every
method's out-of-fold predictions, from which rpt_data_quality reports the errors and the winner.
"""

from personalization.imputation import impute_age


def model(dbt, session):
    dbt.config(materialized="table", schema="intermediate")
    margin = float(dbt.config.get("imputation_margin") or 0.05)
    features = dbt.ref("int_user_imputation_features").df()
    return impute_age(features, margin=margin)
