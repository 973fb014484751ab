"""The one mapping from the id a caller knows (the raw Segment userId) to the marts' user key."""

from __future__ import annotations

import functools
import os

from personalization.privacy import KEY_ENV_VAR, resolve_key, user_pseudonym


@functools.lru_cache(maxsize=4)
def _key(environment_key: str | None) -> bytes:
    # resolved once per key value (the development key's warning is logged once, not per request)
    del environment_key  # the cache key only: resolve_key reads the environment itself
    return resolve_key(require_key=False)


def mart_key(user_id: str) -> str:
    """The key the published marts use for a raw userId or anonymousId (their
    `canonical_user_id`): its keyed HMAC pseudonym (personalization.privacy.user_pseudonym) with
    the warehouse's key, PERSONALIZATION_HMAC_KEY (the public development key, with a warning,
    when it is not set - the marts of the dev target). This function is the only place the API
    turns a caller's id into a mart key, and the raw id never leaves it.
    """
    key = _key(os.environ.get(KEY_ENV_VAR))
    pseudonym = user_pseudonym(user_id, key)
    return pseudonym if pseudonym is not None else ""
