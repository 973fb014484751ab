"""The collector in process: auth, Segment's limits, bad JSON, stamps, durability, rotation."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from personalization.collector.app import CollectorSettings, create_app
from personalization.collector.messages import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES
from personalization.collector.writer import LandingWriter, final_name, recover
from personalization.raw_load import list_landing_files

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KEY = "test-write-key"
AUTH = (KEY, "")


def make_client(landing: Path, **settings: float) -> TestClient:
    app = create_app(CollectorSettings(landing, frozenset({KEY, "second-key"}), **settings))
    return TestClient(app)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def client(landing: Path) -> Iterator[TestClient]:
    with make_client(landing, rotate_seconds=3600) as test_client:
        yield test_client


def landed_lines(landing: Path) -> list[dict]:
    """Every line of the published landing files, in file-name (arrival) order."""
    lines = []
    for path in sorted(landing.glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def sized_message(size: int, message_id: str = "m") -> dict:
    """A track message whose compact JSON is exactly `size` bytes."""
    message = {"type": "track", "event": "Padded", "messageId": message_id, "userId": "u", "p": ""}
    base = len(json.dumps(message, separators=(",", ":")).encode())
    message["p"] = "x" * (size - base)
    assert len(json.dumps(message, separators=(",", ":")).encode()) == size
    return message


def compact(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + "d3Jvbmc6"},  # wrong:
        {"Authorization": "Basic not-base64!"},
        {"Authorization": f"Bearer {KEY}"},
    ],
    ids=["missing", "unknown-key", "malformed", "not-basic"],
)
def test_write_key_is_required(client: TestClient, landing: Path, headers: dict) -> None:
    response = client.post("/v1/track", content=b'{"event":"E","userId":"u"}', headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "code": "unauthorized",
        "message": "missing or unknown write key (HTTP Basic auth)",
    }
    assert response.headers["www-authenticate"] == 'Basic realm="collector"'
    assert client.app.state.writer.lines_written == 0


def test_every_configured_key_is_accepted(client: TestClient) -> None:
    for auth in (AUTH, ("second-key", "ignored-password")):
        response = client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=auth)
        assert (response.status_code, response.json()) == (200, {"success": True})
    assert client.app.state.writer.lines_written == 2


# -- Segment's size limits -------------------------------------------------------------------


def test_message_limit_is_32_kb_exactly(client: TestClient) -> None:
    ok = client.post("/v1/batch", content=compact({"batch": [sized_message(32768)]}), auth=AUTH)
    assert (ok.status_code, ok.json()) == (200, {"success": True})
    big = {"batch": [sized_message(100, "small"), sized_message(MAX_MESSAGE_BYTES + 1)]}
    refused = client.post("/v1/batch", content=compact(big), auth=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {
        "success": False,
        "code": "message_too_large",
        "message": "batch[1] is 32769 bytes: the limit is 32768 bytes (32 KB) per message",
    }
    # the whole request is refused: its small first message was not written either
    assert client.app.state.writer.lines_written == 1


def test_single_message_endpoints_apply_the_message_limit(client: TestClient) -> None:
    message = sized_message(MAX_MESSAGE_BYTES + 1)
    response = client.post("/v1/track", content=compact(message), auth=AUTH)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "message is 32769 bytes: the limit is 32768 bytes (32 KB) per message"
    )


def batch_of_size(size: int) -> bytes:
    """A /v1/batch body of exactly `size` bytes, every message under 32 KB."""
    messages = [sized_message(30_000, f"m{i}") for i in range(size // 30_000)]
    body = compact({"batch": messages})
    shortfall = size - len(body)
    messages[-1] = sized_message(30_000 + shortfall, messages[-1]["messageId"])
    body = compact({"batch": messages})
    assert len(body) == size
    return body


def test_batch_limit_is_500_kb_exactly(client: TestClient) -> None:
    ok = client.post("/v1/batch", content=batch_of_size(MAX_BATCH_BYTES), auth=AUTH)
    assert ok.status_code == 200
    written = client.app.state.writer.lines_written
    assert written == MAX_BATCH_BYTES // 30_000
    refused = client.post("/v1/batch", content=batch_of_size(MAX_BATCH_BYTES + 1), auth=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {
        "success": False,
        "code": "batch_too_large",
        "message": "request body is 512001 bytes: the limit is 512000 bytes (500 KB) per request",
    }
    assert client.app.state.writer.lines_written == written


def test_gzip_bodies_are_inflated_and_limited_after_inflating(client: TestClient) -> None:
    headers = {"Content-Encoding": "gzip"}
    small = gzip.compress(compact({"batch": [sized_message(200)]}))
    assert client.post("/v1/batch", content=small, headers=headers, auth=AUTH).status_code == 200
    # 600 KB of JSON that gzips to a few KB: refused on its inflated size, never inflated whole
    bomb = gzip.compress(compact({"batch": [], "pad": " " * 600_000}))
    assert len(bomb) < MAX_BATCH_BYTES
    refused = client.post("/v1/batch", content=bomb, headers=headers, auth=AUTH)
    assert refused.status_code == 400
    assert refused.json()["code"] == "batch_too_large"
    broken = client.post("/v1/batch", content=b"not gzip", headers=headers, auth=AUTH)
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_gzip")


# -- bad JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        (
            "/v1/track",
            b'{"event": "E",',
            "invalid_json",
            "body is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 15 (char 14)",
        ),
        ("/v1/identify", b"[1, 2]", "invalid_json", "body must be a JSON object, not list"),
        ("/v1/page", b"\xff\xfe", "invalid_json", None),
        (
            "/v1/batch",
            b'{"batch": {}}',
            "invalid_batch",
            "body must have a `batch` list of messages",
        ),
        ("/v1/batch", b'{"batch": [1]}', "invalid_message", "batch[0] is not a JSON object"),
        (
            "/v1/batch",
            b'{"batch": [{"type": "track"}, {"type": "click"}]}',
            "invalid_message",
            "batch[1] has type 'click': expected one of "
            "track, identify, page, screen, alias, group",
        ),
    ],
    ids=["truncated", "not-object", "not-utf8", "batch-not-list", "item-not-object", "bad-type"],
)
def test_bad_json_is_refused_with_400(
    client: TestClient, path: str, body: bytes, code: str, message: str | None
) -> None:
    response = client.post(path, content=body, auth=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == code
    if message is not None:
        assert response.json()["message"] == message
    assert client.app.state.writer.lines_written == 0


# -- what is written -------------------------------------------------------------------------


def test_server_stamps_received_at_and_types_by_endpoint(landing: Path) -> None:
    before = datetime.now(UTC).replace(tzinfo=None)
    with make_client(landing) as client:
        for kind in ("track", "identify", "page", "screen", "alias", "group"):
            message = {"userId": "u1", "messageId": f"id-{kind}", "receivedAt": "2000-01-01Z"}
            assert client.post(f"/v1/{kind}", json=message, auth=AUTH).status_code == 200
        batch = {
            "batch": [{"type": "track", "event": "E", "messageId": "b1", "userId": "u1"},
                      {"type": "page", "messageId": "b2", "userId": "u1", "context": {"own": 1}}],
            "context": {"library": {"name": "test"}},
            "sentAt": "2026-01-02T00:00:00Z",
            "writeKey": KEY,
        }  # fmt: skip
        assert client.post("/v1/batch", json=batch, auth=AUTH).status_code == 200
    after = datetime.now(UTC).replace(tzinfo=None)
    lines = landed_lines(landing)
    assert [line["type"] for line in lines] == [
        "track", "identify", "page", "screen", "alias", "group", "track", "page",
    ]  # fmt: skip
    for line in lines:
        received = datetime.strptime(line["receivedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= received <= after
        assert "writeKey" not in line
    assert lines[6]["context"] == {"library": {"name": "test"}}  # the batch's context applies
    assert lines[7]["context"] == {"own": 1}  # unless the message has its own
    assert lines[6]["sentAt"] == "2026-01-02T00:00:00Z"


def test_message_without_id_gets_one(client: TestClient, landing: Path) -> None:
    client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=AUTH)
    client.app.state.writer._rotate()
    (line,) = landed_lines(landing)
    assert line["messageId"].startswith("collector-") and len(line["messageId"]) == 46


# -- durability, rotation, disk full ----------------------------------------------------------


def test_open_file_is_invisible_to_the_loader_until_published(landing: Path) -> None:
    with make_client(landing, rotate_seconds=3600) as client:
        client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=AUTH)
        (tmp,) = landing.iterdir()
        assert tmp.name.startswith(".collector-") and tmp.name.endswith(".jsonl.tmp")
        assert tmp.read_bytes().count(b"\n") == 1  # durable before the 200
        assert list_landing_files(landing) == []
    # graceful shutdown published it
    (published,) = list_landing_files(landing)
    assert published.path == final_name(tmp).name
    assert not tmp.exists()


def test_rotation_by_size_keeps_arrival_order(landing: Path) -> None:
    with make_client(landing, rotate_bytes=500, rotate_seconds=3600) as client:
        for i in range(12):
            message = {"event": "E", "userId": "u", "messageId": f"m{i:02d}", "p": "x" * 150}
            assert client.post("/v1/track", json=message, auth=AUTH).status_code == 200
    files = sorted(landing.glob("*.jsonl"))
    line_bytes = len(files[0].read_bytes().splitlines(keepends=True)[0])
    per_file = -(-500 // line_bytes)  # a file rotates as soon as it reaches 500 bytes
    assert [len(f.read_bytes().splitlines()) for f in files] == [per_file] * (12 // per_file)
    assert [line["messageId"] for line in landed_lines(landing)] == [f"m{i:02d}" for i in range(12)]
    assert not list(landing.glob(".*"))


def test_rotation_by_age_publishes_without_new_traffic(landing: Path) -> None:
    with make_client(landing, rotate_seconds=0.2) as client:
        client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=AUTH)
        deadline = time.monotonic() + 5
        while not list(landing.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list_landing_files(landing)) == 1
        assert not list(landing.glob(".*.tmp"))


def test_disk_full_answers_503_and_keeps_no_partial_line(
    landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write_all = LandingWriter._write_all
    full = {"on": False}

    def write_half_then_fail(self: LandingWriter, fd: int, blob: bytes) -> None:
        if full["on"]:
            os.write(fd, blob[: len(blob) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(self, fd, blob)

    monkeypatch.setattr(LandingWriter, "_write_all", write_half_then_fail)
    with make_client(landing, rotate_seconds=3600) as client:
        ok = {"event": "E", "userId": "u", "messageId": "before"}
        assert client.post("/v1/track", json=ok, auth=AUTH).status_code == 200
        full["on"] = True
        refused = client.post("/v1/track", json={"event": "E", "messageId": "lost"}, auth=AUTH)
        assert refused.status_code == 503
        assert refused.json() == {
            "success": False,
            "code": "unavailable",
            "message": "cannot write landing file: [Errno 28] No space left on device",
        }
        full["on"] = False  # space freed: the client's retry is accepted
        retry = {"event": "E", "messageId": "lost"}
        assert client.post("/v1/track", json=retry, auth=AUTH).status_code == 200
    assert [line["messageId"] for line in landed_lines(landing)] == ["before", "lost"]


def test_recovery_publishes_a_killed_collectors_file(landing: Path) -> None:
    landing.mkdir()
    tmp = landing / ".collector-20260101T000000000000Z-dead0000-000001.jsonl.tmp"
    tmp.write_bytes(b'{"messageId":"a"}\n{"messageId":"b"}\n{"messageId":"c", "cut')
    assert recover(landing) == [final_name(tmp)]
    assert final_name(tmp).read_bytes() == b'{"messageId":"a"}\n{"messageId":"b"}\n'
    empty = landing / ".collector-20260101T000000000001Z-dead0000-000002.jsonl.tmp"
    empty.write_bytes(b'{"partial only')
    assert recover(landing) == []
    assert not empty.exists()


def test_recovery_leaves_a_live_collectors_file_alone(landing: Path) -> None:
    async def scenario() -> list[Path]:
        writer = LandingWriter(landing, rotate_seconds=3600)
        await writer.start()
        await writer.append(b'{"messageId":"live"}\n')
        recovered = recover(landing)  # a second collector starting on the same folder
        await writer.close()
        return recovered

    assert asyncio.run(scenario()) == []
    assert [line["messageId"] for line in landed_lines(landing)] == ["live"]


def test_pending_bytes_are_bounded(landing: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests wait while the queue holds max_pending_bytes: the writer never sees more."""
    seen: list[int] = []
    real_write_durable = LandingWriter._write_durable

    def slow_write(self: LandingWriter, blob: bytes, lines: int) -> None:
        seen.append(len(blob))
        time.sleep(0.02)
        real_write_durable(self, blob, lines)

    monkeypatch.setattr(LandingWriter, "_write_durable", slow_write)

    async def scenario() -> int:
        writer = LandingWriter(landing, rotate_seconds=3600, max_pending_bytes=100)
        await writer.start()
        await asyncio.gather(*(writer.append(b"x" * 39 + b"\n") for _ in range(20)))
        await writer.close()
        return writer.lines_written

    assert asyncio.run(scenario()) == 20
    assert max(seen) <= 80  # two 40-byte requests fit under 100 bytes, a third waits
    assert sum(seen) == 800


def test_large_integers_are_kept_exact(client: TestClient, landing: Path) -> None:
    body = (
        b'{"event": "E", "messageId": "big", "properties": {"id": 123456789012345678901234567890}}'
    )
    assert client.post("/v1/track", content=body, auth=AUTH).status_code == 200
    client.app.state.writer._rotate()
    (line,) = landed_lines(landing)
    assert line["properties"]["id"] == 123456789012345678901234567890


def test_default_folder_is_watched_by_the_landing_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector writes under PERSONALIZATION_LANDING, which the micro-batch sensor lists
    recursively: its published files are new landing files, its open file is not."""
    from personalization.collector import default_landing_dir

    monkeypatch.setenv("PERSONALIZATION_LANDING", str(tmp_path / "landing"))
    folder = default_landing_dir()
    assert folder == tmp_path / "landing" / "collector"
    with make_client(folder, rotate_seconds=3600) as client:
        client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=AUTH)
        assert list_landing_files(tmp_path / "landing") == []
    (landed,) = list_landing_files(tmp_path / "landing")
    assert landed.path.startswith("collector/collector-") and landed.path.endswith(".jsonl")
