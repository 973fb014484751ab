"""Cluster personas: name, size, share, centroid in real units, distinguishing features and the
centroid's shift since the previous run. Grain: one row per (method, cluster_id).

Thin wrapper: the logic is personalization.clustering.pipeline.describe_clusters.
"""

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.pipeline import describe_clusters
from personalization.clustering.warehouse import read_previous


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
    previous = read_previous(session, dbt.this.database, dbt.this.schema, dbt.this.identifier)
    return describe_clusters(vectors, assignments, config, previous)
