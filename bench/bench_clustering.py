"""Clustering benchmark: fit and assignment time and peak memory for N users (default 1M).

The behaviour vectors are synthetic, drawn per user from the generator's archetype profiles
(personalization.generator.users.ARCHETYPES: per-session ranges and probabilities), with the
same columns as intermediate.int_user_behaviour_vectors that the clustering reads.

    python bench/bench_clustering.py --users 1000000          # prints a JSON line of figures
    python bench/run.py clustering --events 1000000            # via the harness (events = users)
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from personalization.clustering import (  # noqa: E402
    ClusteringConfig,
    describe_clusters,
    quality_report,
)
from personalization.clustering.features import nearest_centroid  # noqa: E402
from personalization.clustering.hierarchical import fit_ward  # noqa: E402
from personalization.clustering.kmeans import _kmeans as kmeans_model  # noqa: E402
from personalization.clustering.kmeans import pick_k, select_k  # noqa: E402
from personalization.clustering.pipeline import assign_clusters, prepare  # noqa: E402
from personalization.generator.users import ARCHETYPES  # noqa: E402

log = logging.getLogger(__name__)
DAYS = 30
EVENTS_PER_USER = 60


def _mean(r: tuple[int, int]) -> float:
    return (r[0] + r[1]) / 2


def _total(rng: np.random.Generator, r: tuple[int, int], sessions: np.ndarray) -> np.ndarray:
    """Sum over `sessions` of a uniform integer in [lo, hi] (normal approximation)."""
    var = ((r[1] - r[0] + 1) ** 2 - 1) / 12
    draw = rng.normal(_mean(r) * sessions, np.sqrt(var * sessions))
    return np.clip(np.rint(draw), 0, None)


def synthetic_vectors(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """n users' behaviour vectors drawn from the archetype profiles; (vectors, archetype)."""
    rng = np.random.default_rng(seed)
    shares = np.array([a.share for a in ARCHETYPES])
    which = rng.choice(len(ARCHETYPES), size=n, p=shares / shares.sum())
    frames = []
    for index, a in enumerate(ARCHETYPES):
        m = int((which == index).sum())
        per_session = sum(map(_mean, (a.pages, a.searches, a.list_views, a.views, a.features)))
        per_session += _mean(a.views) * a.add_p * 1.5 + 1
        budget = EVENTS_PER_USER * a.activity * rng.lognormal(0.0, 0.35, m)
        sessions = np.maximum(1, np.rint(budget / per_session))
        pages = _total(rng, a.pages, sessions)
        searches = _total(rng, a.searches, sessions)
        list_views = _total(rng, a.list_views, sessions)
        views = _total(rng, a.views, sessions)
        features = _total(rng, a.features, sessions)
        adds = rng.binomial(views.astype(np.int64), a.add_p)
        p_checkout = a.checkout_p * min(1.0, a.add_p * max(_mean(a.views), 1.0))
        checkouts = rng.binomial(sessions.astype(np.int64), p_checkout)
        orders = rng.binomial(checkouts, a.order_p)
        price_median = 60.0 * np.exp(2.0 * a.price_exponent)
        viewed_price = np.where(views > 0, price_median * rng.lognormal(0.0, 0.3, m), 0.0)
        revenue = orders * _mean(a.qty) * price_median * rng.lognormal(0.0, 0.4, m)
        active_days_span = DAYS * a.active_until
        last_seen = active_days_span - rng.exponential(active_days_span / (sessions + 1))
        recency = DAYS - np.clip(last_seen, 0.0, active_days_span)
        events = pages + searches + list_views + views + features + adds + checkouts + orders
        events = np.maximum(events, 1)
        active_days = np.minimum(sessions, np.ceil(active_days_span))
        frames.append(
            pd.DataFrame(
                {
                    "recency_days": recency,
                    "sessions": sessions,
                    "orders": orders,
                    "revenue": revenue,
                    "basket_units_per_order": np.where(orders > 0, _mean(a.qty), np.nan),
                    "orders_per_checkout": np.where(
                        checkouts > 0, orders / np.maximum(checkouts, 1), np.nan
                    ),
                    "page_and_screen_views_per_session": pages / sessions,
                    "product_views_per_session": views / sessions,
                    "cart_adds_per_session": adds / sessions,
                    "feature_uses_per_session": features / sessions,
                    "searches_per_session": searches / sessions,
                    "avg_viewed_price": viewed_price,
                    "session_depth": events / sessions,
                    "events_per_active_day": events / active_days,
                    "events": events,
                    "archetype": a.name,
                }
            )
        )
    vectors = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    vectors = vectors.reset_index(drop=True)
    vectors.insert(0, "canonical_user_id", [f"user_{i:08d}" for i in range(n)])
    vectors["is_clusterable"] = vectors["events"] >= 5
    return vectors.drop(columns=["archetype"]), vectors["archetype"].to_numpy()


def measure(users: int, seed: int = 0) -> dict[str, float]:
    """Time each stage on `users` synthetic users; figures in seconds, peak RSS in MB."""
    from sklearn.metrics import adjusted_rand_score

    figures: dict[str, float] = {"users": users}
    config = ClusteringConfig()
    t0 = time.perf_counter()
    vectors, truth = synthetic_vectors(users, seed)
    figures["generate_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    prep = prepare(vectors, config)
    figures["transform_s"] = time.perf_counter() - t

    t = time.perf_counter()
    scores, sample_centroids = select_k(prep.x, config)
    k = pick_k(scores, config.silhouette_tolerance)
    figures["kmeans_select_k_s"] = time.perf_counter() - t
    model = kmeans_model(len(prep.x), k, config.random_state, config, init=sample_centroids[k]).fit(
        prep.x
    )
    figures["kmeans_fit_s"] = time.perf_counter() - t
    figures["kmeans_k"] = k
    t = time.perf_counter()
    labels, _ = nearest_centroid(prep.x, np.asarray(model.cluster_centers_))
    figures["kmeans_assign_s"] = time.perf_counter() - t
    eligible_truth = truth[vectors["is_clusterable"].to_numpy()]
    figures["kmeans_ari_vs_archetypes"] = adjusted_rand_score(eligible_truth, labels)

    t = time.perf_counter()
    ward = fit_ward(prep.x, config)
    figures["ward_fit_and_assign_s"] = time.perf_counter() - t
    figures["ward_k"] = ward.k
    t = time.perf_counter()
    nearest_centroid(prep.x, ward.centroids)
    figures["ward_assign_s"] = time.perf_counter() - t

    t = time.perf_counter()
    assignments = assign_clusters(vectors, config)
    figures["pipeline_assign_clusters_s"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters = describe_clusters(vectors, assignments, config)
    figures["pipeline_describe_s"] = time.perf_counter() - t
    t = time.perf_counter()
    quality_report(vectors, assignments, clusters, config, "2026-01-31T00:00:00Z")
    figures["pipeline_quality_s"] = time.perf_counter() - t
    figures["pipeline_total_s"] = (
        figures["pipeline_assign_clusters_s"]
        + figures["pipeline_describe_s"]
        + figures["pipeline_quality_s"]
    )
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def run_benchmark(
    users: int, run_child: Callable[[list[str]], tuple[float, float]]
) -> list[tuple[str, int, float, float]]:
    """Rows (benchmark, users, seconds, peak MB) for bench/run.py; the work runs in a child."""
    with tempfile.TemporaryDirectory(prefix="bench-clu-") as tmp:
        out = Path(tmp) / "figures.json"
        argv = [sys.executable, str(Path(__file__)), "--users", str(users), "--json", str(out)]
        run_child(argv)
        figures = json.loads(out.read_text())
    peak = figures["peak_mb"]
    return [
        ("clustering kmeans fit", users, figures["kmeans_fit_s"], peak),
        ("clustering kmeans assign", users, figures["kmeans_assign_s"], peak),
        ("clustering ward fit", users, figures["ward_fit_and_assign_s"], peak),
        ("clustering ward assign", users, figures["ward_assign_s"], peak),
        ("clustering all 3 marts", users, figures["pipeline_total_s"], peak),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = measure(args.users, args.seed)
    text = json.dumps({k: round(v, 4) for k, v in figures.items()})
    if args.json:
        args.json.write_text(text)
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
