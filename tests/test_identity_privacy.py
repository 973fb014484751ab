"""Identity stitching, shared devices, consent and pseudonymisation on the fixture lines."""

from __future__ import annotations

import pytest
from conftest import make_warehouse, query, user_key

from personalization.dbt_runner import DbtError, run_dbt
from personalization.privacy import DEVELOPMENT_KEY, KEY_ENV_VAR, pseudonymise


def canonical(warehouse, message_ids: list[str]) -> dict[str, tuple[str, str]]:
    quoted = ", ".join(f"'{m}'" for m in message_ids)
    rows = query(
        warehouse,
        "select message_id, canonical_user_id, identity_source from "
        f"intermediate.int_events_stitched where message_id in ({quoted})",
    )
    return {message_id: (user, source) for message_id, user, source in rows}


def test_anonymous_events_before_identify_are_stitched_retroactively(fixture_warehouse):
    assert canonical(fixture_warehouse, ["id-anon-1", "id-anon-2", "id-identify", "id-after"]) == {
        "id-anon-1": (user_key("u9"), "stitched"),
        "id-anon-2": (user_key("u9"), "stitched"),
        "id-identify": (user_key("u9"), "user_id"),
        "id-after": (user_key("u9"), "user_id"),
    }


def test_a_shared_device_is_not_merged_and_is_audited(fixture_warehouse):
    assert canonical(fixture_warehouse, ["sh-anon", "sh-u10", "sh-u11"]) == {
        "sh-anon": (user_key("a-shared"), "anonymous"),
        "sh-u10": (user_key("u10"), "user_id"),
        "sh-u11": (user_key("u11"), "user_id"),
    }
    # the audit names the device by its pseudonymous key, never the raw anonymous id
    assert query(
        fixture_warehouse, "select anonymous_id, linked_users from marts.rpt_identity_audit"
    ) == [(user_key("a-shared"), 2)]


def test_the_shared_device_limit_is_configurable(tmp_path):
    from conftest import FIXTURE_LANDING

    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    run_dbt(
        ["build", "--select", "+int_events_stitched"],
        warehouse,
        dbt_vars={"max_users_per_anonymous_id": 2},
    )
    # with a limit of two users, the device's anonymous history goes to the first user identified
    assert canonical(warehouse, ["sh-anon"]) == {"sh-anon": (user_key("u10"), "stitched")}


def test_alias_merges_the_previous_id(fixture_warehouse):
    assert canonical(fixture_warehouse, ["al-old", "al-alias"]) == {
        "al-old": (user_key("u12"), "stitched"),
        "al-alias": (user_key("u12"), "user_id"),
    }


def test_latest_consent_wins(fixture_warehouse):
    rows = query(
        fixture_warehouse,
        "select canonical_user_id, has_personalization_consent, has_analytics_consent "
        f"from intermediate.int_user_consent where canonical_user_id in ('{user_key('u9')}', "
        f"'{user_key('u1')}')",
    )
    # u9 gave consent on every event until the last one, which revoked personalisation
    assert sorted(rows) == sorted([(user_key("u1"), True, True), (user_key("u9"), False, True)])


def test_email_is_an_hmac_of_the_normalised_address(fixture_warehouse):
    [(email_hash,)] = query(
        fixture_warehouse,
        "select email_hash from staging.stg_events where message_id = 'ok-identify'",
    )
    # the fixture's email is "Ada@Example.com " - trimmed and lower-cased before hashing
    assert email_hash == pseudonymise("ada@example.com", DEVELOPMENT_KEY.encode())
    assert len(email_hash) == 64


def test_no_raw_email_beyond_staging(fixture_warehouse):
    columns = query(
        fixture_warehouse,
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('intermediate', 'marts') and data_type = 'VARCHAR'",
    )
    assert columns, "expected text columns to scan"
    leaks = []
    for schema, table, column in columns:
        [(count,)] = query(
            fixture_warehouse,
            f'select count(*) from {schema}."{table}" where "{column}" ilike \'%@example.com%\'',
        )
        if count:
            leaks.append(f"{schema}.{table}.{column}")
    assert leaks == []
    # the raw email does exist upstream, so the scan would have found a leak
    [(raw_count,)] = query(
        fixture_warehouse,
        "select count(*) from raw.raw_landing_events where raw_line ilike '%@example.com%'",
    )
    assert raw_count >= 1


def test_a_production_target_refuses_to_run_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    from conftest import FIXTURE_LANDING

    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    with pytest.raises(DbtError, match=f"{KEY_ENV_VAR} is not set"):
        run_dbt(["run", "--select", "stg_tracking_plan"], warehouse, target="prod")


def test_a_production_key_changes_the_pseudonyms(tmp_path):
    from conftest import FIXTURE_LANDING

    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    secret = "a-test-secret-of-sufficient-length-0123456789"
    run_dbt(
        ["build", "--select", "+stg_events"], warehouse, target="prod", env={KEY_ENV_VAR: secret}
    )
    [(email_hash,)] = query(
        warehouse, "select email_hash from staging.stg_events where message_id = 'ok-identify'"
    )
    assert email_hash == pseudonymise("ada@example.com", secret.encode())
    assert email_hash != pseudonymise("ada@example.com", DEVELOPMENT_KEY.encode())
