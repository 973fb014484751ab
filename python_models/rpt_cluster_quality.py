"""Clustering quality per method: k, silhouette, Davies-Bouldin, stability across seeds (ARI),
centroid drift since the previous run, user counts, fitted_at (= as_of). Grain: one row per method.

Thin wrapper: the logic is personalization.clustering.pipeline.quality_report.
"""

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.pipeline import quality_report
from personalization.clustering.warehouse import fitted_at


def model(dbt, session):
    dbt.config(materialized="table")
    config = ClusteringConfig.from_settings(
        k_min=dbt.config.get("clustering_k_min"),
        k_max=dbt.config.get("clustering_k_max"),
        random_state=dbt.config.get("clustering_random_state"),
        memory_budget_mb=dbt.config.get("clustering_memory_budget_mb"),
        weak_silhouette=dbt.config.get("clustering_weak_silhouette"),
    )
    vectors = dbt.ref("int_user_behaviour_vectors").df()
    assignments = dbt.ref("fct_user_clusters").df()
    clusters = dbt.ref("dim_clusters").df()
    return quality_report(
        vectors, assignments, clusters, config, fitted_at=fitted_at(dbt.config.get("as_of"))
    )
