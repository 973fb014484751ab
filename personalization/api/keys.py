"""The one mapping from the id a caller knows (the raw Segment userId) to the marts' user key."""

from __future__ import annotations


def mart_key(user_id: str) -> str:
    """The key the published marts use for a raw userId (their `canonical_user_id`).

    Today the marts key a user by the raw userId itself. When the marts switch to keyed HMAC
    pseudonyms, this becomes `pseudonymise(user_id, resolve_key(...))` (personalization.privacy):
    this function is the only place the API turns a caller's id into a mart key, and the raw id
    never leaves it.
    """
    return user_id
