"""One shard: generate its users' clean events, add defects and duplicates, write part files."""

from __future__ import annotations

import gzip
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from personalization.generator.catalogue import build_catalogue, load_cities, load_countries
from personalization.generator.config import GeneratorConfig
from personalization.generator.defects import DEFECT_REASONS, SOURCE_POOL, make_defect
from personalization.generator.sessions import (
    AMOUNT_CODES,
    C_ADD,
    C_CHECKOUT,
    C_FEATURE,
    C_IDENTIFY,
    C_ORDER,
    C_PAGE,
    C_SEARCH,
    C_VIEW,
    DAY_MS,
    MAX_GAP_MS,
    REQUIRED_PROPERTY_CODES,
    SESSION_SEPARATION_MS,
    TRACK_CODES,
    Behaviour,
    Tally,
    build_sessions,
    day_strings,
    iso_ms,
    purchase_only,
)
from personalization.generator.users import SHARED_DEVICE_SHARE, User, make_user
from personalization.tracking_plan import load_tracking_plan

GT_COLUMNS = (
    "canonical_id", "user_id", "anonymous_ids", "archetype", "age", "birthday", "country", "city",
    "gender", "email", "consent_personalization", "consent_analytics", "sessions", "page_views",
    "product_views", "cart_adds", "checkouts_started", "orders", "revenue", "feature_uses",
    "searches", "first_seen_at", "last_seen_at",
)  # fmt: skip
GZIP_LEVEL = 1
MILLIS = [f".{i:03d}Z" for i in range(1000)]
TIME_OF_DAY = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]


class _State:
    """Per-process read-only data (built once per worker by init_worker)."""

    cfg: GeneratorConfig
    behaviour: Behaviour
    plan = None
    cities: list[tuple[str, str]]
    countries: list[str]


def init_worker(cfg: GeneratorConfig) -> None:
    _State.cfg = cfg
    _State.behaviour = Behaviour(build_catalogue())
    _State.plan = load_tracking_plan()
    _State.cities = load_cities()
    _State.countries = load_countries()


@dataclass
class ShardResult:
    shard: int
    files: list[tuple[str, int]] = field(default_factory=list)
    clean: int = 0
    defects: Counter = field(default_factory=Counter)
    duplicates: int = 0
    late: int = 0
    mix: Counter = field(default_factory=Counter)
    rows: list[list[str]] = field(default_factory=list)
    shared_anonymous_ids: list[str] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(n for _, n in self.files)


def _stochastic_round(x: float, r: random.Random) -> int:
    base = int(x)
    return base + (1 if r.random() < x - base else 0)


def _budgets(users: list[User], target: float, rng: np.random.Generator) -> None:
    """Split the shard's clean-event target over users (largest remainder, so the sum is exact)."""
    weights = np.array([u.archetype.activity for u in users]) * rng.lognormal(0, 0.35, len(users))
    raw = weights / weights.sum() * target
    base = np.floor(raw).astype(np.int64)
    remainder = int(round(target)) - int(base.sum())
    if remainder > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:remainder]] += 1
    for u, b in zip(users, base.tolist(), strict=True):
        u.budget = max(1, b)


def run_shard(shard: int) -> ShardResult:
    cfg = _State.cfg
    bh = _State.behaviour
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, shard]))
    r = random.Random(int(rng.integers(2**63)))
    rnd = r.random
    start_ms = int(cfg.start.timestamp() * 1000)
    period_ms = cfg.days * DAY_MS
    last_ms = start_ms + period_ms - 1
    days = day_strings(cfg.start, cfg.days + 1)
    start_date = date.fromisoformat(days[0])

    day_t = [d + "T" for d in days]

    def fmt(ms: int) -> str:
        """'YYYY-MM-DDTHH:MM:SS.mmmZ' from pre-rendered parts (much faster than strftime)."""
        sec, milli = divmod(ms - start_ms, 1000)
        d, s = divmod(sec, 86_400)
        return day_t[d] + TIME_OF_DAY[s] + MILLIS[milli]

    # ---- users
    user_range = cfg.shard_users(shard)
    users = [
        make_user(
            r, i, f"{r.getrandbits(64):016x}", start_date, _State.cities, _State.countries,
            bh.categories,
        )
        for i in user_range
    ]  # fmt: skip
    identifiers = [u for u in users if u.user_id is not None]
    n_pairs = min(len(identifiers) // 2, _stochastic_round(len(users) * SHARED_DEVICE_SHARE / 2, r))
    shared_ids: list[str] = []
    for a, b in zip(*[iter(r.sample(identifiers, 2 * n_pairs))] * 2, strict=True):
        b.anonymous_id = a.anonymous_id
        a.shared = b.shared = True
        shared_ids.append(a.anonymous_id)
    target_lines = cfg.events * len(users) / cfg.users
    _budgets(users, target_lines * cfg.clean_share, rng)

    # ---- clean events
    mid_prefix = f"{r.getrandbits(32):08x}-{shard:04x}-"
    counter = 0
    recv: list[int] = []
    lines: list[str] = []
    codes = bytearray()
    mix: Counter = Counter()
    late = 0
    late_rate = cfg.late_rate
    rows: list[list[str]] = []
    shared_tallies: dict[str, Tally] = {}
    shared_logs: dict[str, list[tuple[int, int, bool]]] = {}
    for user in users:
        sessions, _ = build_sessions(user, r, bh)
        if cfg.purchase_only:
            sessions = purchase_only(sessions)
            if not sessions:  # a visitor who never bought nor identified: no event at all
                continue
        arch = user.archetype
        # timing: sessions packed into the user's active window, >= SESSION_SEPARATION_MS apart
        offsets = []
        durations = []
        for toks in sessions:
            t = 0
            offs = [0]
            for _ in range(len(toks) - 1):
                t += 1500 + min(MAX_GAP_MS, int(r.expovariate(1 / 30_000)))
                offs.append(t)
            offsets.append(offs)
            durations.append(t)
        window_end = int(period_ms * arch.active_until) - 600_000
        window_start = int(rnd() * 0.15 * window_end)
        k = len(sessions)
        sep = SESSION_SEPARATION_MS
        free = window_end - window_start - sum(durations) - sep * (k - 1)
        if free < 0:
            window_start = 0
            free = window_end - sum(durations) - sep * (k - 1)
            if free < 0:  # very many sessions for one user: squeeze the gaps
                sep = max(60_000, (window_end - sum(durations)) // max(1, k - 1))
                free = max(0, window_end - sum(durations) - sep * (k - 1))
        marks = sorted(rnd() for _ in range(k))
        # consent changes (if the user changes it) at the first event of session revoke_at
        revoke_at = max(1, k // 2) if user.changes_consent and k >= 2 else k + 1
        consents = ((user.consent[0], user.consent[2]), user.consent_after_change())
        contexts = tuple(user.context(*c) for c in consents)
        uid = "null"
        anon = user.anonymous_id
        # a shared device's anonymous-only lines (server time, client time, analytics consent)
        shared_log = shared_logs.setdefault(anon, []) if user.shared else None
        tallies = (Tally(), Tally())
        phase = 0
        elapsed = 0
        for si, toks in enumerate(sessions):
            s0 = start_ms + window_start + int(marks[si] * free) + elapsed
            elapsed += durations[si] + sep
            changed = si >= revoke_at
            consent = consents[changed]
            ctx = contexts[changed]
            tally = tallies[phase]
            counts = tally.counts
            run_first = ts = (
                prev_ts
            ) = -1  # first/last timestamp of this session in the current phase
            for tok, off in zip(toks, offsets[si], strict=True):
                code, head, body, page, cents = tok
                ts = min(s0 + off, last_ms - 5000)
                if code == C_IDENTIFY:
                    if run_first >= 0:
                        _flush(tally, (user.index, si), run_first, prev_ts, consent)
                    uid = '"' + user.user_id + '"'
                    phase = 1
                    tally = tallies[1]
                    counts = tally.counts
                    run_first = -1
                if run_first < 0:
                    run_first = ts
                prev_ts = ts
                if rnd() < late_rate:  # buffered on the device (offline), sent 1-3 days later
                    sa = min(ts + DAY_MS + int(rnd() * 2 * DAY_MS), last_ms - 1000)
                    ra = sa + 20 + int(rnd() * 600)
                    if (ra - start_ms) // DAY_MS != (ts - start_ms) // DAY_MS:
                        late += 1
                else:
                    sa = ts + 5 + int(rnd() * 1500)
                    ra = sa + 20 + int(rnd() * 600)
                    if (
                        ra % DAY_MS < 3000
                        and (ra - start_ms) // DAY_MS != (ts - start_ms) // DAY_MS
                    ):
                        late += 1
                counter += 1
                lines.append(
                    '{"messageId":"' + mid_prefix + f"{counter:012x}" + '",' + head
                    + ',"userId":' + uid + ',"anonymousId":"' + anon + '","timestamp":"'
                    + fmt(ts) + '","sentAt":"' + fmt(sa) + '","receivedAt":"' + fmt(ra) + '",'
                    + body + ',"context":' + ctx
                    + ("}}" if page is None else ',"page":' + page + "}}")
                )  # fmt: skip
                recv.append(ra)
                codes.append(code)
                mix[head] += 1
                if shared_log is not None and phase == 0:
                    shared_log.append((ra, ts, consent[1]))
                counts[code] += 1
                if cents:
                    tally.revenue_cents += cents
            _flush(tally, (user.index, si), run_first, ts, consent)
        # ---- ground truth rows
        if user.user_id is None:
            tallies[0].merge(tallies[1])
            rows.append(_row(user, anon, tallies[0], fmt, with_traits=False))
        elif user.shared:
            shared_tallies.setdefault(anon, Tally()).merge(tallies[0])
            rows.append(_row(user, user.user_id, tallies[1], fmt, with_traits=True))
        else:
            tallies[1].merge(tallies[0])
            rows.append(_row(user, user.user_id, tallies[1], fmt, with_traits=True))
    for anon, tally in shared_tallies.items():
        tally.analytics = analytics_consent(shared_logs[anon])
        rows.append(_shared_row(anon, tally, fmt))

    # ---- defects and duplicates (extra lines)
    clean = len(lines)
    pools = {
        "track": [i for i, c in enumerate(codes) if c in TRACK_CODES],
        "required": [i for i, c in enumerate(codes) if c in REQUIRED_PROPERTY_CODES],
        "amount": [i for i, c in enumerate(codes) if c in AMOUNT_CODES],
        "identify": [i for i, c in enumerate(codes) if c == C_IDENTIFY],
    }
    del codes
    result = ShardResult(shard=shard, clean=clean, late=late, rows=rows)
    result.shared_anonymous_ids = sorted(shared_ids)
    result.mix = mix
    scale = clean / cfg.clean_share if cfg.clean_share > 0 else 0.0
    for reason in DEFECT_REASONS:
        wanted = _stochastic_round(scale * cfg.defect_rates.get(reason, 0.0), r)
        pool_name = SOURCE_POOL.get(reason)
        pool = pools[pool_name] if pool_name else None
        if pool is not None and not pool:
            continue
        for _ in range(wanted):
            src = pool[int(rnd() * len(pool))] if pool is not None else int(rnd() * clean)
            counter += 1
            line = make_defect(
                reason, lines[src], mid_prefix + f"{counter:012x}", r, _State.plan,
                _State.cities, iso_ms, recv[src],
            )  # fmt: skip
            lines.append(line)
            recv.append(recv[src])
            result.defects[reason] += 1
    n_dups = _stochastic_round(scale * cfg.duplicate_rate, r) if clean else 0
    for _ in range(n_dups):
        src = int(rnd() * clean)
        roll = rnd()
        if roll < 0.7:
            delay = 1 + int(rnd() * 5000)
        elif roll < 0.95:
            delay = 60_000 + int(rnd() * 3_540_000)
        else:
            delay = DAY_MS + int(rnd() * DAY_MS)
        ra = min(recv[src] + delay, last_ms)
        old = '"receivedAt":"' + fmt(recv[src]) + '"'
        lines.append(lines[src].replace(old, '"receivedAt":"' + fmt(ra) + '"', 1))
        recv.append(ra)
    result.duplicates = n_dups

    # ---- write: one part file per day this shard received lines on, sorted by receivedAt
    order = sorted(range(len(lines)), key=recv.__getitem__)
    by_day: dict[int, list[str]] = {}
    for i in order:
        by_day.setdefault((recv[i] - start_ms) // DAY_MS, []).append(lines[i])
    del lines, recv, order
    for d in sorted(by_day):
        day_lines = by_day.pop(d)
        rel = f"dt={days[d]}/part-{shard:04d}.jsonl.gz"
        path = cfg.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = ("\n".join(day_lines) + "\n").encode()
        path.write_bytes(gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0))
        result.files.append((rel, len(day_lines)))
    return result


def _flush(
    t: Tally, session: tuple[int, int], first: int, last: int, consent: tuple[bool, bool]
) -> None:
    """Record that `t`'s phase had events from `first` to `last` in `session`, with `consent`
    (personalization, analytics)."""
    t.sessions.add(session)
    if t.first_ms is None:
        t.first_ms = first
    t.last_ms = last
    t.consent, t.analytics = consent


def analytics_consent(lines: list[tuple[int, int, bool]]) -> bool:
    """The pipeline's consent rule (docs/privacy.md) over (server ms, client ms, granted) lines:
    a withdrawal stands unless a grant is newer by server time and by client time (a tie goes to
    the withdrawal); no withdrawal: granted. One person's withdrawal is final, so their answer
    is their latest session's; a shared device mixes two people's anonymous lines."""
    withdrawals = [(server, client) for server, client, granted in lines if not granted]
    if not withdrawals:
        return True
    server_max = max(server for server, _ in withdrawals)
    client_max = max(client for _, client in withdrawals)
    return any(
        granted and server > server_max and client > client_max for server, client, granted in lines
    )


def _bool(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def _counts(t: Tally, fmt) -> list[str]:
    c = t.counts
    return [
        str(len(t.sessions)), str(c[C_PAGE]), str(c[C_VIEW]), str(c[C_ADD]), str(c[C_CHECKOUT]),
        str(c[C_ORDER]), f"{t.revenue_cents / 100:.2f}", str(c[C_FEATURE]), str(c[C_SEARCH]),
        fmt(t.first_ms) if t.first_ms is not None else "",
        fmt(t.last_ms) if t.last_ms is not None else "",
    ]  # fmt: skip


def _row(user: User, canonical: str, t: Tally, fmt, with_traits: bool) -> list[str]:
    tr = user.true_traits if with_traits else {}
    return [
        canonical, user.user_id or "", user.anonymous_id, user.archetype.name,
        str(tr.get("age", "")), tr.get("birthday", ""), tr.get("country", ""), tr.get("city", ""),
        tr.get("gender", ""), tr.get("email", ""), _bool(t.consent), _bool(t.analytics),
        *_counts(t, fmt),
    ]  # fmt: skip


def _shared_row(anon: str, t: Tally, fmt) -> list[str]:
    return [
        anon, "", anon, "shared_device", "", "", "", "", "", "", _bool(t.consent),
        _bool(t.analytics), *_counts(t, fmt),
    ]  # fmt: skip
