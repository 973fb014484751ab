"""PNG pictures of the clusters in a built warehouse: a 2-D PCA projection coloured by cluster
and a heatmap of the centroids' z-scores, for each method (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from personalization.clustering.config import ClusteringConfig  # noqa: E402
from personalization.clustering.features import KEY, sample_indices  # noqa: E402
from personalization.clustering.pipeline import _labels_for, member_means, prepare  # noqa: E402

log = logging.getLogger(__name__)

VECTORS = "intermediate.int_user_behaviour_vectors"
ASSIGNMENTS = "marts.fct_user_clusters"
CLUSTERS = "marts.dim_clusters"
MAX_POINTS = 20_000


def _read(db_path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return (
            con.sql(f"select * from {VECTORS}").df(),
            con.sql(f"select * from {ASSIGNMENTS}").df(),
            con.sql(f"select * from {CLUSTERS}").df(),
        )


def write_cluster_pictures(db_path: Path, out_dir: Path) -> list[Path]:
    """Write clusters_<method>_pca.png and clusters_<method>_heatmap.png for every method in
    marts.fct_user_clusters of the warehouse at db_path; returns the paths written."""
    vectors, assignments, clusters = _read(db_path)
    features = tuple(
        c.removeprefix("centroid_") for c in clusters.columns if c.startswith("centroid_")
    )
    config = ClusteringConfig(features=features)
    prep = prepare(vectors, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = clusters.set_index(["method", "cluster_id"])["cluster_name"]
    written: list[Path] = []
    for method in sorted(assignments["method"].unique()):
        labels = _labels_for(prep, assignments.astype({KEY: str}), method)
        if len(np.unique(labels)) < 2:
            log.warning("%s: fewer than two clusters, no pictures", method)
            continue
        written.append(_pca_picture(prep.x, labels, names[method], method, out_dir, config))
        written.append(_heatmap(prep.x, labels, names[method], method, out_dir, prep.features))
    log.info("wrote %d cluster pictures to %s", len(written), out_dir)
    return written


def _pca_picture(
    x: np.ndarray,
    labels: np.ndarray,
    names: pd.Series,
    method: str,
    out_dir: Path,
    config: ClusteringConfig,
) -> Path:
    idx = sample_indices(len(x), MAX_POINTS, config.random_state)
    pca = PCA(n_components=2, random_state=config.random_state).fit(x)
    points = pca.transform(x[idx])
    fig, ax = plt.subplots(figsize=(8, 6))
    cmap = plt.get_cmap("tab10")
    for n, cluster_id in enumerate(np.unique(labels)):
        mask = labels[idx] == cluster_id
        ax.scatter(
            points[mask, 0],
            points[mask, 1],
            s=8,
            alpha=0.6,
            color=cmap(n % 10),
            label=f"{cluster_id}: {names.get(cluster_id, '')} ({int(mask.sum())} shown)",
        )
    ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.set_title(f"{method} clusters on behaviour vectors (PCA, {len(idx):,} users)")
    ax.legend(fontsize=7, loc="best", markerscale=2)
    fig.tight_layout()
    path = out_dir / f"clusters_{method}_pca.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _heatmap(
    x: np.ndarray,
    labels: np.ndarray,
    names: pd.Series,
    method: str,
    out_dir: Path,
    features: tuple[str, ...],
) -> Path:
    ids = np.unique(labels)
    means, _ = member_means(x, np.searchsorted(ids, labels), len(ids))
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(features), 1.5 + 0.5 * len(ids)))
    limit = max(1.0, float(np.nanmax(np.abs(means))))
    image = ax.imshow(means, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(features)), features, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(ids)), [f"{i}: {names.get(i, '')}" for i in ids], fontsize=8)
    for r in range(len(ids)):
        for c in range(len(features)):
            ax.text(c, r, f"{means[r, c]:+.1f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="centroid z-score (log1p, standardised)")
    ax.set_title(f"{method} cluster centroids")
    fig.tight_layout()
    path = out_dir / f"clusters_{method}_heatmap.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
