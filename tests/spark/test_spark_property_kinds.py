"""Property kinds on Spark equal DuckDB's on 20,000 mutated values (make test-spark; marked
`spark`). Staging types every declared property from one parse per line (json_document,
json_type_many) and compares the engine's native type names with the plan's kinds mapped at
compile time (json_native_kinds). On Spark the native name is schema_of_variant's leading word
(spark_variant_native_kind); this checks that word, mapped by spark__json_native_kind_names, gives
DuckDB's kind (json_type mapped by its own table) for every value but the one documented
difference: an integer in 2^63..2^64-1 is DuckDB's UBIGINT ('integer') and a DECIMAL in Spark's
VARIANT ('number', docs/scale-out.md).

The SQL and the name tables are the macros' own (macros/json.sql rendered with Jinja, dbt's
`return` supplied), not copies. One JVM, no dbt.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pytest

from personalization.tracking_plan import PROJECT_ROOT

pytestmark = pytest.mark.spark

SEED = 17
VALUES = 20_000
ATOMS = [
    "0", "-0", "1", "-1", "127", "128", "-129", "32767", "32768", "2147483647", "2147483648",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "1.0", "-0.0", "9.5", "1e3", "1E-2",
    "-2.5e+10", "1e308", "1e400", "0.1", "123456789012345678901234567890", "true", "false",
    "null", '""', '"9.5"', '"-5"', '"true"', '"null"', '"\\u00e9\\n"', '"a\\"b"', "[]", "[1, 2]",
    "[null]", "{}", '{"amount": 1}', '{"a": {"b": [1, {"c": null}]}}', '[{"x": 1}]',
]  # fmt: skip


class _Returned(Exception):  # noqa: N818 - dbt's `return` is an exception carrying the value
    def __init__(self, value: Any) -> None:
        self.value = value


def _raise_return(value: Any) -> None:
    raise _Returned(value)


def _json_macros() -> Any:
    """macros/json.sql as a Jinja module (the macros that need no adapter can be called)."""
    environment = jinja2.Environment(extensions=["jinja2.ext.do"])
    environment.globals["return"] = _raise_return
    return environment.from_string((PROJECT_ROOT / "macros" / "json.sql").read_text()).module


def _returned(macro: Any, *args: Any) -> Any:
    """The value a macro gives with dbt's `{{ return(...) }}`."""
    try:
        macro(*args)
    except _Returned as returned:
        return returned.value
    raise AssertionError(f"{macro} returned no value")


def _mutated_value(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.35:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))).lstrip("0")
        value = rng.choice(["", "-"]) + (digits or "0")
        if rng.random() < 0.4:
            value += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        if rng.random() < 0.2:
            value += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
        return value
    if draw < 0.5:
        return json.dumps("".join(rng.choice('ab9.-e"\\ é\n') for _ in range(rng.randint(0, 8))))
    if draw < 0.7:
        return rng.choice(ATOMS)
    if draw < 0.85:
        return "[" + ", ".join(rng.choice(ATOMS) for _ in range(rng.randint(0, 3))) + "]"
    return "{" + ", ".join(f'"k{i}": {rng.choice(ATOMS)}' for i in range(rng.randint(0, 3))) + "}"


def _kind_of(names: dict[str, list[str]], native: str | None) -> str | None:
    """The plan's kind of an engine's native type name (None: the property is absent)."""
    kinds = [kind for kind, natives in names.items() if native in natives]
    assert native is None or len(kinds) == 1, f"native type {native!r} maps to {kinds}"
    return kinds[0] if kinds else None


def test_property_kinds_on_spark_equal_duckdb_on_mutated_values(tmp_path: Path) -> None:
    from personalization.spark.session import spark_session

    rng = random.Random(SEED)
    documents = [f'{{"price": {_mutated_value(rng)}, "other": 1}}' for _ in range(VALUES)]
    documents += ['{"other": 1}', "{}"]  # absent: no kind on either engine
    macros = _json_macros()
    duckdb_names = _returned(macros.default__json_native_kind_names)
    spark_names = _returned(macros.spark__json_native_kind_names)
    native_word = str(
        macros.spark_variant_native_kind("variant_get(try_parse_json(doc), '$.price')")
    ).strip()

    with duckdb.connect() as con:
        con.execute("create table docs (i integer, doc varchar)")
        con.executemany("insert into docs values (?, ?)", list(enumerate(documents)))
        duckdb_native = dict(
            con.execute("select i, json_type(doc, '$.price') from docs").fetchall()
        )

    spark = spark_session(tmp_path / "warehouse")
    try:
        frame = spark.createDataFrame(list(enumerate(documents)), "i int, doc string")
        frame.createOrReplaceTempView("docs")
        spark_native = {
            row.i: row.native
            for row in spark.sql(f"select i, {native_word} as native from docs").collect()
        }
    finally:
        spark.stop()

    differences: dict[tuple[Any, ...], int] = {}
    for i, document in enumerate(documents):
        duckdb_kind = _kind_of(duckdb_names, duckdb_native[i])
        spark_kind = _kind_of(spark_names, spark_native[i] or None)
        if duckdb_kind != spark_kind:
            value = json.loads(document).get("price")
            documented = (
                duckdb_kind == "integer"
                and spark_kind == "number"
                and isinstance(value, int)
                and 2**63 <= value < 2**64
            )
            key = (duckdb_kind, spark_kind, documented)
            differences[key] = differences.get(key, 0) + 1
    undocumented = {key: n for key, n in differences.items() if not key[2]}
    assert not undocumented, f"kinds differ between DuckDB and Spark: {undocumented}"
    # the mutations reach the documented boundary (a check that sees none proves nothing there)
    assert differences.get(("integer", "number", True), 0) > 0
    kinds_seen = {_kind_of(spark_names, native or None) for native in spark_native.values()}
    assert kinds_seen == {"string", "integer", "number", "boolean", "array", "object", "null", None}
