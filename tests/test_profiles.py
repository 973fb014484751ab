"""Profiles on generated data against the generator's ground truth, imputation accuracy, and the
trait catalogue's validation errors."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURE_LANDING, ground_truth, make_warehouse, query

from personalization.dbt_runner import DbtError, run_dbt


@pytest.fixture(scope="module")
def truth(generated_warehouse) -> dict[str, dict]:
    """The users the shipped analytics policy profiles (who refused analytics have no profile)."""
    return ground_truth(generated_warehouse)


@pytest.fixture(scope="module")
def profiles(generated_warehouse) -> dict[str, dict]:
    with __import__("duckdb").connect(str(generated_warehouse.db_path), read_only=True) as con:
        frame = con.sql("select * from marts.dim_user_profiles").df()
    return {row["canonical_user_id"]: row for row in frame.to_dict("records")}


def test_one_profile_per_ground_truth_user(profiles, truth):
    assert set(profiles) == set(truth)


@pytest.mark.parametrize(
    "column", ["sessions", "orders", "cart_adds", "searches", "checkouts_started"]
)
def test_behaviour_counts_equal_the_ground_truth(profiles, truth, column):
    mismatches = {
        user: (profiles[user][column], int(row[column]))
        for user, row in truth.items()
        if profiles[user][column] != int(row[column])
    }
    assert mismatches == {}


def test_declared_and_corrected_attributes_equal_the_truth(profiles, truth):
    """The truth holds final values: declared, or corrected later with Profile Updated."""
    for attribute in ("age", "country", "city", "gender"):
        known = {u: r[attribute] for u, r in truth.items() if r[attribute]}
        assert known, attribute
        got = {u: str(profiles[u][attribute]) for u in known}
        assert got == known, attribute
        sources = {profiles[u][f"{attribute}_source"] for u in known}
        assert sources <= {"declared", "user_feedback"}, attribute


def test_user_feedback_overrides_declared_age(generated_warehouse, profiles, truth):
    corrected = query(
        generated_warehouse,
        "select distinct canonical_user_id from intermediate.int_events_stitched "
        "where event_name = 'Profile Updated' and trait_age is not null",
    )
    corrected = [user for (user,) in corrected]
    assert corrected, "the generator sends age corrections"
    for user in corrected:
        assert profiles[user]["age_source"] == "user_feedback"
        assert profiles[user]["age"] == int(truth[user]["age"])


def test_ages_from_a_birthday_are_whole_years_at_the_event(profiles, truth, generated_warehouse):
    with_birthday = {u: r["birthday"] for u, r in truth.items() if r["birthday"]}
    assert with_birthday
    rows = dict(
        query(
            generated_warehouse,
            "select canonical_user_id, min(cast(event_at as date)) from "
            "intermediate.int_events_stitched where event_type = 'identify' "
            "group by canonical_user_id",
        )
    )
    for user, birthday in with_birthday.items():
        born = __import__("datetime").date.fromisoformat(birthday)
        at = rows[user]
        expected = at.year - born.year - ((at.month, at.day) < (born.month, born.day))
        assert profiles[user]["age"] == expected, user


def test_imputed_ages_are_flagged_and_never_replace_observed_ones(profiles):
    imputed = [p for p in profiles.values() if p["age_source"] == "imputed"]
    observed = [p for p in profiles.values() if p["age_source"] in ("declared", "user_feedback")]
    assert imputed and observed
    assert {p["age_imputation_method"] for p in imputed} <= {"knn", "group_median"}
    assert all(p["age_imputation_method"] is None for p in observed)


def test_knn_imputation_beats_the_global_median(generated_warehouse):
    """Recompute the errors from the kNN out-of-fold predictions, then compare with the report."""
    rows = query(
        generated_warehouse,
        "select f.known_age, k.knn_age from intermediate.int_user_imputation_features as f "
        "join intermediate.int_user_age_knn as k using (canonical_user_id) "
        "where f.known_age is not null",
    )
    known = sorted(age for age, _ in rows)
    middle = len(known) // 2
    median = known[middle] if len(known) % 2 else (known[middle - 1] + known[middle]) / 2
    knn_mae = sum(abs(knn - age) for age, knn in rows) / len(rows)
    median_mae = sum(abs(median - age) for age, _ in rows) / len(rows)
    assert knn_mae < median_mae
    report = dict(
        query(
            generated_warehouse,
            "select metric_name, metric_value from marts.rpt_data_quality "
            "where metric_group = 'imputation' and dimension = 'age'",
        )
    )
    assert report["knn_mae_years"] == pytest.approx(knn_mae)
    assert report["global_median_mae_years"] == pytest.approx(median_mae)
    assert report["users_with_known_age"] == len(rows)


def test_quality_report_counts_match_the_manifest(generated_warehouse):
    manifest = json.loads((generated_warehouse.landing_path / "manifest.json").read_text())
    rows = query(
        generated_warehouse,
        "select metric_group, dimension, metric_value from marts.rpt_data_quality "
        "where metric_group in ('quarantine', 'trait_quarantine')",
    )
    assert {dimension: int(value) for _, dimension, value in rows} == {
        reason: count for reason, count in manifest["defects"].items() if count
    }
    [(duplicate_rate,)] = query(
        generated_warehouse,
        "select metric_value from marts.rpt_data_quality where metric_name = 'duplicate_rate'",
    )
    assert duplicate_rate == pytest.approx(manifest["duplicates"] / manifest["lines_total"])


@pytest.mark.parametrize(
    ("trait", "message"),
    [
        (
            {"name": "x", "type": "counter", "event": "Product Teleported"},
            "trait 'x': unknown event 'Product Teleported' (not in the tracking plan)",
        ),
        (
            {"name": "x", "type": "sum", "event": "Product Viewed", "property": "colour"},
            "trait 'x': unknown property 'colour' for event 'Product Viewed'",
        ),
        (
            {"name": "x", "type": "counter", "event": "Product Viewed", "window": "7 days"},
            "trait 'x': bad window '7 days'",
        ),
        (
            {"name": "x", "type": "median", "event": "Product Viewed", "property": "price"},
            "trait 'x': unknown type 'median'",
        ),
    ],
)
def test_a_bad_catalogue_entry_fails_with_its_name(tmp_path, trait, message):
    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    with pytest.raises(DbtError) as failure:
        run_dbt(
            ["compile", "--select", "int_user_catalogue_traits"],
            warehouse,
            dbt_vars={"trait_catalogue": [trait]},
        )
    assert message in str(failure.value)
