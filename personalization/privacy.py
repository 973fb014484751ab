"""Pseudonymisation of direct identifiers with a keyed HMAC, and the key's rules.

The key comes from the environment (PERSONALIZATION_HMAC_KEY) and never enters the database.

- Whenever the variable is set, it is the key, on every target and entry point.
- A key shorter than MIN_KEY_BYTES bytes is refused (a short key can be guessed).
- Without a key, only a run that asked for the development key (the `dev` dbt target, which
  `personalization demo` and the tests use explicitly) falls back to the fixed, public
  DEVELOPMENT_KEY with a warning; every other run (the `prod` target, which is the default, Dagster
  runs, `publish --build`) is an error.
- The key's fingerprint (an HMAC of a fixed label, which reveals nothing about the key) is stored
  in the warehouse (privacy.key_fingerprint). A build with another key is refused with a rotation
  message: pseudonyms made with two keys never join. Rotation is a full refresh
  (`dbt build --full-refresh` with the new key), which records the new fingerprint.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os

log = logging.getLogger(__name__)

KEY_ENV_VAR = "PERSONALIZATION_HMAC_KEY"
DEVELOPMENT_KEY = "development-only-key-do-not-use-in-production"
MIN_KEY_BYTES = 32
FINGERPRINT_LABEL = b"personalization key fingerprint v1"


class MissingKeyError(RuntimeError):
    """Raised when a run that did not ask for the development key has no key."""


class WeakKeyError(RuntimeError):
    """Raised when the key is shorter than MIN_KEY_BYTES bytes."""


class KeyMismatchError(RuntimeError):
    """Raised when the warehouse was built with another key (see key rotation)."""


def resolve_key(require_key: bool) -> bytes:
    """The key from the environment; the development key only when not required."""
    key = os.environ.get(KEY_ENV_VAR)
    if key:
        encoded = key.encode()
        if len(encoded) < MIN_KEY_BYTES:
            raise WeakKeyError(
                f"{KEY_ENV_VAR} is {len(encoded)} bytes long: it must be at least {MIN_KEY_BYTES} "
                "bytes (for example `python -c 'import secrets; print(secrets.token_hex(32))'`)."
            )
        return encoded
    if require_key:
        raise MissingKeyError(
            f"{KEY_ENV_VAR} is not set: this run refuses to pseudonymise identifiers with the "
            f"public development key. Set it to a secret of at least {MIN_KEY_BYTES} bytes, or "
            "ask for the development key explicitly (the dev target, `personalization demo`)."
        )
    log.warning(
        "%s is not set: using the public development key (never do this in production)", KEY_ENV_VAR
    )
    return DEVELOPMENT_KEY.encode()


def key_fingerprint(key: bytes) -> str:
    """A short public fingerprint of the key: tells keys apart without revealing them."""
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def normalise_identifier(value: str) -> str:
    """Emails and similar identifiers compare case- and whitespace-insensitively."""
    return value.strip().lower()


class KeyedHash:
    """HMAC-SHA256 under one key (RFC 2104), the key's two padded blocks hashed once.

    `hexdigest(message)` equals `hmac.new(key, label + message, sha256).hexdigest()`; a
    pseudonym then costs two copies of a hash state and two short updates, about a third of
    `hmac.digest`'s time, which sets the key up again on every call. The SQL functions hash every
    distinct identity and every e-mail through it (personalization.duckdb_plugin).
    """

    def __init__(self, key: bytes, label: bytes = b"") -> None:
        block = hashlib.sha256().block_size
        if len(key) > block:
            key = hashlib.sha256(key).digest()
        key = key.ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key) + label)
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


USER_KEY_LABEL = b"user-key:"
USER_KEY_HEX_CHARS = 32


class Pseudonymiser:
    """The project's two pseudonyms under one key (see pseudonymise and user_pseudonym)."""

    def __init__(self, key: bytes) -> None:
        self._plain = KeyedHash(key)
        self._user_key = KeyedHash(key, USER_KEY_LABEL)

    def pseudonymise(self, value: str | None) -> str | None:
        if value is None:
            return None
        normalised = normalise_identifier(value)
        if not normalised:
            return None
        return self._plain.hexdigest(normalised.encode())

    def user_pseudonym(self, raw_id: str | None) -> str | None:
        if raw_id is None or not raw_id.strip():
            return None
        return self._user_key.hexdigest(raw_id.encode())[:USER_KEY_HEX_CHARS]


@functools.lru_cache(maxsize=4)
def _pseudonymiser(key: bytes) -> Pseudonymiser:
    """One Pseudonymiser per key in a process (Spark's workers call the functions per row)."""
    return Pseudonymiser(key)


def pseudonymise(value: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 of the normalised identifier, hex encoded; None and blanks stay None."""
    return _pseudonymiser(key).pseudonymise(value)


def user_pseudonym(raw_id: str | None, key: bytes) -> str | None:
    """The marts' user key of a raw userId or anonymousId: a keyed HMAC-SHA256, 128 bits in hex.

    Ids are compared exactly (no case folding: `U1` and `u1` are two users), and the label
    separates this pseudonym from every other one made with the same key (e-mail hashes, the
    suppression list). None and blanks stay None.
    """
    return _pseudonymiser(key).user_pseudonym(raw_id)
