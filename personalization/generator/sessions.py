"""Behaviour: sessions (funnel bursts) per user, their timing, and rendering to JSON lines.

Lines are rendered from pre-built string fragments rather than json.dumps of dicts, which is the
main reason the generator reaches ~100k events/s per core. Every fragment is valid JSON by
construction (all strings come from fixed ASCII vocabularies or json.dumps).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from personalization.generator.catalogue import CATEGORIES, Product, Sampler, popularity_weight
from personalization.generator.users import ARCHETYPES, FEATURES, Archetype, User

DAY_MS = 86_400_000
SESSION_SEPARATION_MS = 40 * 60_000  # > the usual 30-minute inactivity rule
MAX_GAP_MS = 8 * 60_000
SITE = "https://shop.example.com"

# token codes (for ground-truth tallies and defect source pools)
C_OTHER, C_PAGE, C_VIEW, C_ADD, C_CHECKOUT, C_ORDER, C_FEATURE, C_SEARCH, C_IDENTIFY = range(9)
C_REMOVE, C_LIST, C_SURVEY, C_REFUND, C_TRACK_OTHER = range(9, 14)
N_CODES = 14
REQUIRED_PROPERTY_CODES = frozenset(
    {C_VIEW, C_ADD, C_CHECKOUT, C_ORDER, C_FEATURE, C_SEARCH, C_REMOVE, C_LIST, C_SURVEY, C_REFUND}
)
AMOUNT_CODES = frozenset({C_VIEW, C_ADD, C_CHECKOUT, C_ORDER, C_REMOVE})
TRACK_CODES = REQUIRED_PROPERTY_CODES | {C_TRACK_OTHER}
# Browsing, left out of purchase-only data: pages, screens, product/list views, searches, cart
# and checkout steps, feature use (codes, and the heads of screen and Cart Viewed calls).
BROWSING_CODES = frozenset(
    {C_PAGE, C_VIEW, C_ADD, C_REMOVE, C_LIST, C_CHECKOUT, C_FEATURE, C_SEARCH}
)


def _track(event: str) -> str:
    return '"type":"track","event":"' + event + '"'


H_SEARCH = _track("Products Searched")
H_LIST = _track("Product List Viewed")
H_VIEW = _track("Product Viewed")
H_ADD = _track("Product Added")
H_REMOVE = _track("Product Removed")
H_CART = _track("Cart Viewed")
H_CHECKOUT = _track("Checkout Started")
H_ORDER = _track("Order Completed")
H_REFUND = _track("Order Refunded")
H_FEATURE = _track("Feature Used")
H_SIGNUP = _track("Signed Up")
H_PROFILE = _track("Profile Updated")
H_SURVEY = _track("Survey Submitted")
H_PAGE = '"type":"page"'
H_SCREEN = '"type":"screen"'
H_IDENTIFY = '"type":"identify"'
H_ALIAS = '"type":"alias"'
H_GROUP = '"type":"group"'


def mix_name(head: str) -> str:
    """'"type":"track","event":"X"' -> 'X'; '"type":"page"' -> 'page'."""
    return head.rsplit(":", 1)[1].strip('"')


EXTERNAL_REFERRERS = (
    "", "", "https://www.google.com/", "https://www.bing.com/", "https://newsletter.example.org/",
    "https://social.example.net/",
)  # fmt: skip
SCREENS = ("Home", "Settings", "Wishlist", "Orders", "Alerts")
SEARCH_WORDS = {
    cat: tuple(w.lower().replace(" ", "+") for w in words)
    for cat, words in {
        "electronics": ("headphones", "speaker", "camera", "smartwatch"),
        "computers": ("laptop", "monitor", "keyboard", "usb c dock"),
        "furniture": ("sofa", "desk", "office chair", "bookshelf"),
        "jewelry": ("ring", "necklace", "gold bracelet", "watch"),
        "fashion": ("jacket", "sneakers", "dress", "jeans"),
        "sports": ("yoga mat", "running shoes", "tent", "dumbbells"),
        "home": ("lamp", "rug", "cookware", "bedding"),
        "garden": ("planter", "hose", "grill", "seeds"),
        "beauty": ("serum", "lipstick", "shampoo", "perfume"),
        "toys": ("puzzle", "board game", "lego", "plush"),
        "books": ("novel", "cookbook", "comic", "travel guide"),
        "grocery": ("coffee", "tea", "olive oil", "chocolate"),
    }.items()
}


def money(cents: int) -> str:
    return repr(cents / 100)


@dataclass
class Tally:
    """Clean-event counts for one identity phase of one user (anonymous-only or identified)."""

    counts: list[int] = field(default_factory=lambda: [0] * N_CODES)
    revenue_cents: int = 0
    sessions: set = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    consent: bool | None = None  # personalization consent of the latest session
    analytics: bool | None = None  # analytics consent of the latest session

    def merge(self, other: Tally) -> None:
        for i, v in enumerate(other.counts):
            self.counts[i] += v
        self.revenue_cents += other.revenue_cents
        self.sessions |= other.sessions
        if other.first_ms is not None:
            if self.first_ms is None or other.first_ms < self.first_ms:
                self.first_ms = other.first_ms
            if self.last_ms is None or other.last_ms > self.last_ms:
                self.last_ms = other.last_ms
                self.consent = other.consent
                self.analytics = other.analytics


class Behaviour:
    """Catalogue samplers per archetype and pre-rendered product fragments (once per process)."""

    def __init__(self, products: list[Product]) -> None:
        self.products = products
        self.categories = list(CATEGORIES)
        self.fragment = {  # product -> '"product_id":"P1","category":"c","price":1.0'
            p.product_id: '"product_id":"'
            + p.product_id
            + '","category":"'
            + p.category
            + '","price":'
            + money(p.price_cents)
            for p in products
        }
        self.view_props = {
            p.product_id: '"properties":{'
            + self.fragment[p.product_id]
            + ',"name":"'
            + p.name
            + '"}'
            for p in products
        }
        self.samplers: dict[str, Sampler] = {}
        self.category_samplers: dict[tuple[str, str], Sampler] = {}
        for arch in ARCHETYPES:
            weights = [self._weight(arch, p) for p in products]
            self.samplers[arch.name] = Sampler(products, weights)
            for cat in self.categories:
                items = [p for p in products if p.category == cat]
                self.category_samplers[(arch.name, cat)] = Sampler(
                    items, [self._weight(arch, p) for p in items]
                )

    @staticmethod
    def _weight(arch: Archetype, p: Product) -> float:
        median = CATEGORIES[p.category][0]
        return (
            popularity_weight(p)
            * arch.category_affinity.get(p.category, 1.0)
            * (p.price_cents / 100 / median) ** arch.price_exponent
        )


def _page(name: str, path: str, referrer: str) -> tuple[str, str]:
    """(body, context.page JSON) for a page event."""
    page = (
        '{"path":"' + path + '","url":"' + SITE + path + '","title":"' + name
        + ' | Example Shop","referrer":"' + referrer + '"}'
    )  # fmt: skip
    return '"name":"' + name + '","properties":' + page, page


def one_session(user: User, si: int, r: random.Random, bh: Behaviour, orders: list[int]) -> list:
    """Tokens (code, head, body, page, cents) of one session, following the funnel."""
    arch = user.archetype
    rnd = r.random

    def randint(lo: int, hi: int) -> int:
        return lo + int(rnd() * (hi - lo + 1))

    toks: list = []
    referrer = EXTERNAL_REFERRERS[int(rnd() * len(EXTERNAL_REFERRERS))]
    fav = user.favourite_categories
    for i in range(randint(*arch.pages)):
        if i == 0:
            name, path = "Home", "/"
        else:
            cat = fav[i % 2] if rnd() < 0.5 else bh.categories[int(rnd() * len(bh.categories))]
            name, path = cat.capitalize(), "/c/" + cat
        body, page = _page(name, path, referrer)
        toks.append((C_PAGE, H_PAGE, body, page, 0))
        referrer = SITE + path
    for _ in range(randint(*arch.searches)):
        cat = fav[0] if rnd() < 0.6 else bh.categories[int(rnd() * len(bh.categories))]
        words = SEARCH_WORDS[cat]
        query = words[int(rnd() * len(words))]
        toks.append((C_SEARCH, H_SEARCH, '"properties":{"query":"' + query + '"}', None, 0))
    for _ in range(randint(*arch.list_views)):
        cat = fav[int(rnd() * 2)] if rnd() < 0.6 else bh.categories[int(rnd() * 12)]
        body = '"properties":{"list_id":"' + cat + '-grid","category":"' + cat + '"}'
        toks.append((C_LIST, H_LIST, body, None, 0))
    cart: list[tuple[Product, int]] = []
    cart_id = f"cart-{user.index:x}-{si}"
    sampler = bh.samplers[arch.name]
    frag = bh.fragment
    for _ in range(randint(*arch.views)):
        if not arch.category_affinity and rnd() < 0.35:
            product = bh.category_samplers[(arch.name, fav[int(rnd() * 2)])].draw(rnd())
        else:
            product = sampler.draw(rnd())
        toks.append((C_VIEW, H_VIEW, bh.view_props[product.product_id], None, 0))
        if rnd() < arch.add_p:
            qty = randint(*arch.qty)
            cart.append((product, qty))
            body = (
                '"properties":{' + frag[product.product_id] + ',"quantity":' + str(qty)
                + ',"cart_id":"' + cart_id + '"}'
            )  # fmt: skip
            toks.append((C_ADD, H_ADD, body, None, 0))
    if cart and rnd() < arch.remove_p:
        product, qty = cart.pop(int(rnd() * len(cart)))
        body = (
            '"properties":{' + frag[product.product_id] + ',"quantity":' + str(qty)
            + ',"cart_id":"' + cart_id + '"}'
        )  # fmt: skip
        toks.append((C_REMOVE, H_REMOVE, body, None, 0))
    if cart:
        products_json = (
            "["
            + ",".join("{" + frag[p.product_id] + ',"quantity":' + str(q) + "}" for p, q in cart)
            + "]"
        )  # fmt: skip
        if rnd() < arch.cart_view_p:
            body = '"properties":{"cart_id":"' + cart_id + '","products":' + products_json + "}"
            toks.append((C_TRACK_OTHER, H_CART, body, None, 0))
        if rnd() < arch.checkout_p:
            orders[0] += 1
            order_id = f"ord-{user.index:x}-{orders[0]}"
            subtotal = sum(p.price_cents * q for p, q in cart)
            body = (
                '"properties":{"order_id":"' + order_id + '","value":' + money(subtotal)
                + ',"products":' + products_json + "}"
            )  # fmt: skip
            toks.append((C_CHECKOUT, H_CHECKOUT, body, None, 0))
            if rnd() < arch.order_p:
                extra = ""
                discount = 0
                if rnd() < arch.coupon_p:
                    pct = (10, 15, 20)[int(rnd() * 3)]
                    discount = subtotal * pct // 100
                    extra = ',"coupon":"SAVE' + str(pct) + '","discount":' + money(discount)
                revenue = subtotal - discount
                body = (
                    '"properties":{"order_id":"' + order_id + '","revenue":' + money(revenue)
                    + ',"products":' + products_json + ',"currency":"EUR"' + extra + "}"
                )  # fmt: skip
                toks.append((C_ORDER, H_ORDER, body, None, revenue))
                if rnd() < arch.refund_p:
                    body = (
                        '"properties":{"order_id":"' + order_id + '","revenue":' + money(revenue)
                        + "}"
                    )  # fmt: skip
                    toks.append((C_REFUND, H_REFUND, body, None, 0))
    for _ in range(randint(*arch.features)):
        if user.app and rnd() < 0.5:
            screen = SCREENS[int(rnd() * len(SCREENS))]
            body = '"name":"' + screen + '","properties":{"name":"' + screen + '"}'
            toks.append((C_OTHER, H_SCREEN, body, None, 0))
        feature = FEATURES[int(rnd() * len(FEATURES))]
        body = '"properties":{"feature_name":"' + feature + '"}'
        toks.append((C_FEATURE, H_FEATURE, body, None, 0))
    if not toks:  # always at least one event per session
        body, page = _page("Home", "/", referrer)
        toks.append((C_PAGE, H_PAGE, body, page, 0))
    return toks


_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def purchase_only(sessions: list[list]) -> list[list]:
    """The sessions without their browsing tokens; sessions left empty are dropped."""
    kept = (
        [t for t in toks if t[0] not in BROWSING_CODES and t[1] not in (H_SCREEN, H_CART)]
        for toks in sessions
    )
    return [toks for toks in kept if toks]


def build_sessions(user: User, r: random.Random, bh: Behaviour) -> tuple[list[list], int]:
    """All sessions of a user (token lists) and the index of the identify session (-1: none)."""
    rnd = r.random
    extras: list = []
    if user.user_id is not None:
        extras.append((C_IDENTIFY, H_IDENTIFY, '"traits":' + _DUMPS(user.traits), None, 0))
        if rnd() < 0.1:
            extras.append((C_OTHER, H_ALIAS, '"previousId":"' + user.anonymous_id + '"', None, 0))
        if rnd() < 0.6:
            method = ("email", "google", "apple")[int(rnd() * 3)]
            body = '"properties":{"method":"' + method + '"}'
            extras.append((C_TRACK_OTHER, H_SIGNUP, body, None, 0))
        if rnd() < 0.03:
            n = user.index % 997
            body = '"groupId":"acct-' + str(n) + '","traits":{"name":"Account ' + str(n) + '"}'
            extras.append((C_OTHER, H_GROUP, body, None, 0))
    late_extras: list = []
    if user.correction is not None:
        body = '"properties":' + _DUMPS(user.correction)
        late_extras.append((C_TRACK_OTHER, H_PROFILE, body, None, 0))
    if user.survey is not None:
        late_extras.append((C_SURVEY, H_SURVEY, '"properties":' + _DUMPS(user.survey), None, 0))
    core = max(1, user.budget - len(extras) - len(late_extras))
    sessions: list[list] = []
    total = 0
    orders = [0]
    while total < core:
        toks = one_session(user, len(sessions), r, bh, orders)
        if total + len(toks) > core:
            toks = toks[: core - total]
        sessions.append(toks)
        total += len(toks)
    identify_session = -1
    if extras:
        identify_session = min(len(sessions) - 1, (0, 0, 1, 2)[int(rnd() * 4)])
        if user.shared:
            identify_session = 0
        toks = sessions[identify_session]
        pos = min(len(toks), 1 + int(rnd() * 3))
        toks[pos:pos] = extras
    if late_extras:
        if len(sessions) - 1 > identify_session >= 0:
            sessions[-1][0:0] = late_extras
        else:  # no later session: the correction never happens, truth = declared traits
            user.correction = None
            user.true_traits = dict(user.traits)
    return sessions, identify_session


def day_strings(start: datetime, n_days: int) -> list[str]:
    """'YYYY-MM-DD' for day offsets 0..n_days-1 from start."""
    return [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(n_days)]


def iso_ms(epoch_ms: int) -> str:
    """Slow path for arbitrary instants (defects)."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
