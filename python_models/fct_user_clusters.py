"""Cluster of every user, per method. Grain: one row per (canonical_user_id, method).

Thin wrapper: the logic is personalization.clustering.pipeline.assign_clusters. Stable ids come
from matching the new clusters with this model's own previous output (dbt.this: the clusters
they share most members with), so nothing is read outside ref() but the model itself.
"""

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.pipeline import assign_clusters
from personalization.clustering.warehouse import read_previous


def model(dbt, session):
    dbt.config(materialized="table")
    # dbt passes a config value to a Python model only if the model's own source calls
    # dbt.config.get for it, so these calls cannot move into a shared helper.
    config = ClusteringConfig.from_settings(
        k_min=dbt.config.get("clustering_k_min"),
        k_max=dbt.config.get("clustering_k_max"),
        random_state=dbt.config.get("clustering_random_state"),
        memory_budget_mb=dbt.config.get("clustering_memory_budget_mb"),
        weak_silhouette=dbt.config.get("clustering_weak_silhouette"),
    )
    vectors = dbt.ref("int_user_behaviour_vectors").df()
    previous = read_previous(session, dbt.this.database, dbt.this.schema, dbt.this.identifier)
    return assign_clusters(vectors, config, previous)
