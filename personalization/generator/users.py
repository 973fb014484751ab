"""User archetypes (behaviour parameters) and per-user traits, identity and consent."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

# fmt: off
_FIRST = ("anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas",
          "kira", "liam", "mia", "noah", "olga", "paul", "quinn", "rosa", "sam", "tara")
_LAST = ("smith", "muller", "garcia", "rossi", "dubois", "novak", "jensen", "silva", "tanaka",
         "kumar", "brown", "weber", "moreau", "lopez", "berg")
# fmt: on
GENDERS = ("female", "male", "non_binary", "other", "prefer_not_to_say")
GENDER_WEIGHTS = (0.46, 0.44, 0.04, 0.02, 0.04)
LOCALES = {
    "DE": "de-DE", "AT": "de-AT", "CH": "de-CH", "FR": "fr-FR", "BE": "fr-BE", "GB": "en-GB",
    "IE": "en-IE", "ES": "es-ES", "IT": "it-IT", "NL": "nl-NL", "PL": "pl-PL", "SE": "sv-SE",
    "PT": "pt-PT", "DK": "da-DK", "NO": "nb-NO", "FI": "fi-FI", "CZ": "cs-CZ", "US": "en-US",
    "CA": "en-CA", "AU": "en-AU", "JP": "ja-JP", "BR": "pt-BR", "MX": "es-MX", "IN": "en-IN",
}  # fmt: skip
USER_AGENTS = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
    ),
}


@dataclass(frozen=True)
class Archetype:
    """Per-session behaviour. Ranges are inclusive (lo, hi) counts per session."""

    name: str
    share: float  # share of users
    activity: float  # relative event budget per user
    pages: tuple[int, int]
    searches: tuple[int, int]
    list_views: tuple[int, int]
    views: tuple[int, int]
    add_p: float  # per viewed product
    remove_p: float
    cart_view_p: float
    checkout_p: float  # given a non-empty cart
    order_p: float  # given a started checkout
    coupon_p: float
    qty: tuple[int, int]
    features: tuple[int, int]
    refund_p: float
    category_affinity: dict[str, float] = field(default_factory=dict)
    price_exponent: float = 0.0  # >0 prefers expensive products, <0 cheap ones
    active_until: float = 1.0  # share of the period in which the user is active
    age_mean: float = 38.0  # ages differ by behaviour, so age can be imputed from behaviour


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype(
        "browser", 0.20, 1.5, pages=(2, 5), searches=(0, 1), list_views=(1, 3), views=(4, 9),
        add_p=0.004, remove_p=0.0, cart_view_p=0.3, checkout_p=0.2, order_p=0.2, coupon_p=0.0,
        qty=(1, 1), features=(0, 0), refund_p=0.0,
        age_mean=27,
    ),
    Archetype(
        "bargain_hunter", 0.17, 1.0, pages=(1, 2), searches=(3, 7), list_views=(1, 2),
        views=(2, 5), add_p=0.3, remove_p=0.2, cart_view_p=0.5, checkout_p=0.7, order_p=0.75,
        coupon_p=0.9, qty=(1, 2), features=(0, 0), refund_p=0.01,
        category_affinity={c: 4.0 for c in ("books", "grocery", "beauty", "toys")},
        price_exponent=-1.0,
        age_mean=34,
    ),
    Archetype(
        "loyal_high_spender", 0.13, 1.1, pages=(1, 2), searches=(0, 1), list_views=(0, 1),
        views=(2, 4), add_p=0.7, remove_p=0.05, cart_view_p=0.5, checkout_p=0.95, order_p=0.95,
        coupon_p=0.03, qty=(1, 3), features=(0, 0), refund_p=0.02,
        category_affinity={c: 5.0 for c in ("electronics", "computers", "furniture", "jewelry")},
        price_exponent=0.6,
        age_mean=52,
    ),
    Archetype(
        "cart_abandoner", 0.17, 1.0, pages=(1, 2), searches=(0, 1), list_views=(1, 2),
        views=(3, 6), add_p=0.8, remove_p=0.4, cart_view_p=0.9, checkout_p=0.8, order_p=0.03,
        coupon_p=0.1, qty=(1, 2), features=(0, 0), refund_p=0.0,
        age_mean=31,
    ),
    Archetype(
        "lapsed", 0.15, 0.45, pages=(1, 3), searches=(0, 2), list_views=(1, 2), views=(2, 4),
        add_p=0.25, remove_p=0.1, cart_view_p=0.5, checkout_p=0.6, order_p=0.6, coupon_p=0.2,
        qty=(1, 2), features=(0, 0), refund_p=0.01, active_until=0.3,
        age_mean=45,
    ),
    Archetype(
        "feature_power_user", 0.18, 1.2, pages=(1, 1), searches=(0, 0), list_views=(0, 0),
        views=(0, 1), add_p=0.05, remove_p=0.0, cart_view_p=0.2, checkout_p=0.5, order_p=0.5,
        coupon_p=0.0, qty=(1, 1), features=(5, 12), refund_p=0.0,
        age_mean=24,
    ),
)  # fmt: skip
ARCHETYPE_BY_NAME = {a.name: a for a in ARCHETYPES}
FEATURES = (
    "dark_mode", "wishlist", "price_alert", "compare", "saved_search", "export_list",
    "size_guide", "ar_preview",
)  # fmt: skip

IDENTIFY_SHARE = 0.85  # visitors who identify at some point
SHARED_DEVICE_SHARE = 0.006  # share of users whose anonymousId is shared with another user
WRONG_AGE_SHARE = 0.03  # declared a wrong age, corrected later with Profile Updated
MOVED_SHARE = 0.01  # corrected country/city later with Profile Updated
SURVEY_SHARE = 0.05
REVOKE_SHARE = 0.03  # of users with personalization consent, share who revoke it later
# Analytics consent (one draw per user): refused from the first event, or granted and withdrawn
# halfway through the user's sessions (with a personalization revocation, at the same moment).
ANALYTICS_REFUSE_SHARE = 0.03
ANALYTICS_WITHDRAW_SHARE = 0.03


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass
class User:
    """One person (or anonymous visitor) and the facts the generator needs to render events."""

    index: int
    archetype: Archetype
    anonymous_id: str
    user_id: str | None  # None -> never identifies
    traits: dict  # declared at identify time (may hold a wrong age)
    true_traits: dict  # after corrections; the ground truth
    correction: dict | None  # Profile Updated properties (None -> no correction)
    survey: dict | None
    context_prefix: str  # context JSON without the consent part and closing brace
    consent: tuple[bool, bool, bool]  # personalization, advertising, analytics (first events)
    revoke: bool  # withdraws personalization consent halfway through their sessions
    withdraw_analytics: bool  # withdraws analytics consent halfway through their sessions
    app: bool  # native app user (emits screen events)
    favourite_categories: tuple[str, ...]
    budget: int = 0
    shared: bool = False  # anonymousId shared with another user

    @property
    def changes_consent(self) -> bool:
        """Whether the user withdraws a consent halfway through their sessions."""
        return self.revoke or self.withdraw_analytics

    def consent_after_change(self) -> tuple[bool, bool]:
        """(personalization, analytics) after the halfway change (equal before it if none)."""
        personalization, _, analytics = self.consent
        return personalization and not self.revoke, analytics and not self.withdraw_analytics

    def context(self, personalization: bool, analytics: bool) -> str:
        advertising = self.consent[1]
        return (
            self.context_prefix
            + ',"consent":{"categoryPreferences":{"personalization":'
            + _json_bool(personalization)
            + ',"advertising":'
            + _json_bool(advertising)
            + ',"analytics":'
            + _json_bool(analytics)
            + "}}"
        )


def pick_archetype(r: random.Random) -> Archetype:
    return r.choices(ARCHETYPES, weights=[a.share for a in ARCHETYPES])[0]


def make_traits(
    r: random.Random,
    index: int,
    start: date,
    cities: list[tuple[str, str]],
    countries: list[str],
    age_mean: float = 38.0,
) -> dict:
    """Declared identify traits; some users leave some traits out."""
    traits: dict = {}
    first, last = r.choice(_FIRST), r.choice(_LAST)
    traits["email"] = f"{first}.{last}.{index}@example.com"
    age = min(110, max(13, int(r.gauss(age_mean, 9))))
    roll = r.random()
    if roll < 0.65:
        traits["age"] = age
    elif roll < 0.92:
        born = start - timedelta(days=age * 365 + r.randrange(60, 300))
        traits["birthday"] = born.isoformat()
    if r.random() < 0.93:
        city, country = r.choice(cities)
        traits["country"] = country
        if r.random() < 0.9:
            traits["city"] = city
    else:  # a country without a city in the reference list
        traits["country"] = r.choice(countries)
    if r.random() < 0.85:
        traits["gender"] = r.choices(GENDERS, weights=GENDER_WEIGHTS)[0]
    return traits


def make_user(
    r: random.Random,
    index: int,
    anon_hex: str,
    start: date,
    cities: list[tuple[str, str]],
    countries: list[str],
    category_names: list[str],
) -> User:
    archetype = pick_archetype(r)
    identifies = r.random() < IDENTIFY_SHARE
    true_traits = make_traits(r, index, start, cities, countries, archetype.age_mean)
    traits = dict(true_traits)
    correction = None
    survey = None
    if identifies:
        if "age" in traits and r.random() < WRONG_AGE_SHARE:
            wrong = traits["age"] + r.choice((-12, -10, 10, 12, 20))
            traits["age"] = min(110, max(13, wrong))
            if traits["age"] != true_traits["age"]:
                correction = {"age": true_traits["age"]}
        elif r.random() < MOVED_SHARE:
            city, country = r.choice(cities)
            if country != traits.get("country"):
                true_traits["country"], true_traits["city"] = country, city
                correction = {"country": country, "city": city}
    favourites = tuple(r.sample(category_names, 2))
    if identifies and r.random() < SURVEY_SHARE:
        survey = {
            "survey_id": r.choice(("nps-2026-q1", "interests-v2")),
            "answers": {"satisfaction": r.randint(1, 5), "interests": list(favourites)},
        }
    device = r.choices(("desktop", "mobile", "tablet"), weights=(0.55, 0.35, 0.10))[0]
    app = device != "desktop" and archetype.name == "feature_power_user" and r.random() < 0.6
    if app:
        library = (
            ("analytics-ios", "4.1.1") if r.random() < 0.5 else ("analytics-android", "4.11.0")
        )
    else:
        library = ("analytics.js", "next-1.64.0")
    ip = f"{r.choice(('192.0.2', '198.51.100'))}.{r.randint(1, 254)}"
    locale = LOCALES.get(true_traits.get("country", ""), "en-US")
    prefix = (
        '{"ip":"' + ip + '","userAgent":' + json.dumps(r.choice(USER_AGENTS[device]))
        + ',"locale":"' + locale + '","device":{"type":"' + device + '"},"library":{"name":"'
        + library[0] + '","version":"' + library[1] + '"}'
    )  # fmt: skip
    personalization, advertising, analytics_draw = r.random() < 0.85, r.random() < 0.6, r.random()
    consent = (personalization, advertising, analytics_draw < 1 - ANALYTICS_REFUSE_SHARE)
    return User(
        index=index,
        archetype=archetype,
        anonymous_id=f"anon-{anon_hex}",
        user_id=f"user_{index:07d}" if identifies else None,
        traits=traits,
        true_traits=true_traits,
        correction=correction,
        survey=survey,
        context_prefix=prefix,
        consent=consent,
        revoke=consent[0] and r.random() < REVOKE_SHARE,
        withdraw_analytics=consent[2]
        and analytics_draw >= 1 - ANALYTICS_REFUSE_SHARE - ANALYTICS_WITHDRAW_SHARE,
        app=app,
        favourite_categories=favourites,
    )
