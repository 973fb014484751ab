"""Checks shared by the clustering tests: every persona claim holds, every user is assigned."""

from __future__ import annotations

import pandas as pd

from personalization.clustering.personas import HIGH, claim_of, name_phrases


def false_claims(vectors: pd.DataFrame, assignments: pd.DataFrame) -> list[str]:
    """Every phrase of every persona name whose claim does not hold, recomputed from the real
    values: the members' median of the feature against the median of all clustered users
    (strictly on the claimed side), and an absolute phrase's own condition."""
    values = vectors.set_index("canonical_user_id")
    wrong: list[str] = []
    clustered = assignments[assignments["cluster_id"] >= 0]
    for method, rows in clustered.groupby("method"):
        population = values.loc[rows["canonical_user_id"]]
        for name, members in rows.groupby("cluster_name"):
            member_values = values.loc[members["canonical_user_id"]]
            for text in name_phrases(str(name)):
                feature, direction, absolute = claim_of(text)
                median = float(member_values[feature].astype(float).median())
                overall = float(population[feature].astype(float).median())
                holds = median > overall if direction == HIGH else median < overall
                if absolute is not None:
                    holds = holds and absolute(median)
                if not holds:
                    wrong.append(f"{method} {name!r}: {text!r} ({feature} {median} vs {overall})")
    return wrong


def assert_everyone_assigned_once(vectors: pd.DataFrame, assignments: pd.DataFrame) -> None:
    """Each user exactly once per method; names unique per method (one name per cluster id)."""
    users = set(vectors["canonical_user_id"])
    for _, rows in assignments.groupby("method"):
        assert rows["canonical_user_id"].is_unique
        assert set(rows["canonical_user_id"]) == users
        names = rows.drop_duplicates("cluster_id")["cluster_name"]
        assert names.is_unique, names.tolist()
