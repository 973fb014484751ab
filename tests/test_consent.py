"""Consent always wins (docs/privacy.md, "Consent"): withdrawals read from every line that
carries one, ordered by server time, the analytics policy, and the no-signal warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import make_warehouse, query, user_key

from personalization.dbt_runner import Warehouse, run_dbt
from personalization.publish import PUBLISHED_DB_NAME, publish

AS_OF = "2026-01-04T00:00:00Z"
SEGMENTS = [
    {
        "name": "viewers",
        "description": "viewed a product",
        "owner": "tests",
        "min_size": 1,
        "rule": {"event": {"name": "Product Viewed"}},
    },
    {
        "name": "viewers_ads",
        "description": "viewed a product, for advertising",
        "owner": "tests",
        "min_size": 1,
        "requires_consent": "advertising",
        "rule": {"event": {"name": "Product Viewed"}},
    },
]
GRANT = {"personalization": True, "advertising": True, "analytics": True}
WITHDRAW = {"personalization": False, "advertising": False}
# the tables a person is activated from
ACTIVATION = {
    "marts.people": "id",
    "marts.audience_memberships": "person_id",
}


def line(message_id: str, user: str | None, timestamp: str, received: str | None = None,
         event: str = "Product Viewed", consent: dict | None = None,
         properties: dict | None = None, **extra: Any) -> str:  # fmt: skip
    """A track line of `user` (None: anonymous, give anonymousId); its consent in
    context.consent.categoryPreferences."""
    message: dict[str, Any] = {
        "messageId": message_id,
        "type": "track",
        "event": event,
        **({"userId": user} if user is not None else {}),
        "timestamp": timestamp,
        "sentAt": timestamp,
        "properties": properties
        if properties is not None
        else {"product_id": "P1", "category": "toys", "price": 5},
        **extra,
    }
    if received is not None:
        message["receivedAt"] = received
    if consent is not None:
        message["context"] = {"consent": {"categoryPreferences": consent}}
    return json.dumps(message)


DAY_ONE = [
    # every user views a product on day one with every consent granted
    *(line(f"{u}-grant", u, "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000Z",
           consent=GRANT)
      for u in ("c-quarantined", "c-event", "c-clock", "c-control", "c-late", "c-tie",
                "c-later", "c-future", "c-future-w", "c-regrant")),
    # 1. the withdrawal rides on an event the tracking plan quarantines (unknown event)
    line("c-quarantined-w", "c-quarantined", "2026-01-02T10:00:00.000Z",
         "2026-01-02T10:00:01.000Z", event="Wishlist Shared", consent=WITHDRAW),
    # 2. a custom Consent Updated event, its categories in the properties
    line("c-event-w", "c-event", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         event="Consent Updated", properties=WITHDRAW),
    # 3. the device clock is a day behind: client time before the grant, server time after it
    line("c-clock-w", "c-clock", "2025-12-31T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    # a late event (client time before the withdrawal, received after it) still carries the
    # grant of its own moment: the withdrawal stands
    line("c-late-w", "c-late", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    line("c-late-stale", "c-late", "2026-01-01T12:00:00.000Z", "2026-01-02T12:00:00.000Z",
         consent=GRANT),
    # a grant and a withdrawal received at the same second: the withdrawal wins the tie
    line("c-tie-g", "c-tie", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=GRANT),
    line("c-tie-w", "c-tie", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    # a grant newer than the withdrawal by both clocks is a real change of mind
    line("c-later-w", "c-later", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    line("c-later-g", "c-later", "2026-01-03T10:00:00.000Z", "2026-01-03T10:00:01.000Z",
         consent=GRANT),
    # two grants after a withdrawal: the latest by server time is a late event (client time
    # before the withdrawal's), the earlier one is newer by both clocks: granted
    line("c-regrant-w", "c-regrant", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    line("c-regrant-g", "c-regrant", "2026-01-02T12:00:00.000Z", "2026-01-02T12:00:01.000Z",
         consent=GRANT),
    line("c-regrant-late", "c-regrant", "2026-01-02T09:00:00.000Z", "2026-01-02T14:00:01.000Z",
         consent=GRANT),
    # a client clock in the future (quarantined future_timestamp) is not trusted: a copy of an
    # old grant stamped a month ahead cannot lift the withdrawal received before it...
    line("c-future-w1", "c-future", "2026-01-02T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    line("c-future-g", "c-future", "2026-02-01T10:00:00.000Z", "2026-01-02T11:00:00.000Z",
         consent=GRANT),
    # ...and a withdrawal stamped a month ahead does not outlive a later real grant
    line("c-future-w2", "c-future-w", "2026-02-01T10:00:00.000Z", "2026-01-02T10:00:01.000Z",
         consent=WITHDRAW),
    line("c-future-w-g", "c-future-w", "2026-01-03T10:00:00.000Z", "2026-01-03T10:00:01.000Z",
         consent=GRANT),
    # refuses analytics only (personalisation granted)
    line("c-no-analytics", "c-no-analytics", "2026-01-01T10:00:00.000Z",
         "2026-01-01T10:00:01.000Z", consent={**GRANT, "analytics": False}),
    # two shared devices (each anonymous id linked to two users, so merged into neither); the
    # anonymous lines of d-refuse refuse analytics, those of d-control grant it
    *(line(f"{device}-{u}", u, "2026-01-01T11:00:00.000Z", "2026-01-01T11:00:01.000Z",
           consent=GRANT, anonymousId=device)
      for device, users in (("d-refuse", ("c-sh1", "c-sh2")), ("d-control", ("c-sh3", "c-sh4")))
      for u in users),
    line("d-refuse-anon", None, "2026-01-01T12:00:00.000Z", "2026-01-01T12:00:01.000Z",
         consent={**GRANT, "analytics": False}, anonymousId="d-refuse"),
    line("d-control-anon", None, "2026-01-01T12:00:00.000Z", "2026-01-01T12:00:01.000Z",
         consent=GRANT, anonymousId="d-control"),
]  # fmt: skip
WITHDRAWN = ("c-quarantined", "c-event", "c-clock", "c-late", "c-tie", "c-future")
# at the shipped analytics_consent_policy (exclude) c-no-analytics is not profiled, so it is in no
# activation table either; at `profile` it is activated too
ACTIVATED = ("c-control", "c-later", "c-future-w", "c-regrant")


def build(warehouse: Warehouse, **dbt_vars: Any) -> None:
    run_dbt(
        ["build", "--select", "+people", "+audience_memberships", "+dim_user_profiles",
         "+rpt_data_quality", "+rpt_identity_audit", "--exclude-resource-type", "unit_test"],
        warehouse,
        dbt_vars={"segment_definitions": SEGMENTS, "segment_clusters_enabled": False, **dbt_vars},
    )  # fmt: skip


def consent_report(warehouse: Warehouse) -> dict[tuple[str, str], float]:
    rows = query(
        warehouse,
        "select metric_name, dimension, metric_value from marts.rpt_data_quality "
        "where metric_group = 'privacy' and metric_name != 'values_scrubbed'",
    )
    return {(name, dimension): value for name, dimension, value in rows}


def activated(warehouse: Warehouse) -> dict[str, set[str]]:
    return {
        table: {key for (key,) in query(warehouse, f"select distinct {column} from {table}")}
        for table, column in ACTIVATION.items()
    }


def write(landing: Path, day: str, lines: list[str]) -> None:
    folder = landing / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0000.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def consent_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    root = tmp_path_factory.mktemp("consent")
    write(root / "landing", "2026-01-02", DAY_ONE)
    warehouse = make_warehouse(root, root / "landing", as_of=AS_OF)
    build(warehouse)
    return warehouse


def test_a_withdrawal_always_removes_the_user_from_activation(consent_warehouse) -> None:
    tables = activated(consent_warehouse)
    for table, keys in tables.items():
        for user in WITHDRAWN:
            assert user_key(user) not in keys, (table, user)
        # the control users are there: the check can fail
        for user in ACTIVATED:
            assert user_key(user) in keys, (table, user)
    # the quarantined line and the Consent Updated event are not staged, yet they count
    statuses = dict(
        query(
            consent_warehouse,
            "select message_id, status from staging.stg_landing__events_checked "
            "where message_id in ('c-quarantined-w', 'c-event-w')",
        )
    )
    assert statuses == {"c-quarantined-w": "quarantined", "c-event-w": "quarantined"}
    [(future_reasons,)] = query(
        consent_warehouse,
        "select list_sort(list(distinct reason)) from staging.stg_landing__events_checked, "
        "unnest(reasons) as r(reason) where message_id in ('c-future-g', 'c-future-w2')",
    )
    assert future_reasons == ["future_timestamp"]
    consent = {
        user: row
        for user, *row in query(
            consent_warehouse,
            "select canonical_user_id, has_personalization_consent, has_advertising_consent, "
            "has_analytics_consent, has_consent_signal from intermediate.int_user_consent",
        )
    }
    for user in WITHDRAWN:
        # analytics was not withdrawn: only the categories a signal names change
        assert consent[user_key(user)] == [False, False, True, True], user
    assert consent[user_key("c-no-analytics")] == [True, True, False, True]
    # rpt_data_quality counts the signal lines by status, the users on the default and the users
    # the shipped analytics policy (exclude) leaves unprofiled
    assert consent_report(consent_warehouse) == {
        # 10 day-one grants, 13 more lines and 6 shared-device lines; the unknown event, Consent
        # Updated and the two lines stamped a month ahead are quarantined
        ("consent_signal_lines", "staged"): 29.0,
        ("consent_signal_lines", "quarantined"): 4.0,
        ("users_without_consent_signal", "all"): 0.0,
        # c-no-analytics and the shared device d-refuse
        ("users_not_profiled_by_policy", "all"): 2.0,
    }


def in_marts(warehouse: Warehouse, raw_id: str) -> list[str]:
    """The marts tables and views with a row holding the user's key in some column."""
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        return key_hits(con, "marts", user_key(raw_id))


def key_hits(con: duckdb.DuckDBPyConnection, schema: str, key: str) -> list[str]:
    names = con.execute(
        "select table_name from duckdb_tables() where schema_name = $s union all "
        "select view_name from duckdb_views() where schema_name = $s",
        {"s": schema},
    ).fetchall()
    return [
        name
        for (name,) in names
        if con.execute(
            f'select count(*) from {schema}."{name}" as t where contains(cast(t as varchar), $k)',
            {"k": key},
        ).fetchone()[0]
    ]


def test_an_analytics_refusal_excludes_the_user_by_default(consent_warehouse, tmp_path) -> None:
    """The shipped analytics_consent_policy (exclude): the user who refused analytics (with
    personalization and advertising granted) is in no marts table or view and no published
    file; their events are staged and counted; the control users are published."""
    staged = query(
        consent_warehouse,
        "select count(*) from staging.stg_events where user_id = 'c-no-analytics'",
    )
    assert staged == [(1,)]
    # no event of theirs is left for any profile, session, segment or cluster
    assert in_marts(consent_warehouse, "c-no-analytics") == []
    assert {"dim_user_profiles", "people", "audience_memberships"} <= set(
        in_marts(consent_warehouse, "c-control")
    )
    [(stitched,)] = query(
        consent_warehouse,
        "select count(*) from intermediate.int_events_stitched "
        f"where canonical_user_id = '{user_key('c-no-analytics')}'",
    )
    assert stitched == 0
    published = publish(consent_warehouse.db_path, tmp_path / "published")
    with duckdb.connect(str(published / PUBLISHED_DB_NAME), read_only=True) as con:
        assert key_hits(con, "marts", user_key("c-no-analytics")) == []
        assert "dim_user_profiles" in key_hits(con, "marts", user_key("c-control"))


def test_a_shared_device_that_refused_analytics_is_not_audited(consent_warehouse) -> None:
    """rpt_identity_audit names shared devices by pseudonym; one whose own lines refused
    analytics is left out under the shipped policy, like a user (the other device shows the
    check can fail)."""
    assert query(
        consent_warehouse, "select anonymous_id, linked_users from marts.rpt_identity_audit"
    ) == [(user_key("d-control"), 2)]
    assert in_marts(consent_warehouse, "d-refuse") == []


def test_the_profile_policy_profiles_an_analytics_refusal(consent_warehouse, tmp_path) -> None:
    """At `profile` the refusal is recorded but the user is profiled and, with personalization
    consent, activated; the withdrawals still win."""
    warehouse = make_warehouse(tmp_path, consent_warehouse.landing_path, as_of=AS_OF)
    build(warehouse, analytics_consent_policy="profile")
    refuser = user_key("c-no-analytics")
    profiles = {key for (key,) in query(warehouse, "select canonical_user_id from "
                                                   "marts.dim_user_profiles")}  # fmt: skip
    assert refuser in profiles
    assert consent_report(warehouse)[("users_not_profiled_by_policy", "all")] == 0.0
    for table, members in activated(warehouse).items():
        assert refuser in members, table
        assert user_key("c-control") in members, table
        assert not members & {user_key(user) for user in WITHDRAWN}, table


def test_no_consent_signal_takes_the_default_and_warns(tmp_path) -> None:
    """A build without any consent signal warns; each category takes consent_default (here at
    a non-default value: personalisation granted)."""
    write(tmp_path / "landing", "2026-01-02", [line("n-1", "n-user", "2026-01-02T10:00:00.000Z")])
    warehouse = make_warehouse(tmp_path, tmp_path / "landing", as_of=AS_OF)
    default = {"personalization": True, "advertising": False, "analytics": True}
    result = run_dbt(
        ["build", "--select", "+int_user_consent", "assert_consent_signals_present",
         "--exclude-resource-type", "unit_test"],
        warehouse,
        dbt_vars={"consent_default": default},
    )  # fmt: skip
    assert "Warning in test assert_consent_signals_present" in result.stdout
    assert query(
        warehouse,
        "select canonical_user_id, has_personalization_consent, has_advertising_consent, "
        "has_analytics_consent, has_consent_signal from intermediate.int_user_consent",
    ) == [(user_key("n-user"), True, False, True, False)]


def test_the_micro_batch_applies_a_withdrawal(consent_warehouse) -> None:
    """The micro-batch rebuilds consent and the activation tables: a withdrawal landed after
    the build removes the user on the next micro-batch (incremental, its own selection)."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def("microbatch_job")
    selected = {key.path[-1] for key in job.asset_layer.selected_asset_keys}
    assert {"int_user_consent", "people", "audience_memberships"} <= selected
    write(consent_warehouse.landing_path, "2026-01-03", [
        line("c-control-w", "c-control", "2026-01-03T09:00:00.000Z", "2026-01-03T09:00:01.000Z",
             event="Wishlist Shared", consent=WITHDRAW),
        # two withdrawn users grant again, each grant newer than the withdrawal by server time
        # (the contested case, decided from the touched users' lines): c-tie's newer by its
        # client time too (granted), c-late's a late event from before its withdrawal (not)
        line("c-tie-g2", "c-tie", "2026-01-03T09:30:00.000Z", "2026-01-03T09:30:01.000Z",
             consent=GRANT),
        line("c-late-g2", "c-late", "2026-01-02T09:30:00.000Z", "2026-01-03T09:30:01.000Z",
             consent=GRANT),
    ])  # fmt: skip
    run_dbt(
        ["build", "--selector", "microbatch", "--exclude-resource-type", "unit_test"],
        consent_warehouse,
        dbt_vars={"segment_definitions": SEGMENTS, "segment_clusters_enabled": False},
    )
    for table, keys in activated(consent_warehouse).items():
        assert user_key("c-control") not in keys, table
        assert user_key("c-later") in keys, table
        assert user_key("c-tie") in keys, table
        assert user_key("c-late") not in keys, table
