"""Pseudonymisation of direct identifiers with a keyed HMAC.

The key comes from the environment (PERSONALIZATION_HMAC_KEY) and never enters the database.
Development runs fall back to a fixed, public key and log a warning; a production run without a key
is an error, so real identifiers are never hashed with a key anyone can read in this repository.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

log = logging.getLogger(__name__)

KEY_ENV_VAR = "PERSONALIZATION_HMAC_KEY"
DEVELOPMENT_KEY = "development-only-key-do-not-use-in-production"


class MissingKeyError(RuntimeError):
    """Raised when a production run has no pseudonymisation key."""


def resolve_key(require_key: bool) -> bytes:
    key = os.environ.get(KEY_ENV_VAR)
    if key:
        return key.encode()
    if require_key:
        raise MissingKeyError(
            f"{KEY_ENV_VAR} is not set: a production target refuses to pseudonymise identifiers "
            "with the public development key. Set it to a secret of at least 32 characters."
        )
    log.warning(
        "%s is not set: using the public development key (never do this in production)", KEY_ENV_VAR
    )
    return DEVELOPMENT_KEY.encode()


def normalise_identifier(value: str) -> str:
    """Emails and similar identifiers compare case- and whitespace-insensitively."""
    return value.strip().lower()


def pseudonymise(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised identifier, hex encoded; None and blanks stay None."""
    if value is None:
        return None
    normalised = normalise_identifier(value)
    if not normalised:
        return None
    return hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()
