"""dbt builds the clustering models and their data tests; ids stay stable between dbt runs."""

from __future__ import annotations

import shutil

import duckdb
import pytest
from conftest import ground_truth, make_warehouse, query

from personalization.dbt_runner import run_dbt

CLUSTERING_MODELS = [
    "int_user_behaviour_vectors",
    "fct_user_clusters",
    "dim_clusters",
    "rpt_cluster_quality",
]


def test_every_user_clustered_once_per_method(generated_warehouse):
    """The fixture's dbt build ran the Python models and their tests; the figures agree."""
    users = query(
        generated_warehouse, "select count(*) from intermediate.int_user_behaviour_vectors"
    )
    per_method = query(
        generated_warehouse,
        "select method, count(*), count(distinct canonical_user_id), min(cluster_id), "
        "count(distinct cluster_id) filter (where cluster_id >= 0) "
        "from marts.fct_user_clusters group by method order by method",
    )
    n = users[0][0]
    assert n > 450
    assert [row[:3] for row in per_method] == [("hierarchical", n, n), ("kmeans", n, n)]
    quality = query(
        generated_warehouse,
        "select method, k, n_users, silhouette, stability_ari, fitted_at "
        "from marts.rpt_cluster_quality order by method",
    )
    for (method, k, n_users, silhouette, ari, fitted), row in zip(quality, per_method, strict=True):
        assert method == row[0] and k == row[4] and n_users == n
        assert 3 <= k <= 8 and silhouette > 0.2 and ari >= 0.9
        assert str(fitted) == "2026-01-11 00:00:00"
    # persona table: sizes add up to every user, names agree with the fact table
    mismatched = query(
        generated_warehouse,
        "select count(*) from marts.fct_user_clusters as f "
        "left join marts.dim_clusters as d on f.method = d.method and f.cluster_id = d.cluster_id "
        "where d.cluster_name is distinct from f.cluster_name",
    )
    assert mismatched == [(0,)]
    sizes = query(
        generated_warehouse, "select method, sum(size) from marts.dim_clusters group by method"
    )
    assert {size for _, size in sizes} == {n}


def test_cluster_ids_stable_between_dbt_runs_and_memory_guard(generated_warehouse, tmp_path):
    """A rebuild one day later (recency changes for everyone) keeps the cluster ids: the Python
    model reads the previous dim_clusters. A too small memory budget fails the build clearly."""
    root = tmp_path / "wh"
    root.mkdir()
    shutil.copy(generated_warehouse.db_path, root / "warehouse.duckdb")
    warehouse = make_warehouse(root, generated_warehouse.landing_path, "2026-01-12T00:00:00Z")
    before = kmeans_ids(warehouse)
    run_dbt(["build", "--select", *CLUSTERING_MODELS], warehouse)
    after = kmeans_ids(warehouse)
    assert after.keys() == before.keys()
    same = sum(after[u] == before[u] for u in after) / len(after)
    assert same >= 0.9
    drift = query(warehouse, "select method, drift_mean from marts.rpt_cluster_quality")
    # recency moved by a day for everyone (log1p(0.2) -> log1p(1.2) for the most recent users):
    # the centroids moved, measurably, yet every cluster kept its id
    assert all(value is not None and 0.1 < value < 1.0 for _, value in drift)
    assert query(warehouse, "select max(fitted_at) from marts.rpt_cluster_quality")[0][0].day == 12

    failed = run_dbt(
        ["build", "--select", "fct_user_clusters"],
        warehouse,
        dbt_vars={"clustering_memory_budget_mb": 1},
        check=False,
    )
    assert failed.returncode != 0
    assert "MemoryBudgetError" in failed.stdout and "memory budget of 1 MB" in failed.stdout
    # the failed build left the previous tables in place
    assert kmeans_ids(warehouse) == after

    # the data tests catch a user assigned twice for one method and a user left out of another
    with duckdb.connect(str(warehouse.db_path)) as con:
        con.execute(
            "insert into marts.fct_user_clusters select * from marts.fct_user_clusters "
            "where method = 'kmeans' order by canonical_user_id limit 1"
        )
        con.execute(
            "delete from marts.fct_user_clusters where method = 'hierarchical' and "
            "canonical_user_id = (select max(canonical_user_id) from marts.fct_user_clusters)"
        )
    tests = [
        "assert_every_user_clustered_once_per_method",
        "unique_combination_of_columns_fct_user_clusters_canonical_user_id__method",
    ]
    failed = run_dbt(["test", "--select", *tests], warehouse, check=False)
    assert failed.returncode != 0
    for name in tests:
        assert f"FAIL 1 {name}" in failed.stdout, failed.stdout[-2000:]


def kmeans_ids(warehouse) -> dict[str, int]:
    return dict(
        query(
            warehouse,
            "select canonical_user_id, cluster_id from marts.fct_user_clusters "
            "where method = 'kmeans'",
        )
    )


@pytest.mark.parametrize("column", ["recency_days", "sessions", "revenue"])
def test_vectors_match_ground_truth(generated_warehouse, column):
    """Per-user features equal the generator's counts (sessions, revenue) and last_seen_at, for
    exactly the users the shipped analytics policy profiles."""
    from datetime import datetime

    truth = ground_truth(generated_warehouse)
    as_of = datetime.fromisoformat("2026-01-11T00:00:00+00:00")
    rows = query(
        generated_warehouse,
        f"select canonical_user_id, {column} from intermediate.int_user_behaviour_vectors",
    )
    assert {user for user, _ in rows} == set(truth)
    for user, value in rows:
        row = truth[user]
        if column == "recency_days":
            last = datetime.fromisoformat(row["last_seen_at"].replace("Z", "+00:00"))
            expected = (as_of - last).total_seconds() / 86_400
            assert value == pytest.approx(expected, abs=1e-3)
        elif column == "sessions":
            assert value == int(row["sessions"])
        else:
            assert value == pytest.approx(float(row["revenue"]), abs=0.01)
