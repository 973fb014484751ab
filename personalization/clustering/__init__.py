"""Behavioural clustering: K-Means and hierarchical clusters, stable labels, personas, quality.

One concern per module: config, features (eligibility, log1p + scaling), kmeans, hierarchical
(Ward on a bounded sample, MemoryBudgetError), labels (Hungarian matching between runs), quality,
personas, pipeline (the three mart tables) and pictures (PNG reports).
"""

from __future__ import annotations

from pathlib import Path

from personalization.clustering.config import DEFAULT_FEATURES, ClusteringConfig
from personalization.clustering.hierarchical import MemoryBudgetError
from personalization.clustering.pipeline import assign_clusters, describe_clusters, quality_report


def write_cluster_pictures(db_path: Path, out_dir: Path) -> list[Path]:
    """PNG pictures of the clusters in the warehouse at db_path (see pictures.py); matplotlib
    is imported only here, so the dbt models never load it."""
    from personalization.clustering import pictures

    return pictures.write_cluster_pictures(db_path, out_dir)


__all__ = [
    "DEFAULT_FEATURES",
    "ClusteringConfig",
    "MemoryBudgetError",
    "assign_clusters",
    "describe_clusters",
    "quality_report",
    "write_cluster_pictures",
]
