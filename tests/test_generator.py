"""Tests of the synthetic event generator (personalization.generator).

Every check recomputes its expectation from the written files with rules of its own (it does not
reuse the generator's classification code).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import pytest

from personalization.cli import main
from personalization.generator.shard import analytics_consent
from personalization.tracking_plan import PROJECT_ROOT, load_tracking_plan

EVENTS, USERS, DAYS = 20_000, 1_000, 30
PLAN = load_tracking_plan()


def _seed(name: str) -> list[dict]:
    with open(PROJECT_ROOT / "seeds" / name, newline="") as handle:
        return list(csv.DictReader(handle))


COUNTRIES = {row["country_code"] for row in _seed("ref_countries.csv")}
CITY_COUNTRY = {row["city"]: row["country_code"] for row in _seed("ref_cities.csv")}
JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def generate(out: Path, *extra: str, events: int = EVENTS, users: int = USERS) -> int:
    argv = ["generate", "--events", str(events), "--users", str(users), "--days", str(DAYS)]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def parse_ts(value) -> datetime | None:
    if not isinstance(value, str) or not ISO_MS.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def classify(raw: str) -> tuple[str | None, dict | None]:
    """(defect reason or None, parsed object) by the pipeline's quarantine rules."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError:
        return "invalid_json", None
    if not obj.get("messageId"):
        return "missing_message_id", obj
    if not obj.get("userId") and not obj.get("anonymousId"):
        return "missing_identity", obj
    ts, received = parse_ts(obj.get("timestamp")), parse_ts(obj.get("receivedAt"))
    if ts is None:
        return "bad_timestamp", obj
    if (ts - received).total_seconds() > 86_400:
        return "future_timestamp", obj
    if obj["type"] == "track":
        if obj["event"] not in PLAN.events:
            return "unknown_event", obj
        props = obj.get("properties", {})
        for rule in PLAN.events[obj["event"]]:
            if rule.required and rule.name not in props:
                return "missing_required_property", obj
        for rule in PLAN.events[obj["event"]]:
            if rule.name in props and not JSON_TYPES[rule.type](props[rule.name]):
                return "wrong_property_type", obj
        for rule in PLAN.events[obj["event"]]:
            if rule.min is not None and rule.name in props and props[rule.name] < rule.min:
                return "negative_amount", obj
    if obj["type"] == "identify":
        traits = obj.get("traits", {})
        if "age" in traits and not 13 <= traits["age"] <= 110:
            return "implausible_age", obj
        if "country" in traits and traits["country"] not in COUNTRIES:
            return "invalid_country", obj
        if "city" in traits and CITY_COUNTRY.get(traits["city"]) != traits.get("country"):
            return "city_country_mismatch", obj
    return None, obj


def read_lines(out: Path) -> list[tuple[str, str]]:
    """(relative file path, raw line) in path order, as a loader would read them."""
    rows = []
    for path in sorted(out.glob("**/*.jsonl*")):
        with gzip.open(path, "rt") as handle:
            rows.extend((str(path.relative_to(out)), line.rstrip("\n")) for line in handle)
    return rows


def digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gen") / "raw"
    assert generate(out, "--workers", "2") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    lines = read_lines(out)
    defects: Counter = Counter()
    seen: set[str] = set()
    clean: list[dict] = []
    duplicates = 0
    for _, raw in lines:
        reason, obj = classify(raw)
        if reason:
            defects[reason] += 1
            continue
        if obj["messageId"] in seen:
            duplicates += 1
            continue
        seen.add(obj["messageId"])
        clean.append(obj)
    with open(out / "ground_truth/users.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    return {
        "out": out,
        "manifest": manifest,
        "lines": lines,
        "defects": defects,
        "duplicates": duplicates,
        "clean": clean,
        "truth": truth,
    }


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bytes_any_workers(dataset, tmp_path):
    again = tmp_path / "again"
    assert generate(again, "--workers", "1") == 0
    first = digest(dataset["out"])
    assert len(first) > 10
    assert first == digest(again)


def test_different_seed_differs(dataset, tmp_path):
    other = tmp_path / "other"
    assert generate(other, "--seed", "7") == 0
    a, b = digest(dataset["out"]), digest(other)
    assert a["manifest.json"] != b["manifest.json"]
    assert a["ground_truth/users.csv"] != b["ground_truth/users.csv"]
    common = set(a) & set(b)
    assert all(a[p] != b[p] for p in common if p.startswith("dt="))


# ---------------------------------------------------------------- manifest


def test_line_counts(dataset):
    m, lines = dataset["manifest"], dataset["lines"]
    assert m["events_requested"] == EVENTS
    assert m["lines_total"] == len(lines)
    assert abs(len(lines) - EVENTS) <= 0.01 * EVENTS
    per_file = Counter(path for path, _ in lines)
    assert {f["path"]: f["lines"] for f in m["files"]} == dict(per_file)
    assert m["start"] == "2026-01-01T00:00:00Z"
    assert m["end"] == m["as_of"] == "2026-01-31T00:00:00Z"
    assert all(re.fullmatch(r"dt=\d{4}-\d{2}-\d{2}/part-\d{4}\.jsonl\.gz", p) for p in per_file)
    # the ground truth folder is never matched by a landing glob
    assert not any(p.startswith("ground_truth") for p in per_file)


def test_defect_counts_match_manifest(dataset):
    m = dataset["manifest"]
    found = dataset["defects"]
    assert dict(found) == {k: v for k, v in m["defects"].items() if v}
    assert set(m["defects"]) == {
        "invalid_json", "missing_message_id", "missing_identity", "bad_timestamp",
        "future_timestamp", "unknown_event", "missing_required_property", "wrong_property_type",
        "negative_amount", "implausible_age", "invalid_country", "city_country_mismatch",
    }  # fmt: skip
    assert all(v > 0 for v in m["defects"].values())  # 2% of 20k lines: ~33 per reason
    assert 0.015 <= sum(found.values()) / len(dataset["lines"]) <= 0.025
    assert dataset["duplicates"] == m["duplicates"]
    assert 0.005 <= m["duplicates"] / len(dataset["lines"]) <= 0.015
    assert len(dataset["clean"]) == m["clean_events"]


def test_late_events(dataset):
    late = sum(
        parse_ts(e["receivedAt"]).date() > parse_ts(e["timestamp"]).date() for e in dataset["clean"]
    )
    assert late == dataset["manifest"]["late_events"]
    assert 0.01 <= late / len(dataset["clean"]) <= 0.04


def test_files_sorted_by_received_at_and_day(dataset):
    by_file = defaultdict(list)
    for path, raw in dataset["lines"]:
        reason, obj = classify(raw)
        if reason != "invalid_json":
            by_file[path].append(obj["receivedAt"])
    for path, received in by_file.items():
        assert received == sorted(received), path
        assert {r[:10] for r in received} == {path[3:13]}, path


def test_defect_lines_have_fresh_message_ids(dataset):
    clean_ids = {e["messageId"] for e in dataset["clean"]}
    defect_ids = []
    for _, raw in dataset["lines"]:
        reason, obj = classify(raw)
        if reason and obj is not None and obj.get("messageId"):
            defect_ids.append(obj["messageId"])
    assert len(defect_ids) == len(set(defect_ids))
    assert not clean_ids & set(defect_ids)


# ---------------------------------------------------------------- clean events


def test_clean_events_follow_the_spec(dataset):
    for e in dataset["clean"]:
        assert e["type"] in {"track", "identify", "page", "screen", "alias", "group"}
        ts, sent, received = (parse_ts(e[k]) for k in ("timestamp", "sentAt", "receivedAt"))
        assert ts < sent < received
        assert e["anonymousId"].startswith("anon-")
        ctx = e["context"]
        assert re.fullmatch(r"(192\.0\.2|198\.51\.100)\.\d{1,3}", ctx["ip"])
        assert ctx["device"]["type"] in {"desktop", "mobile", "tablet"}
        assert set(ctx["consent"]["categoryPreferences"]) == {
            "personalization", "advertising", "analytics",
        }  # fmt: skip
        assert ctx["library"]["name"] and ctx["userAgent"] and ctx["locale"]
        if e["type"] == "track":
            for rule in PLAN.events[e["event"]]:
                if rule.required:
                    assert JSON_TYPES[rule.type](e["properties"][rule.name]), (e["event"], rule)
        if e["type"] == "page":
            assert e["name"] and set(e["properties"]) == {"path", "url", "title", "referrer"}
            assert ctx["page"] == e["properties"]
        if e["type"] == "identify":
            t = e["traits"]
            assert e["userId"] and t["email"].endswith("@example.com")
            assert "age" not in t or "birthday" not in t
            if "birthday" in t:
                age = (date(2026, 1, 1) - date.fromisoformat(t["birthday"])).days / 365.25
                assert 13 <= age <= 110
            if "city" in t:
                assert CITY_COUNTRY[t["city"]] == t["country"]


def test_order_revenue_is_sum_of_products_minus_discount(dataset):
    orders = [e for e in dataset["clean"] if e.get("event") == "Order Completed"]
    assert orders
    for e in orders:
        p = e["properties"]
        subtotal = sum(x["price"] * x["quantity"] for x in p["products"])
        assert p["revenue"] == pytest.approx(subtotal - p.get("discount", 0), abs=0.011)
        assert ("coupon" in p) == ("discount" in p)


def test_emails_unique_per_user(dataset):
    emails = defaultdict(set)
    for e in dataset["clean"]:
        if e["type"] == "identify":
            emails[e["traits"]["email"]].add(e["userId"])
    assert all(len(users) == 1 for users in emails.values())


# ---------------------------------------------------------------- ground truth


def stitch(clean: list[dict]) -> dict[str, list[dict]]:
    """Canonical id -> clean events, by the documented identity rule."""
    users_of_anon = defaultdict(set)
    for e in clean:
        if e.get("userId") and e.get("anonymousId"):
            users_of_anon[e["anonymousId"]].add(e["userId"])
    grouped = defaultdict(list)
    for e in clean:
        if e.get("userId"):
            grouped[e["userId"]].append(e)
        else:
            owners = users_of_anon.get(e["anonymousId"], set())
            grouped[next(iter(owners)) if len(owners) == 1 else e["anonymousId"]].append(e)
    return grouped


def test_ground_truth_counts_match_clean_events(dataset):
    grouped = stitch(dataset["clean"])
    truth = {row["canonical_id"]: row for row in dataset["truth"]}
    assert set(truth) == set(grouped)
    for cid, events in grouped.items():
        row = truth[cid]
        tracks = Counter(e.get("event") for e in events)
        revenue = sum(
            e["properties"]["revenue"] for e in events if e.get("event") == "Order Completed"
        )
        assert int(row["orders"]) == tracks["Order Completed"], cid
        assert int(row["cart_adds"]) == tracks["Product Added"], cid
        assert int(row["product_views"]) == tracks["Product Viewed"], cid
        assert int(row["feature_uses"]) == tracks["Feature Used"], cid
        assert int(row["searches"]) == tracks["Products Searched"], cid
        assert int(row["page_views"]) == sum(e["type"] == "page" for e in events), cid
        assert float(row["revenue"]) == pytest.approx(revenue, abs=0.006), cid
        assert row["first_seen_at"] == min(e["timestamp"] for e in events)
        assert row["last_seen_at"] == max(e["timestamp"] for e in events)


def test_shared_devices(dataset):
    shared = dataset["manifest"]["shared_anonymous_ids"]
    assert shared
    users_of_anon = defaultdict(set)
    for e in dataset["clean"]:
        if e["type"] == "identify":
            users_of_anon[e["anonymousId"]].add(e["userId"])
    assert sorted(a for a, u in users_of_anon.items() if len(u) >= 2) == shared
    truth = {row["canonical_id"]: row for row in dataset["truth"]}
    assert all(truth[a]["archetype"] == "shared_device" for a in shared)


def test_ground_truth_traits(dataset):
    truth = [row for row in dataset["truth"] if row["user_id"]]
    assert truth
    identified_share = len(truth) / USERS
    assert 0.75 <= identified_share <= 0.95
    for row in truth:
        assert row["canonical_id"] == row["user_id"]
        assert row["gender"] in {"", "female", "male", "non_binary", "other", "prefer_not_to_say"}
        assert not row["country"] or row["country"] in COUNTRIES
        assert not row["city"] or CITY_COUNTRY[row["city"]] == row["country"]
        assert not (row["age"] and row["birthday"])
    anonymous = [
        r for r in dataset["truth"] if not r["user_id"] and r["archetype"] != "shared_device"
    ]
    assert anonymous and all(r["canonical_id"] == r["anonymous_ids"] for r in anonymous)


def test_profile_corrections_are_the_truth(dataset):
    truth = {row["user_id"]: row for row in dataset["truth"] if row["user_id"]}
    updates = [e for e in dataset["clean"] if e.get("event") == "Profile Updated"]
    assert updates
    for e in updates:
        for key, value in e["properties"].items():
            assert truth[e["userId"]][key] == str(value)


def test_consent_revocations(dataset):
    consent = defaultdict(list)
    for e in sorted(dataset["clean"], key=lambda e: e["timestamp"]):
        consent[e["anonymousId"]].append(
            e["context"]["consent"]["categoryPreferences"]["personalization"]
        )
    revoked = [v for v in consent.values() if v[0] and not v[-1]]
    assert revoked  # a few users revoke personalization consent
    assert all(v.index(False) == len(v) - v[::-1].index(True) for v in revoked)


def analytics_by_rule(events: list[dict]) -> bool:
    """The documented consent rule (docs/privacy.md), written here on its own: a withdrawal
    stands until a grant received later and timestamped later than every withdrawal (a tie goes
    to the withdrawal); without a withdrawal, granted. ISO-ms texts order as times."""
    lines = [
        (e["receivedAt"], e["timestamp"], e["context"]["consent"]["categoryPreferences"])
        for e in events
    ]
    refusals = [(received, at) for received, at, c in lines if not c["analytics"]]
    if not refusals:
        return True
    received_max = max(received for received, _ in refusals)
    at_max = max(at for _, at in refusals)
    return any(
        c["analytics"] and received > received_max and at > at_max for received, at, c in lines
    )


def test_analytics_consent_follows_the_consent_rule(dataset):
    """consent_analytics is the consent rule over each canonical user's clean lines; some users
    refuse analytics from their first event, some withdraw it after granting, a few percent in
    all."""
    grouped = stitch(dataset["clean"])
    truth = {row["canonical_id"]: row["consent_analytics"] for row in dataset["truth"]}
    expected = {cid: str(analytics_by_rule(events)).lower() for cid, events in grouped.items()}
    assert truth == expected
    refused = [cid for cid, value in expected.items() if value == "false"]
    withdrew = [
        cid
        for cid in refused
        if any(e["context"]["consent"]["categoryPreferences"]["analytics"] for e in grouped[cid])
    ]
    assert 0 < len(withdrew) < len(refused)
    assert 0.02 <= len(refused) / len(truth) <= 0.10
    # a withdrawal is final: after a user's first refusing line (client time), no grant
    for cid in withdrew:
        flags = [
            e["context"]["consent"]["categoryPreferences"]["analytics"]
            for e in sorted(grouped[cid], key=lambda e: e["timestamp"])
        ]
        assert True not in flags[flags.index(False) :], cid


@pytest.mark.parametrize(
    ("lines", "granted"),
    [
        ([], True),
        ([(1, 1, True), (2, 2, True)], True),
        ([(1, 1, True), (2, 2, False)], False),
        # a grant newer by both clocks (another person on a shared device, later)
        ([(1, 1, False), (2, 2, True)], True),
        # a tie on either clock goes to the withdrawal
        ([(1, 1, False), (1, 2, True)], False),
        ([(1, 1, False), (2, 1, True)], False),
        # a late line: received after the withdrawal, timestamped before it
        ([(5, 5, False), (6, 4, True)], False),
    ],
)
def test_shared_device_analytics_consent_rule(lines, granted):
    assert analytics_consent(lines) is granted


# ---------------------------------------------------------------- behaviour


def archetype_means(truth: list[dict]) -> dict[str, dict[str, float]]:
    cols = ("orders", "revenue", "cart_adds", "checkouts_started", "feature_uses", "searches",
            "product_views", "sessions")  # fmt: skip
    groups = defaultdict(list)
    for row in truth:
        groups[row["archetype"]].append(row)
    return {
        a: {c: sum(float(r[c]) for r in rows) / len(rows) for c in cols}
        for a, rows in groups.items()
    }


def test_archetypes_differ_as_documented(dataset):
    m = archetype_means(dataset["truth"])
    assert set(m) >= {
        "browser", "bargain_hunter", "loyal_high_spender", "cart_abandoner", "lapsed",
        "feature_power_user",
    }  # fmt: skip
    others = [a for a in m if a not in ("shared_device",)]
    assert m["loyal_high_spender"]["revenue"] > 3 * m["bargain_hunter"]["revenue"]
    assert m["loyal_high_spender"]["orders"] == max(m[a]["orders"] for a in others)
    assert m["browser"]["orders"] < 0.1
    assert m["browser"]["product_views"] == max(m[a]["product_views"] for a in others)
    assert m["bargain_hunter"]["searches"] > 3 * max(
        m[a]["searches"] for a in others if a != "bargain_hunter"
    )
    assert m["cart_abandoner"]["cart_adds"] > 5 * m["cart_abandoner"]["orders"]
    assert m["cart_abandoner"]["checkouts_started"] > 5 * m["cart_abandoner"]["orders"]
    assert m["feature_power_user"]["feature_uses"] > 10 * max(
        m[a]["feature_uses"] for a in others if a != "feature_power_user"
    )
    third = datetime.fromisoformat("2026-01-11T00:00:00+00:00")
    lapsed = [r for r in dataset["truth"] if r["archetype"] == "lapsed"]
    assert all(parse_ts(r["last_seen_at"]) < third for r in lapsed)
    active = [r for r in dataset["truth"] if r["archetype"] == "browser"]
    assert sum(parse_ts(r["last_seen_at"]) >= third for r in active) > 0.9 * len(active)


def documented_mix() -> dict[str, tuple[float, float]]:
    """Parse the event-mix table of docs/generator.md: | name | min% | max% |."""
    text = (PROJECT_ROOT / "docs/generator.md").read_text()
    section = text.split("## Event mix", 1)[1].split("\n## ", 1)[0]
    ranges = {}
    for match in re.finditer(r"^\| `([^`]+)` \| ([\d.]+) \| ([\d.]+) \|", section, re.M):
        ranges[match[1]] = (float(match[2]) / 100, float(match[3]) / 100)
    return ranges


def test_event_mix_within_documented_ranges(dataset):
    ranges = documented_mix()
    clean = dataset["clean"]
    mix = Counter(e["event"] if e["type"] == "track" else e["type"] for e in clean)
    assert set(mix) <= set(ranges)
    assert dataset["manifest"]["event_mix"] == dict(sorted(mix.items()))
    for name, (lo, hi) in ranges.items():
        share = mix.get(name, 0) / len(clean)
        assert lo <= share <= hi, (name, share)


# ---------------------------------------------------------------- overrides and CLI errors


def test_defect_overrides(tmp_path):
    out = tmp_path / "o"
    extra = ["--defect-rate", "0", "--defect", "invalid_country=0.05"]
    extra += ["--duplicate-rate", "0", "--late-rate", "0"]
    assert generate(out, *extra, events=5000, users=200) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["duplicates"] == 0
    assert {k for k, v in m["defects"].items() if v} == {"invalid_country"}
    assert m["defects"]["invalid_country"] == pytest.approx(250, rel=0.25)
    found = Counter(classify(raw)[0] for _, raw in read_lines(out))
    assert found["invalid_country"] == m["defects"]["invalid_country"]
    # with --late-rate 0 only events sent just before midnight arrive on the next day
    assert m["late_events"] <= 0.005 * m["clean_events"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--events", "-5"], "--events must be a positive integer"),
        (["--events", "0"], "--events must be a positive integer"),
        (["--users", "0"], "--users must be a positive integer"),
        (["--days", "0"], "--days must be a positive integer"),
        (["--defect-rate", "1.5"], "--defect-rate must be between 0 and 1"),
        (["--late-rate", "-0.1"], "--late-rate must be between 0 and 1"),
        (["--defect", "nonsense=0.1"], "--defect expects REASON=RATE"),
        (["--start", "2026-02-30"], "--start must be a date"),
    ],
)
def test_cli_rejects_bad_arguments(args, message, tmp_path, capsys):
    base = {"--events": "1000", "--users": "50", "--days": "3"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["generate", "--out", str(tmp_path / "x"), "--quiet"]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_rejects_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        argv = ["generate", "--events", "100", "--users", "10", "--days", "2", "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "error:" in err and str(blocker) in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_cli_refuses_foreign_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    argv = ["generate", "--events", "100", "--users", "10", "--days", "2", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_kmeans_recovers_archetypes(dataset):
    """Per-user RFM/engagement features separate the archetypes (adjusted Rand index >= 0.6)."""
    np = pytest.importorskip("numpy")
    cluster = pytest.importorskip("sklearn.cluster")
    metrics = pytest.importorskip("sklearn.metrics")
    rows = [r for r in dataset["truth"] if r["archetype"] != "shared_device"]
    as_of = parse_ts("2026-01-31T00:00:00.000Z")

    def features(r: dict) -> list[float]:
        sessions = float(r["sessions"])
        recency = (as_of - parse_ts(r["last_seen_at"])).total_seconds() / 86_400
        per_session = ("page_views", "product_views", "cart_adds", "feature_uses", "searches")
        return [
            recency,
            sessions,
            float(r["orders"]),
            float(r["revenue"]),
            float(r["orders"]) / (float(r["checkouts_started"]) + 1),
            *(float(r[c]) / sessions for c in per_session),
        ]

    x = np.log1p(np.array([features(r) for r in rows]))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    labels = cluster.KMeans(6, n_init=10, random_state=0).fit_predict(x)
    ari = metrics.adjusted_rand_score([r["archetype"] for r in rows], labels)
    assert ari >= 0.6


def test_entry_point_without_tty_shows_no_progress_bar(tmp_path):
    out = tmp_path / "cli"
    argv = ["generate", "--events", "3000", "--users", "100", "--days", "5", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "personalization.cli", *argv],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ev/s" not in done.stderr and "%|" not in done.stderr
    assert json.loads((out / "manifest.json").read_text())["days"] == 5
    assert len({p.parent.name for p in out.glob("dt=*/*.jsonl.gz")}) == 5


# ---------------------------------------------------------------- worker processes

SHARD_FAILS_UNDER_A_SHIELDED_PARENT = """
import signal, sys
from datetime import UTC, datetime
from pathlib import Path
from personalization.generator import writer
from personalization.generator.config import GeneratorConfig

original = writer.run_shard

def failing_shard(shard):
    if shard == 1:
        raise RuntimeError("planted shard failure")
    return original(shard)

signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as Dagster leaves a pytest-xdist worker
writer.run_shard = failing_shard
cfg = GeneratorConfig(
    events=2000, users=1500, days=3, seed=1, out=Path(sys.argv[1]),
    start=datetime(2026, 1, 1, tzinfo=UTC), workers=2, quiet=True,
)
assert cfg.n_shards >= 3, cfg.n_shards
writer.generate(cfg)
"""


def test_a_failing_shard_stops_the_worker_pool_even_when_sigterm_is_ignored(tmp_path):
    """On an error the pool terminates its workers with SIGTERM; forked workers inherit the
    parent's dispositions, and a parent that ignores SIGTERM (a pytest worker did, after Dagster
    ran in it: SIGTERM then takes SIGINT's handler, which xdist ignores) once left the pool
    waiting for them forever."""
    done = subprocess.run(
        [sys.executable, "-c", SHARD_FAILS_UNDER_A_SHIELDED_PARENT, str(tmp_path / "out")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "RuntimeError: planted shard failure" in done.stderr
