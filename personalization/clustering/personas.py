"""Personas: each cluster's centroid in real units, its size, the features that set it apart
(z-scores of the centroid in the scaled space) and a readable name generated from them.

Every phrase of a name is a claim that holds for the cluster's members against the clustered
population: its centroid lies at least NAME_THRESHOLD standard deviations away on the claimed
side AND the members' median (real units) is strictly on that side of the population median.
Phrases that state an absolute fact ("non-buyers", "repeat buyers", "no feature use",
"checkout abandoners") are used only when the members' median satisfies it; otherwise the
relative phrase ("fewer orders") is used. A phrase never repeats a word already in the name.
A cluster without a distinctive trait is named plainly: "Typical users".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HIGH, LOW = "high", "low"

# (relative phrase when the cluster is high on the feature, ... when low)
PHRASES: dict[str, tuple[str, str]] = {
    "recency_days": ("lapsed", "recently active"),
    "tenure_days": ("long-standing", "newcomers"),
    "sessions": ("frequent visitors", "occasional visitors"),
    "active_days": ("many active days", "few active days"),
    "events": ("very active", "barely active"),
    "orders": ("more orders", "fewer orders"),
    "revenue": ("high spenders", "low spenders"),
    "average_order_value": ("big-ticket orders", "small-ticket orders"),
    "basket_units_per_order": ("large baskets", "small baskets"),
    "orders_per_checkout": ("decisive at checkout", "lower checkout completion"),
    "page_and_screen_views_per_session": ("page browsers", "few pages"),
    "product_views_per_session": ("product browsers", "few product views"),
    "cart_adds_per_session": ("cart fillers", "rare cart adds"),
    "feature_uses_per_session": ("feature power users", "less feature use"),
    "searches_per_session": ("searchers", "rare searchers"),
    "avg_viewed_price": ("premium taste", "bargain taste"),
    "session_depth": ("long sessions", "short sessions"),
    "events_per_active_day": ("intense days", "light days"),
}
# Absolute phrases, preferred over the relative one when the members' median satisfies them.
ABSOLUTE: dict[tuple[str, str], tuple[tuple[str, Callable[[float], bool]], ...]] = {
    ("orders", HIGH): (("repeat buyers", lambda median: median >= 2),),
    ("orders", LOW): (("non-buyers", lambda median: median == 0),),
    ("orders_per_checkout", LOW): (("checkout abandoners", lambda median: median < 0.5),),
    ("feature_uses_per_session", LOW): (("no feature use", lambda median: median == 0),),
}
NAME_THRESHOLD = 0.5  # |z| a feature needs to appear in a name
TYPICAL_NAME = "Typical users"


def phrase(feature: str, z: float, member_median: float | None = None) -> str:
    """The phrase for a cluster high (z > 0) or low on `feature`: an absolute phrase when the
    members' median satisfies it, else the relative one."""
    direction = HIGH if z > 0 else LOW
    if member_median is not None and not np.isnan(member_median):
        for text, holds in ABSOLUTE.get((feature, direction), ()):
            if holds(float(member_median)):
                return text
    high, low = PHRASES.get(feature, (f"high {feature}", f"low {feature}"))
    return high if direction == HIGH else low


def claim_of(text: str) -> tuple[str, str, Callable[[float], bool] | None]:
    """The (feature, direction, absolute check or None) a phrase claims; KeyError if unknown."""
    for (feature, direction), options in ABSOLUTE.items():
        for option, holds in options:
            if option == text:
                return feature, direction, holds
    for feature, (high, low) in PHRASES.items():
        if text in (high, low):
            return feature, HIGH if text == high else LOW, None
    for prefix, direction in (("high ", HIGH), ("low ", LOW)):
        if text.startswith(prefix):
            return text[len(prefix) :], direction, None
    raise KeyError(f"unknown persona phrase {text!r}")


def ranked(features: tuple[str, ...], z: np.ndarray) -> list[tuple[str, float]]:
    """Features by how far the centroid lies from the population mean (|z| descending)."""
    order = sorted(range(len(features)), key=lambda i: (-abs(float(z[i])), i))
    return [(features[i], float(z[i])) for i in order]


def _median_side_holds(z: float, member: float | None, population: float | None) -> bool:
    if member is None or population is None:
        return True  # no real values given (scaled-space use only)
    if np.isnan(member) or np.isnan(population):
        return False
    return member > population if z > 0 else member < population


def persona_name(
    features: tuple[str, ...],
    z: np.ndarray,
    words: int = 2,
    member_medians: np.ndarray | None = None,
    population_medians: np.ndarray | None = None,
) -> str:
    """E.g. "High spenders, frequent visitors": the phrases of the `words` most distinguishing
    features whose claims hold (see the module docstring), no word repeated."""
    position = {f: i for i, f in enumerate(features)}
    parts: list[str] = []
    used_words: set[str] = set()
    for feature, value in ranked(features, z):
        if abs(value) < NAME_THRESHOLD or len(parts) == words:
            break
        i = position[feature]
        member = None if member_medians is None else float(member_medians[i])
        population = None if population_medians is None else float(population_medians[i])
        if not _median_side_holds(value, member, population):
            continue
        text = phrase(feature, value, member)
        text_words = set(text.lower().split())
        if text_words & used_words:
            continue
        parts.append(text)
        used_words |= text_words
    if not parts:
        return TYPICAL_NAME
    first, *rest = parts
    return ", ".join([first[0].upper() + first[1:], *rest])


def unique_names(
    features: tuple[str, ...],
    zs: np.ndarray,
    ids: np.ndarray,
    member_medians: np.ndarray | None = None,
    population_medians: np.ndarray | None = None,
) -> list[str]:
    """One name per cluster, distinct within the run: clashing names take a third phrase, then
    the cluster id."""

    def name(i: int, words: int) -> str:
        medians = None if member_medians is None else member_medians[i]
        return persona_name(features, zs[i], words, medians, population_medians)

    names = [name(i, 2) for i in range(len(zs))]
    for position in range(len(names)):
        clashes = [i for i, n in enumerate(names) if n == names[position]]
        if len(clashes) > 1:
            for i in clashes:
                names[i] = name(i, 3)
    seen: dict[str, int] = {}
    for text in names:
        seen[text] = seen.get(text, 0) + 1
    return [
        f"{n} (cluster {int(i)})" if seen[n] > 1 else n for n, i in zip(names, ids, strict=True)
    ]


def name_phrases(name: str) -> list[str]:
    """The phrases of a generated name (lower case, without a "(cluster N)" suffix)."""
    base = name.split(" (cluster ")[0]
    if base == TYPICAL_NAME:
        return []
    return [part.strip().lower() for part in base.split(",")]


def distinguishing_text(features: tuple[str, ...], z: np.ndarray, top: int = 4) -> str:
    """The `top` features by |z|, e.g. "revenue +2.1 sd; sessions -0.8 sd"."""
    return "; ".join(f"{f} {v:+.1f} sd" for f, v in ranked(features, z)[:top])
