"""The PII guard (personalization.pii_guard): one guard for publish and segments export, every
column type, e-mails, phones and IPs (v4, v6, percent-encoded), refusals naming table, column,
kind and count - never the value."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from personalization import cli, pii_guard
from personalization.publish import PiiFoundError, current_version, publish
from personalization.segments import export_activation

PLANTED = {
    "e-mail addresses": [
        "jane.doe@example.com",
        "reach me: Jane.Doe+x@mail.example.co.uk!",
        "/search?q=jane%40example.com",
        "jane%2540example.com",
    ],
    "phone numbers": [
        "+49 151 2345 6789",
        "+1 (555) 123-4567",
        "%2B447700900123",
        "(555) 123-4567",
    ],
    "IPv4 addresses": ["10.0.0.1", "from 192.168.100.254, ok"],
    "IPv6 addresses": [
        "2001:db8:85a3::8a2e:370:7334",
        "2001%3Adb8%3A%3A1",
        "fe80:0:0:0:202:b3ff:fe1e:8329",
    ],
}
# look-alikes that are not identifiers: must pass
INNOCENT = [
    "not an email: a@b",
    "2026-01-03 00:00:00+01:00",
    "order 12345678901",
    "version 1.2.3",
    "std::vector",
    "10:30:45",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "price 1,299.00",
    "999.1.1.1",
]


def kind_of(value: str) -> set[str]:
    """The kinds the guard sees in one VARCHAR value."""
    with duckdb.connect() as con:
        con.execute("create table t as select $v as note", {"v": value})
        return {f.kind for f in pii_guard.scan(con, {"t": "select * from t"})}


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, vs in PLANTED.items() for v in vs])
def test_each_planted_identifier_is_found_as_its_kind(kind: str, value: str) -> None:
    assert kind in kind_of(value)


@pytest.mark.parametrize("value", INNOCENT)
def test_look_alikes_pass(value: str) -> None:
    assert kind_of(value) == set()


def test_every_column_type_is_scanned_and_counted() -> None:
    with duckdb.connect() as con:
        con.execute(
            """
            create table t as
            select
                1 as n,
                '{"user": {"contact": "a@example.org"}}'::json as props,
                'x a@example.org y'::blob as payload,
                ['ok', '+49 151 2345 6789'] as tags,
                {'k': 'v', 'ip': '10.1.2.3'} as nested,
                map(['where'], ['2001:db8:85a3::8a2e:370:7334']) as m,
                'fine' as note
            union all
            select 2, '{"user": "a\\u0040example.org"}'::json, 'clean'::blob, ['ok'],
                {'k': 'v', 'ip': 'none'}, map(['where'], ['home']), 'also fine'
            """
        )
        findings = {
            (f.column, f.kind): f.count for f in pii_guard.scan(con, {"s.t": "select * from t"})
        }
    assert findings == {
        ("props", "e-mail addresses"): 2,
        ("payload", "e-mail addresses"): 1,
        ("tags", "phone numbers"): 1,
        ("nested", "IPv4 addresses"): 1,
        ("m", "IPv6 addresses"): 1,
    }


def make_marts(path: Path, tables: dict[str, str]) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        for name, sql in tables.items():
            con.execute(f"create or replace table marts.{name} as {sql}")
    return path


ACTIVATION = {
    "audiences": "select 'a1' as id, 'Buyers' as name",
    "people": "select 'p1' as id, 'abc' as email_hash",
    "audience_memberships": "select 'a1' as audience_id, 'p1' as person_id",
}


def test_publish_refuses_json_and_blob_with_table_column_and_count(tmp_path: Path) -> None:
    db = make_marts(tmp_path / "w.duckdb", ACTIVATION)
    out = tmp_path / "published"
    first = publish(db, out)
    make_marts(
        db,
        {
            "fct_events": 'select \'{"q": "ann@example.com"}\'::json as properties '
            'union all select \'{"q": "bob@example.com"}\'::json',
            "dim_blobs": "select 'bob@example.com'::blob as raw",
        },
    )
    with pytest.raises(PiiFoundError) as raised:
        publish(db, out)
    message = str(raised.value)
    assert "marts.fct_events.properties: 2 value(s) look like e-mail addresses" in message
    assert "marts.dim_blobs.raw: 1 value(s) look like e-mail addresses" in message
    assert "example.com" not in message
    assert current_version(out) == first.name


def test_export_uses_the_same_guard_and_writes_nothing(tmp_path: Path) -> None:
    db = make_marts(
        tmp_path / "w.duckdb",
        {**ACTIVATION, "people": "select '+15551234567' as id, 'abc' as email_hash"},
    )
    out = tmp_path / "export"
    with pytest.raises(pii_guard.PiiFoundError, match=r"marts\.people\.id: 1 value\(s\) look like"):
        export_activation(db, out)
    assert not out.exists() or not any(out.iterdir())
    # the command exits 2 with the same message, and writes nothing either
    assert cli.main(["segments", "export", "--db", str(db), "--out", str(out)]) == 2
    assert not out.exists() or not any(out.iterdir())


def test_export_of_clean_tables_still_works(tmp_path: Path) -> None:
    db = make_marts(tmp_path / "w.duckdb", ACTIVATION)
    assert export_activation(db, tmp_path / "export") == {
        "audiences": 1,
        "people": 1,
        "audience_memberships": 1,
    }


# tables that hold raw identifiers by design, never published or exported: the landed lines,
# the judged lines, the inputs of identity resolution, and the one restricted key table
RAW_ID_TABLES = {
    "intermediate.int_identity_links",
    "intermediate.int_identity_map",
    "intermediate.int_identity_activity_daily",
    "intermediate.int_touched_identities",
}
RAW_ID_SCHEMAS = {"raw", "staging", "restricted"}
PLANTED = (
    "jane@example.com",
    "jane%40example.com",
    "+49 151 2345 6789",
    "192.168.1.20",
    "2001:db8:85a3::8a2e:370:7334",
    "2001%3Adb8%3A%3A1",
)


def planted_identifier_lines() -> list[dict]:
    base = {
        "timestamp": "2026-01-02T10:00:00.000Z",
        "sentAt": "2026-01-02T10:00:00.000Z",
        "receivedAt": "2026-01-02T10:00:00.000Z",
        "context": {"consent": {"categoryPreferences": {"personalization": True}}},
    }
    traits = {
        "email": "jane@example.com",
        "city": "+49 151 2345 6789",
        "nickname": "jane@example.com",
    }
    return [
        {**base, "messageId": "pii-1", "type": "identify", "userId": "jane@example.com",
         "anonymousId": "a-pii-1", "traits": traits},
        {**base, "messageId": "pii-2", "type": "track", "event": "Products Searched",
         "userId": "+49 151 2345 6789", "anonymousId": "a-pii-2",
         "properties": {"query": "call jane%40example.com", "note": {"ip": "192.168.1.20"}}},
        # anonymous only: the IP is the canonical user id
        {**base, "messageId": "pii-3", "type": "page", "anonymousId": "192.168.1.20",
         "name": "Contact jane@example.com", "properties": {"path": "/",
                                                      "referrer": "https://x.test/?ip=10.1.2.3"}},
        {**base, "messageId": "pii-4", "type": "page",
         "anonymousId": "2001:db8:85a3::8a2e:370:7334",
         "properties": {"path": "/?ip=2001%3Adb8%3A%3A1"}},
    ]  # fmt: skip


def test_a_real_build_with_planted_identifiers_publishes_and_exports_no_identifier(
    tmp_path: Path,
) -> None:
    """E-mail, phone and IP planted as ids, in traits, in free text and in JSON properties: the
    marts carry pseudonymous user keys and scrubbed text, so publish and export go through (one
    real e-mail-shaped userId no longer blocks them), and no table beyond the raw-id layers,
    no published file and no exported file holds any of them, in any shape."""
    import gzip
    import json
    import shutil

    from conftest import FIXTURE_LANDING, make_warehouse, user_key

    from personalization.dbt_runner import run_dbt

    landing = tmp_path / "landing"
    shutil.copytree(FIXTURE_LANDING, landing)
    with gzip.open(landing / "dt=2026-01-02" / "part-0001.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(event) + "\n" for event in planted_identifier_lines())
    warehouse = make_warehouse(tmp_path, landing)
    run_dbt(["build"], warehouse)
    out, export = tmp_path / "published", tmp_path / "export"
    publish(warehouse.db_path, out)
    assert export_activation(warehouse.db_path, export)
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        tables = {
            f"{schema}.{table}": f'select * from {schema}."{table}"'
            for schema, table in con.execute(  # tables and views (dim_user_profiles is one)
                "select schema_name, table_name from duckdb_tables() union all "
                "select schema_name, view_name from duckdb_views() where not internal"
            ).fetchall()
            if schema not in RAW_ID_SCHEMAS and f"{schema}.{table}" not in RAW_ID_TABLES
        }
        files = {
            str(path): f"select * from read_parquet('{path}')" for path in out.rglob("*.parquet")
        } | {str(path): f"select * from read_csv('{path}', all_varchar=true)"
             for path in export.rglob("*.csv")}  # fmt: skip
        assert "marts.dim_user_profiles" in tables and len(files) > 3
        # the guard's patterns (every shape, percent-encoded too) on every column of every one
        assert pii_guard.scan(con, tables | files) == []
        # and the planted values verbatim, in any column cast to text
        for name, select in (tables | files).items():
            for value in PLANTED:
                [(hits,)] = con.execute(
                    f"select count(*) from ({select}) as t where contains(cast(t as varchar), ?)",
                    [value],
                ).fetchall()
                assert hits == 0, f"{value} in {name}"
        # the users are there, under their keys; the raw ids only in the restricted table
        keys = {user_key(i) for i in ("jane@example.com", "+49 151 2345 6789", "192.168.1.20")}
        profile_rows = con.execute("select canonical_user_id from marts.dim_user_profiles")
        profiles = {k for (k,) in profile_rows.fetchall()}
        assert keys <= profiles
        [(restricted,)] = con.execute(
            "select count(*) from restricted.restricted_identity_keys "
            "where raw_identity in ('jane@example.com', '+49 151 2345 6789', '192.168.1.20')"
        ).fetchall()
        assert restricted == 3
        # the scrubbing is counted per field
        scrubbed = dict(
            con.execute(
                "select dimension, metric_value from marts.rpt_data_quality "
                "where metric_group = 'privacy' and metric_name = 'values_scrubbed'"
            ).fetchall()
        )
    assert scrubbed == {
        "properties": 3.0,
        "page_name": 1.0,
        "city": 1.0,
        "state": 0.0,
        "postal_code": 0.0,
        "custom_traits": 1.0,
    }


@pytest.mark.parametrize("schema", ["restricted", "raw", "staging"])
def test_schemas_that_hold_raw_identifiers_are_never_published(tmp_path: Path, schema) -> None:
    from personalization.publish import PublishError

    with pytest.raises(PublishError, match=f"{schema} hold raw identifiers"):
        publish(tmp_path / "w.duckdb", tmp_path / "published", schemas=("marts", schema))
    assert not (tmp_path / "published").exists()


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("/search?q=jane%40example.com&x=1", "/search?q=[email]&x=1"),
        ("/search?q=jane%2540example.com", "/search?q=[email]"),  # encoded twice
        ('{"q":"jane\\u0040example.com"}', '{"q":"[email]"}'),  # a JSON escape
        ("call +49 170 1234567 now", "call [phone] now"),
        ("order (555) 123-4567", "order [phone]"),
        ("ip 10.0.0.1,10.0.0.2", "ip [ip],[ip]"),  # adjacent matches
        ("/?ip=2001%3Adb8%3A%3A1", "/?ip=[ip]"),
        ("https://x.test/?ref=2001:db8::8a2e:370:7334&a=1", "https://x.test/?ref=[ip]&a=1"),
        # no identifier: byte for byte, encodings and all
        ("/products/P00133?page=2&q=red%20chair", "/products/P00133?page=2&q=red%20chair"),
        ('{"price":120.5,"date":"2025-12-30"}', '{"price":120.5,"date":"2025-12-30"}'),
        (None, None),
    ],
)
def test_scrub_expression_redacts_identifiers_and_keeps_other_text(text, scrubbed) -> None:
    """The staging scrub (generated from the guard's patterns) leaves nothing the guard finds."""
    con = duckdb.connect()
    con.execute(f"create macro scrub_pii(value) as ({pii_guard.scrub_expression('value')})")
    [(result,)] = con.execute("select scrub_pii(?)", [text]).fetchall()
    assert result == scrubbed
    assert pii_guard.scan(con, {"t": "select scrub_pii($$" + (text or "") + "$$) as v"}) == []
