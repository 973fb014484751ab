"""The key is the key: the environment's key wherever it is set, the public development key only
where asked for, short keys refused, the key's fingerprint kept with the warehouse and another key
refused with a rotation message (rotation: a full refresh)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from conftest import FIXTURE_LANDING, make_warehouse, query

from orchestration.resources import WarehouseResource
from personalization import cli
from personalization.dbt_runner import DbtError, dbt_executable, run_dbt
from personalization.duckdb_plugin import Plugin
from personalization.privacy import (
    DEVELOPMENT_KEY,
    KEY_ENV_VAR,
    MIN_KEY_BYTES,
    MissingKeyError,
    WeakKeyError,
    key_fingerprint,
    pseudonymise,
    resolve_key,
    user_pseudonym,
)
from personalization.tracking_plan import PROJECT_ROOT

KEY_A = "a" * 31 + "-first-test-key"
KEY_B = "b" * 31 + "-second-test-key"
CHEAP = ["run", "--select", "stg_tracking_plan"]


def test_resolve_key_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV_VAR, "x")
    with pytest.raises(WeakKeyError, match="1 bytes long: it must be at least 32"):
        resolve_key(require_key=False)  # short keys are refused even where dev is allowed
    monkeypatch.setenv(KEY_ENV_VAR, "k" * (MIN_KEY_BYTES - 1))
    with pytest.raises(WeakKeyError):
        resolve_key(require_key=True)
    monkeypatch.setenv(KEY_ENV_VAR, "k" * MIN_KEY_BYTES)
    assert resolve_key(require_key=True) == b"k" * MIN_KEY_BYTES
    assert resolve_key(require_key=False) == b"k" * MIN_KEY_BYTES  # set: used on dev too
    monkeypatch.delenv(KEY_ENV_VAR)
    with pytest.raises(MissingKeyError):
        resolve_key(require_key=True)
    assert resolve_key(require_key=False) == DEVELOPMENT_KEY.encode()


def test_fingerprints_tell_keys_apart_without_revealing_them() -> None:
    a, b = key_fingerprint(KEY_A.encode()), key_fingerprint(KEY_B.encode())
    assert a != b and len(a) == 16
    assert KEY_A not in a and a == key_fingerprint(KEY_A.encode())


# identifiers as they arrive: padded, mixed case, non-ASCII, blank, missing
IDENTIFIERS = [" Ana@Example.COM ", "ana@example.com", "user-1", "U1", "u1", "Zoë Ødegård", "李",
               "", "   ", None]  # fmt: skip


def _standard_pseudonym(value: str | None, key: bytes) -> str | None:
    """The pseudonym from the standard library's HMAC, as written before KeyedHash."""
    normalised = value.strip().lower() if value is not None else ""
    return hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest() if normalised else None


def _standard_user_key(value: str | None, key: bytes) -> str | None:
    if value is None or not value.strip():
        return None
    return hmac.new(key, b"user-key:" + value.encode(), hashlib.sha256).hexdigest()[:32]


@pytest.mark.parametrize("length", [32, 63, 64, 65, 200])  # around SHA-256's 64-byte block
def test_pseudonyms_are_the_standard_hmac_for_every_key_length(length: int) -> None:
    key = bytes(range(length))
    for value in IDENTIFIERS:
        assert pseudonymise(value, key) == _standard_pseudonym(value, key), (length, value)
        assert user_pseudonym(value, key) == _standard_user_key(value, key), (length, value)
    assert user_pseudonym("U1", key) != user_pseudonym("u1", key)  # ids compare exactly
    assert pseudonymise(" Ana@Example.COM ", key) == pseudonymise("ana@example.com", key)


def test_the_sql_functions_hash_like_python() -> None:
    """The dbt-duckdb plugin's functions over several of DuckDB's 2,048-row vectors, with missing
    and blank values among them."""
    key = KEY_A.encode()
    values = [IDENTIFIERS[i % len(IDENTIFIERS)] for i in range(5000)]
    values = [f"{v}-{i}" if v and v.strip() else v for i, v in enumerate(values)]  # all distinct
    plugin = Plugin.__new__(Plugin)
    plugin.key = key
    with duckdb.connect() as con:
        plugin.configure_connection(con)
        con.execute("create table ids (position integer, value varchar)")
        con.executemany("insert into ids values (?, ?)", list(enumerate(values)))
        rows = con.execute(
            "select pseudonymise(value), user_pseudonym(value) from ids order by position"
        ).fetchall()
    assert rows == [(_standard_pseudonym(v, key), _standard_user_key(v, key)) for v in values]
    assert sum(row[0] is None for row in rows) == sum(not (v or "").strip() for v in values) > 0


def test_a_one_character_key_is_refused_by_dbt(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    with pytest.raises(DbtError, match="at least 32 bytes"):
        run_dbt(CHEAP, warehouse, target="prod", env={KEY_ENV_VAR: "x"})


def test_the_default_target_needs_a_key(tmp_path: Path) -> None:
    """A bare `dbt run` (no --target) is prod: no silent fallback to the public key."""
    env = {
        k: v for k, v in os.environ.items() if k not in (KEY_ENV_VAR, "PERSONALIZATION_DBT_TARGET")
    }
    env["PERSONALIZATION_DB"] = str(tmp_path / "w.duckdb")
    result = subprocess.run(
        [dbt_executable(), *CHEAP, "--target-path", str(tmp_path / "target")],
        cwd=PROJECT_ROOT,
        env={**env, "DBT_LOG_PATH": str(tmp_path / "logs")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert f"{KEY_ENV_VAR} is not set" in result.stdout + result.stderr


def test_fingerprint_is_stored_and_another_key_needs_a_full_refresh(tmp_path: Path) -> None:
    warehouse = make_warehouse(tmp_path, FIXTURE_LANDING)
    run_dbt(CHEAP, warehouse, target="prod", env={KEY_ENV_VAR: KEY_A})
    fingerprint_sql = "select fingerprint from privacy.key_fingerprint"
    assert query(warehouse, fingerprint_sql) == [(key_fingerprint(KEY_A.encode()),)]
    with pytest.raises(DbtError, match="built with another pseudonymisation key") as raised:
        run_dbt(CHEAP, warehouse, target="prod", env={KEY_ENV_VAR: KEY_B})
    assert "--full-refresh" in str(raised.value)
    assert KEY_A not in str(raised.value) and KEY_B not in str(raised.value)
    assert query(warehouse, fingerprint_sql) == [(key_fingerprint(KEY_A.encode()),)]
    # rotation: a full refresh with the new key records its fingerprint
    run_dbt([*CHEAP, "--full-refresh"], warehouse, target="prod", env={KEY_ENV_VAR: KEY_B})
    assert query(warehouse, fingerprint_sql) == [(key_fingerprint(KEY_B.encode()),)]


def test_dagster_runs_use_prod_unless_the_development_key_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERSONALIZATION_DBT_TARGET", raising=False)
    resource = WarehouseResource(db_path=str(tmp_path / "w.duckdb"))
    assert resource.dbt_target() == "prod"
    with resource.dbt_env():
        assert os.environ["PERSONALIZATION_DBT_TARGET"] == "prod"
    assert "PERSONALIZATION_DBT_TARGET" not in os.environ
    assert WarehouseResource(development_key=True).dbt_target() == "dev"
    monkeypatch.setenv("PERSONALIZATION_DBT_TARGET", "dev")
    assert WarehouseResource().dbt_target() == "dev"


def test_publish_build_without_a_key_refuses_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    monkeypatch.setenv("PERSONALIZATION_LANDING", str(FIXTURE_LANDING))
    out = tmp_path / "published"
    with caplog.at_level(logging.ERROR):
        code = cli.main(
            ["publish", "--build", "--db", str(tmp_path / "w.duckdb"), "--out", str(out)]
        )
    assert code == 2
    assert f"{KEY_ENV_VAR} is not set" in caplog.text
    assert not (out / "current").exists()
