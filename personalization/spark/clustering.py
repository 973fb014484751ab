"""User clustering on Spark: MLlib `KMeans`, and a sample-fit Ward tree with a distributed
assignment as the hierarchical method.

The DuckDB path (python_models/fct_user_clusters.py, personalization.clustering) fits
scikit-learn's KMeans and a Ward tree on a sample. On Spark:

- the feature choice and scaling are the DuckDB path's own (`prepare`: the same features, the
  same log/robust scaling), fitted on the driver - at scale on a seeded sample of the vectors,
  since they need only medians and quantiles of a few thousand rows;
- `kmeans`: every candidate k (the same `candidate_ks`) is fitted with MLlib `KMeans` and scored
  by MLlib's silhouette (`ClusteringEvaluator`, squared Euclidean distance); the smallest k within
  the silhouette tolerance of the best wins (`pick_k`, as on DuckDB); the model assigns every
  user (distributed);
- `hierarchical`: Ward's tree on the DuckDB path's seeded sample (`fit_ward`, on the driver: the
  sample is bounded by ward_sample_size), and every user assigned to the nearest centroid by a
  Spark query (`assign_nearest`). MLlib's `BisectingKMeans` was tried first: in pyspark 4.0.5 it
  left all 499 users of the generated data in one cluster for every k and seed tried (its
  training cost stayed the total variance: no split was accepted), so it is not used.

`spark_cluster_labels` returns one row per (user, method) with the label Spark gave; the Spark
lane compares them with DuckDB's fct_user_clusters by adjusted Rand index (labels are
arbitrary, so only the partition is compared).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from personalization.clustering.config import ClusteringConfig
from personalization.clustering.hierarchical import fit_ward
from personalization.clustering.kmeans import Fit, candidate_ks, pick_k
from personalization.clustering.pipeline import assign_clusters, prepare

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

KEY = "canonical_user_id"
SPARK_METHODS = ("kmeans", "hierarchical")


def fit_kmeans_mllib(
    frame: DataFrame, n: int, config: ClusteringConfig
) -> tuple[int, DataFrame, dict[int, float]]:
    """MLlib KMeans for every candidate k; the smallest k within the silhouette tolerance of the
    best. Returns k, the users' predictions (`prediction`) and the silhouettes by k."""
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.evaluation import ClusteringEvaluator

    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="prediction")
    predictions: dict[int, DataFrame] = {}
    silhouettes: dict[int, float] = {}
    for k in candidate_ks(n, config):
        model = KMeans(k=k, seed=config.random_state, maxIter=100, tol=1e-6).fit(frame)
        predicted = model.transform(frame).cache()
        if predicted.select("prediction").distinct().count() < 2:
            continue
        predictions[k] = predicted
        silhouettes[k] = float(evaluator.evaluate(predicted))
    if not silhouettes:
        raise ValueError("kmeans: no candidate k produced two or more clusters")
    k = pick_k(silhouettes, config.silhouette_tolerance)
    rounded = {c: round(s, 3) for c, s in silhouettes.items()}
    log.info("spark kmeans silhouette by k: %s; k=%d", rounded, k)
    return k, predictions[k], silhouettes


def assign_nearest(frame: DataFrame, centroids: np.ndarray) -> DataFrame:
    """Every row of `frame` (KEY, `values`: array<double>) with the index of its nearest
    centroid (squared Euclidean distance; the lower index on a tie) as `prediction`, computed by
    Spark (the centroids travel with the query)."""
    from pyspark.sql import functions as F

    rows = [(i, [float(v) for v in c]) for i, c in enumerate(centroids)]
    spark = frame.sparkSession
    centres = F.broadcast(spark.createDataFrame(rows, ["centroid", "centre"]))
    distance = F.aggregate(
        F.zip_with("values", "centre", lambda a, b: (a - b) * (a - b)),
        F.lit(0.0),
        lambda total, x: total + x,
    )
    scored = frame.crossJoin(centres).withColumn("distance", distance)
    return scored.groupBy(KEY).agg(
        F.min_by("centroid", F.struct("distance", "centroid")).alias("prediction")
    )


def spark_fit(spark: SparkSession) -> Callable[[str, np.ndarray, ClusteringConfig], Fit]:
    """A fitter for `assign_clusters(..., fit=)`: one method fitted and assigned on Spark (see the
    module docstring) on the scaled features `x`; the labels come back to the driver in `x`'s
    row order (one small integer per user), the centroids are the members' means (k-means) or
    the Ward sample's centroids, and the distances are computed on the driver."""

    def fit(method: str, x: np.ndarray, config: ClusteringConfig) -> Fit:
        from pyspark.ml.functions import array_to_vector

        rows = [(i, [float(v) for v in row]) for i, row in enumerate(x)]
        frame = spark.createDataFrame(rows, [KEY, "values"])
        frame = frame.withColumn("features", array_to_vector("values")).cache()
        if method == "kmeans":
            k, predicted, silhouettes = fit_kmeans_mllib(frame, len(rows), config)
            centroids = None
        elif method == "hierarchical":
            ward = fit_ward(x, config, assign=False)
            k, silhouettes = ward.k, ward.silhouettes
            predicted = assign_nearest(frame, ward.centroids)
            centroids = ward.centroids
        else:
            raise ValueError(f"unknown Spark clustering method {method!r}; known: {SPARK_METHODS}")
        found = predicted.select(KEY, "prediction").toPandas().sort_values(KEY)
        labels = found["prediction"].to_numpy(dtype=np.int64)
        frame.unpersist()
        if len(labels) != len(x):
            raise ValueError(f"{method}: Spark labelled {len(labels)} of {len(x)} users")
        if centroids is None:
            centroids = np.vstack([x[labels == c].mean(axis=0) for c in range(k)])
        distances = np.linalg.norm(x - centroids[labels], axis=1)
        return Fit(method, k, centroids, labels, distances, silhouettes)

    return fit


def spark_assign_clusters(
    spark: SparkSession,
    vectors: pd.DataFrame,
    config: ClusteringConfig,
    previous_assignments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """fct_user_clusters from Spark's labels: the DuckDB path's `assign_clusters` (stable ids,
    persona names, the insufficient_data cluster) with the fit done by Spark."""
    return assign_clusters(
        vectors, config, previous_assignments, methods=SPARK_METHODS, fit=spark_fit(spark)
    )


def spark_cluster_labels(
    spark: SparkSession,
    vectors: pd.DataFrame,
    config: ClusteringConfig,
    methods: tuple[str, ...] = SPARK_METHODS,
) -> pd.DataFrame:
    """One row per clustered user and method (canonical_user_id, method, k, label), fitted and
    assigned on Spark on the DuckDB path's features (see the module docstring)."""
    prep = prepare(vectors, config)
    if not len(prep.user_ids):
        return pd.DataFrame(columns=[KEY, "method", "k", "label"])
    fit = spark_fit(spark)
    results = []
    for method in methods:
        fitted = fit(method, prep.x, config)
        results.append(
            pd.DataFrame(
                {KEY: prep.user_ids, "method": method, "k": fitted.k, "label": fitted.labels}
            ).astype({"label": int})
        )
    return pd.concat(results, ignore_index=True)


def adjusted_rand_by_method(duckdb_clusters: pd.DataFrame, spark_labels: pd.DataFrame) -> dict:
    """Adjusted Rand index per method between DuckDB's fct_user_clusters (clustered users:
    cluster_id >= 0) and the Spark labels, on the users both clustered."""
    from sklearn.metrics import adjusted_rand_score

    scores: dict[str, float] = {}
    for method, spark_rows in spark_labels.groupby("method"):
        duck = duckdb_clusters[
            (duckdb_clusters["method"] == method) & (duckdb_clusters["cluster_id"] >= 0)
        ]
        joined = duck.merge(spark_rows, on=KEY)
        scores[str(method)] = float(adjusted_rand_score(joined["cluster_id"], joined["label"]))
    return scores
