"""Personas: each cluster's centroid in real units, its size, the features that set it apart
(z-scores of the centroid in the scaled space) and a readable name generated from them."""

from __future__ import annotations

import numpy as np

# (phrase when the cluster is high on the feature, phrase when it is low)
PHRASES: dict[str, tuple[str, str]] = {
    "recency_days": ("lapsed", "recently active"),
    "tenure_days": ("long-standing", "newcomers"),
    "sessions": ("frequent", "occasional"),
    "active_days": ("many active days", "few active days"),
    "events": ("very active", "barely active"),
    "orders": ("frequent buyers", "non-buyers"),
    "revenue": ("high spenders", "low spenders"),
    "orders_per_checkout": ("decisive at checkout", "checkout abandoners"),
    "page_views_per_session": ("page browsers", "few pages"),
    "product_views_per_session": ("product browsers", "few product views"),
    "cart_adds_per_session": ("cart fillers", "rare cart adds"),
    "feature_uses_per_session": ("feature power users", "no feature use"),
    "searches_per_session": ("searchers", "rare searchers"),
    "avg_viewed_price": ("premium taste", "bargain taste"),
    "session_depth": ("long sessions", "short sessions"),
    "events_per_active_day": ("intense days", "light days"),
}
NAME_THRESHOLD = 0.5  # |z| a feature needs to appear in a name
TYPICAL_NAME = "Typical users"


def phrase(feature: str, z: float) -> str:
    high, low = PHRASES.get(feature, (f"high {feature}", f"low {feature}"))
    return high if z > 0 else low


def ranked(features: tuple[str, ...], z: np.ndarray) -> list[tuple[str, float]]:
    """Features by how far the centroid lies from the population mean (|z| descending)."""
    order = sorted(range(len(features)), key=lambda i: (-abs(float(z[i])), i))
    return [(features[i], float(z[i])) for i in order]


def persona_name(features: tuple[str, ...], z: np.ndarray, words: int = 2) -> str:
    """E.g. "High spenders, frequent": the phrases of the `words` most distinguishing features
    with |z| >= NAME_THRESHOLD (distinct phrases only)."""
    parts: list[str] = []
    for feature, value in ranked(features, z):
        if abs(value) < NAME_THRESHOLD or len(parts) == words:
            break
        text = phrase(feature, value)
        if text not in parts:
            parts.append(text)
    if not parts:
        return TYPICAL_NAME
    first, *rest = parts
    return ", ".join([first[0].upper() + first[1:], *rest])


def unique_names(features: tuple[str, ...], zs: np.ndarray, ids: np.ndarray) -> list[str]:
    """One name per cluster, distinct within the run: clashing names take a third phrase, then
    the cluster id."""
    names = [persona_name(features, z) for z in zs]
    for position in range(len(names)):
        clashes = [i for i, n in enumerate(names) if n == names[position]]
        if len(clashes) > 1:
            for i in clashes:
                names[i] = persona_name(features, zs[i], words=3)
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    return [
        f"{n} (cluster {int(i)})" if seen[n] > 1 else n for n, i in zip(names, ids, strict=True)
    ]


def distinguishing_text(features: tuple[str, ...], z: np.ndarray, top: int = 4) -> str:
    """The `top` features by |z|, e.g. "revenue +2.1 sd; sessions -0.8 sd"."""
    return "; ".join(f"{f} {v:+.1f} sd" for f, v in ranked(features, z)[:top])
