"""The profile API on a published snapshot of hand-made marts: auth, consent, erasure, paging,
and the switch to a newer published version."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from starlette.testclient import TestClient

from personalization import cli
from personalization.api import app as api_app
from personalization.api.app import ApiSettings, create_app, decode_cursor, encode_cursor
from personalization.api.keys import mart_key
from personalization.collector.loopback import (
    LoadResult,
    LoopbackHttp,
    free_port,
    open_loop,
    start_server,
    stop,
)
from personalization.privacy import KEY_ENV_VAR, pseudonymise
from personalization.publish import current_version, publish

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

READ_KEY = "test-read-key"
BEARER = {"Authorization": f"Bearer {READ_KEY}"}
HMAC_KEY = b"a-test-key-of-at-least-32-characters!!"

# raw userId -> (personalization consent, advertising consent, orders, country)
USERS = {
    "alice": (True, True, 3, "DE"),
    "bob": (False, True, 1, "FR"),  # no personalisation consent
    "carol": (True, False, 0, "NL"),
    **{f"member-{i}": (True, False, i, "DE") for i in range(5)},
}
# (segment, raw userId, status); advertising_fans requires advertising consent
MEMBERSHIPS = [
    ("big_spenders", "alice", "member"),
    ("big_spenders", "bob", "member"),
    ("advertising_fans", "alice", "member"),
    ("advertising_fans", "carol", "member"),  # no advertising consent: not activatable
    ("lapsing", "alice", "pending"),
    *[("big_spenders", f"member-{i}", "member") for i in range(5)],
]
SEGMENTS = {"big_spenders": "personalization", "advertising_fans": "advertising", "lapsing": None}


def build_marts(db: Path, key_of: Callable[[str], str], users: dict, memberships: list) -> None:
    """A build database whose marts have the columns the API reads (as dbt builds them)."""
    db.unlink(missing_ok=True)
    with duckdb.connect(str(db)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.dim_user_profiles (canonical_user_id varchar, orders integer,"
            " revenue decimal(18, 2), country varchar, last_seen_at timestamp,"
            " has_personalization_consent boolean, has_advertising_consent boolean)"
        )
        for raw, (personal, advertising, orders, country) in users.items():
            con.execute(
                "insert into marts.dim_user_profiles values"
                " (?, ?, ?, ?, timestamp '2026-01-02 10:00:00', ?, ?)",
                [key_of(raw), orders, orders * 12.5, country, personal, advertising],
            )
        con.execute(
            "create table marts.fct_segment_membership (segment_name varchar,"
            " canonical_user_id varchar, status varchar, is_activatable boolean,"
            " computed_at timestamp)"
        )
        for segment, raw, status in memberships:
            personal, advertising = users[raw][:2]
            needs = advertising if SEGMENTS[segment] == "advertising" else personal
            con.execute(
                "insert into marts.fct_segment_membership values"
                " (?, ?, ?, ?, timestamp '2026-01-03 00:00:00')",
                [segment, key_of(raw), status, status == "member" and needs],
            )
        con.execute(
            "create table marts.dim_segments as select segment_name,"
            " 'about ' || segment_name as description, 'crm' as owner,"
            " count(*) filter (where status = 'member') as size,"
            " count(*) filter (where is_activatable) as activatable_size,"
            " case when segment_name = 'advertising_fans' then 'advertising'"
            "   else 'personalization' end as requires_consent,"
            " timestamp '2026-01-03 00:00:00' as computed_at"
            " from marts.fct_segment_membership group by segment_name"
        )
        con.execute(
            "create table marts.fct_user_clusters as select canonical_user_id,"
            " 'kmeans' as method, 2 as cluster_id, 'Loyal buyers' as cluster_name"
            " from marts.dim_user_profiles"
        )


def hmac_key(user_id: str) -> str:
    return pseudonymise(user_id, HMAC_KEY)


@pytest.fixture(scope="module", params=["current", "hmac"])
def key_of(request: pytest.FixtureRequest) -> Iterator[Callable]:
    """The marts' key of a raw id: today's mapping, and keyed HMAC pseudonyms (the planned
    switch, done by changing mart_key alone). Every test below holds for both."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "hmac":
            monkeypatch.setattr(api_app, "mart_key", hmac_key)
            yield hmac_key
        else:
            yield mart_key


def publish_marts(root: Path, key_of: Callable) -> Path:
    build_marts(root / "build.duckdb", key_of, USERS, MEMBERSHIPS)
    publish(root / "build.duckdb", root / "published")
    return root / "published"


def serve(published: Path) -> TestClient:
    return TestClient(create_app(ApiSettings(published, frozenset({READ_KEY}), poll_seconds=0.05)))


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, key_of: Callable) -> Path:
    return publish_marts(tmp_path_factory.mktemp("api"), key_of)


@pytest.fixture(scope="module")
def client(published: Path) -> Iterator[TestClient]:
    with serve(published) as test_client:
        yield test_client


def test_profile_of_a_consenting_user(client: TestClient, published: Path, key_of) -> None:
    response = client.get("/v1/profiles/alice", headers=BEARER)
    assert response.status_code == 200
    assert response.json() == {
        "user_key": key_of("alice"),
        "traits": {
            "orders": 3,
            "revenue": 37.5,
            "country": "DE",
            "last_seen_at": "2026-01-02T10:00:00",
        },
        # activatable member of both; 'lapsing' is pending, not a membership
        "segments": ["advertising_fans", "big_spenders"],
        "clusters": [{"method": "kmeans", "cluster_id": 2, "cluster_name": "Loyal buyers"}],
        "consent": {"personalization": True, "advertising": True},
        "freshness": {
            "version_id": current_version(published),
            "published_at": response.json()["freshness"]["published_at"],
            "last_seen_at": "2026-01-02T10:00:00",
        },
    }


def test_no_personalisation_consent_means_no_segments(client: TestClient) -> None:
    body = client.get("/v1/profiles/bob", headers=BEARER).json()
    # bob is a member of big_spenders, but did not consent to personalisation
    assert (body["segments"], body["clusters"]) == ([], [])
    assert body["consent"] == {"personalization": False, "advertising": True}
    assert body["traits"]["orders"] == 1
    # carol consented to personalisation only: the advertising segment stays out
    assert client.get("/v1/profiles/carol", headers=BEARER).json()["segments"] == []


def test_unknown_user_is_not_found(client: TestClient, key_of) -> None:
    response = client.get("/v1/profiles/nobody", headers=BEARER)
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "message": "no profile for this user"},
    )
    # the caller passes the raw id: the mart key itself is not a way in (unless they coincide)
    if key_of("alice") != "alice":
        assert client.get(f"/v1/profiles/{key_of('alice')}", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {READ_KEY}"}],
    ids=["missing", "unknown", "not-bearer"],
)
@pytest.mark.parametrize(
    "path", ["/v1/profiles/alice", "/v1/segments", "/v1/segments/big_spenders/members"]
)
def test_read_key_is_required(client: TestClient, path: str, headers: dict) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "message": "missing or unknown read key (Bearer token)",
    }


def test_segment_catalogue(client: TestClient) -> None:
    body = client.get("/v1/segments", headers=BEARER).json()
    sizes = {s["segment_name"]: (s["size"], s["activatable_size"]) for s in body["segments"]}
    assert sizes == {"advertising_fans": (2, 1), "big_spenders": (7, 6), "lapsing": (0, 0)}


def test_members_are_paged_by_cursor(client: TestClient, key_of) -> None:
    pages, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get("/v1/segments/big_spenders/members", params=params, headers=BEARER)
        assert body.status_code == 200
        pages.append(body.json()["members"])
        cursor = body.json()["next_cursor"]
        if cursor is None:
            break
    expected = sorted(key_of(u) for u in ["alice", *(f"member-{i}" for i in range(5))])
    assert [len(page) for page in pages] == [2, 2, 2]  # bob (no consent) is not activatable
    assert [key for page in pages for key in page] == expected


def test_members_errors(client: TestClient) -> None:
    unknown = client.get("/v1/segments/nope/members", headers=BEARER)
    assert (unknown.status_code, unknown.json()["message"]) == (404, "no segment 'nope'")
    for params, message in [
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"cursor": "%%%"}, "invalid cursor '%%%'"),
    ]:
        response = client.get("/v1/segments/big_spenders/members", params=params, headers=BEARER)
        assert (response.status_code, response.json()["message"]) == (400, message)
    assert decode_cursor(encode_cursor("user/é")) == "user/é"


def test_switches_to_a_new_version_and_erased_users_vanish(tmp_path: Path, key_of) -> None:
    published = publish_marts(tmp_path, key_of)
    with serve(published) as client:
        switch_and_erase(client, published, tmp_path, key_of)


def switch_and_erase(client: TestClient, published: Path, tmp_path: Path, key_of) -> None:
    first = current_version(published)
    assert client.get("/v1/profiles/carol", headers=BEARER).status_code == 200
    # carol is erased (gone from every mart); alice leaves big_spenders
    users = {raw: values for raw, values in USERS.items() if raw != "carol"}
    memberships = [m for m in MEMBERSHIPS if m[1] != "carol" and m[:2] != ("big_spenders", "alice")]
    build_marts(tmp_path / "build.duckdb", key_of, users, memberships)
    publish(tmp_path / "build.duckdb", published)
    second = current_version(published)
    assert second != first
    deadline = time.monotonic() + 10
    while client.get("/health").json()["version_id"] != second:
        assert time.monotonic() < deadline, "the API never switched to the new version"
        time.sleep(0.05)
    assert client.get("/v1/profiles/carol", headers=BEARER).status_code == 404
    alice = client.get("/v1/profiles/alice", headers=BEARER).json()
    assert alice["segments"] == ["advertising_fans"]
    assert alice["freshness"]["version_id"] == second


def test_nothing_published_yet_is_503(tmp_path: Path) -> None:
    settings = ApiSettings(tmp_path / "empty", frozenset({READ_KEY}))
    with TestClient(create_app(settings)) as client:
        response = client.get("/v1/profiles/alice", headers=BEARER)
    assert response.status_code == 503
    assert response.json()["message"] == f"nothing published yet under {tmp_path / 'empty'}"


def test_serve_refuses_to_start_without_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Raw ids become mart keys with the warehouse's key: without it (and without asking for the
    public development key) the API does not start; a short key is refused too."""
    monkeypatch.setenv("PERSONALIZATION_API_KEYS", READ_KEY)
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with caplog.at_level(logging.ERROR):
        assert cli.main(["serve", "--published", str(tmp_path)]) == 2
    assert f"{KEY_ENV_VAR} is not set" in caplog.text
    monkeypatch.setenv(KEY_ENV_VAR, "short")
    assert cli.main(["serve", "--published", str(tmp_path), "--development-key"]) == 2
    assert "must be at least 32 bytes" in caplog.text


def test_bounded_load_on_loopback(tmp_path: Path) -> None:
    """The benchmark's open loop, small, against the API served by uvicorn (in its own process,
    so with the shipped mart_key): it stops by itself and answers every request right."""
    published = publish_marts(tmp_path, mart_key)
    port = free_port()
    process = start_server(
        ["personalization.api", "--published", str(published), "--development-key"],
        port,
        tmp_path / "api.log",
        {"PERSONALIZATION_API_KEYS": READ_KEY},
    )
    ids = ["alice", "bob", "nobody", "member-3"]

    async def drive() -> LoadResult:
        client = LoopbackHttp(port, BEARER)

        async def send(number: int) -> int:
            status, body = await client.request("GET", f"/v1/profiles/{ids[number % 4]}")
            if status == 200:
                assert json.loads(body)["user_key"] == mart_key(ids[number % 4])
            return status

        try:
            return await open_loop(send, 10_000, rate=100, max_seconds=1.0)
        finally:
            await client.close()

    try:
        result = asyncio.run(drive())
    finally:
        stop(process)
    assert len(result.statuses) == 101
    assert result.statuses[:4] == [200, 200, 404, 200]
    assert result.statuses.count(404) == 25
