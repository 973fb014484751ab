"""The PII guard: nothing that leaves the warehouse carries a raw e-mail, phone number or IP.

One guard for every exit (`personalization publish` and `personalization segments export`). It
scans every column of every relation about to leave, whatever its type: VARCHAR, JSON, BLOB,
lists, structs and maps are turned into text (DuckDB's cast renders nested values and escapes
non-text bytes of a BLOB, so the printable part of an identifier survives), percent-encoding
(`jane%40example.com`, `%2B49...`, `2001%3Adb8...`, twice-encoded `%2540` too) and JSON unicode
escapes of `@` are undone, and each value is matched against:

- e-mail addresses (`local@domain.tld`);
- phone numbers in international form (`+` and 8-15 digits, spaces, dots, dashes, brackets
  allowed) and the North-American `(555) 123-4567` form;
- IPv4 addresses (four dotted octets 0-255) and IPv6 addresses (eight groups, or compressed with
  `::` and at least three groups, such as `2001:db8::1`).

Text-like columns whose name says they hold a raw identifier (email, phone, ip_address,
first_name...) are refused even when empty (a boolean `has_email` is not); a pseudonym suffix
(`_hash`, `_hmac`, `_pseudonym`...) exempts a name.
Numbers, dates, times and booleans are not scanned (an identifier there has no recognisable
shape). Known limits, documented in docs/privacy.md: bare national phone numbers without `+`
(indistinguishable from order ids) and two-group IPv6 forms (`fe80::1`) are not recognised.

A refusal names table, column, kind and count - never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import duckdb

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE_PATTERN = (
    r"(^|[^0-9A-Za-z+])\+[ ]?\(?[1-9]([ ().-]{0,2}[0-9]){7,14}($|[^0-9])"
    r"|(^|[^0-9])\(?[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4}($|[^0-9])"
)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4_PATTERN = rf"(^|[^0-9.]){_OCTET}(\.{_OCTET}){{3}}($|[^0-9.])"
_HEX = r"[0-9A-Fa-f]{1,4}"
IPV6_PATTERN = (
    rf"(^|[^0-9A-Za-z:])("
    rf"({_HEX}:){{7}}{_HEX}"  # full form
    rf"|({_HEX}:){{2,6}}(:{_HEX}){{1,5}}"  # compressed, two or more groups before ::
    rf"|{_HEX}:(:{_HEX}){{2,6}}"  # compressed, one group before ::
    rf"|::(ffff:)?{_HEX}(:{_HEX}){{2,6}}"  # leading ::, three or more groups after it
    rf")($|[^0-9A-Za-z:])"
)
PATTERNS: dict[str, str] = {
    "e-mail addresses": EMAIL_PATTERN,
    "phone numbers": PHONE_PATTERN,
    "IPv4 addresses": IPV4_PATTERN,
    "IPv6 addresses": IPV6_PATTERN,
}

# Raw direct identifiers by column name; a pseudonymised one (keyed HMAC) is not raw.
PII_NAME_TOKENS = frozenset(
    {
        "email",
        "emailaddress",
        "mail",
        "phone",
        "phonenumber",
        "mobile",
        "ip",
        "ipaddress",
        "address",
        "street",
        "firstname",
        "lastname",
        "surname",
        "fullname",
    }
)
PII_NAME_PAIRS = frozenset({("first", "name"), ("last", "name"), ("full", "name")})
PSEUDONYM_SUFFIXES = frozenset({"hash", "hashed", "hmac", "sha256", "pseudonym"})

# types whose values cannot carry an identifier's shape: not scanned
_UNSCANNED_TYPE = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT"
    r"|UHUGEINT|FLOAT|DOUBLE|DECIMAL.*|DATE|TIME.*|TIMESTAMP.*|INTERVAL|UUID)$"
)
# percent-encodings of the characters identifiers are made of, decoded before matching
_DECODINGS = (
    ("%25", "%"),
    ("%40", "@"),
    ("%2B", "+"),
    ("%3A", ":"),
    ("%2E", "."),
    ("%2D", "-"),
    ("%20", " "),
    ("%28", "("),
    ("%29", ")"),
    ("\\u0040", "@"),
    ("\\u002b", "+"),
    ("\\u003a", ":"),
)


class PiiFoundError(RuntimeError):
    """Relations about to leave the warehouse carry raw direct identifiers."""

    def __init__(self, action: str, findings: list[PiiFinding]) -> None:
        self.findings = findings
        super().__init__(
            f"refusing to {action}: raw direct identifiers found in "
            + "; ".join(str(f) for f in findings)
            + ". Pseudonymise or drop these columns in the mart (nothing was written)."
        )


@dataclass(frozen=True)
class PiiFinding:
    table: str
    column: str
    kind: str  # 'column name' or a PATTERNS key
    count: int  # values matching (0 for a name finding)

    def __str__(self) -> str:
        if self.kind == "column name":
            return f"{self.table}.{self.column}: column name suggests a raw identifier"
        return f"{self.table}.{self.column}: {self.count} value(s) look like {self.kind}"


def pii_column_name(name: str) -> bool:
    """Whether a column's name says it holds a raw direct identifier (email, phone, ip, name...)."""
    tokens = [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]
    if not tokens or tokens[-1] in PSEUDONYM_SUFFIXES:
        return False
    if any(token in PII_NAME_TOKENS for token in tokens):
        return True
    return any(pair in PII_NAME_PAIRS for pair in zip(tokens, tokens[1:], strict=False))


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def scanned(column_type: str) -> bool:
    """Whether values of this DuckDB type are scanned (everything but numbers, times, booleans)."""
    return not _UNSCANNED_TYPE.match(column_type.upper())


def text_expression(column: str, column_type: str) -> str:
    """SQL turning a column of any type into decoded text to match identifiers in."""
    value = _quote_identifier(column)
    if column_type.upper() != "VARCHAR":
        value = f"cast({value} as varchar)"
    return decoded_expression(value)


def decoded_expression(value: str) -> str:
    """SQL undoing the percent-encodings and JSON escapes of identifier characters in `value`."""
    for encoded, decoded in _DECODINGS:
        value = f"replace({value}, {_quote_literal(encoded)}, {_quote_literal(decoded)})"
        if encoded.startswith("%") and encoded[1:].upper() != encoded[1:].lower():
            lower = encoded.lower()
            value = f"replace({value}, {_quote_literal(lower)}, {_quote_literal(decoded)})"
    return value


def scan_relation(con: duckdb.DuckDBPyConnection, name: str, select_sql: str) -> list[PiiFinding]:
    """Findings for one relation given as a `select`; one pass over its rows."""
    columns = con.execute(f"describe {select_sql}").fetchall()
    findings = [
        PiiFinding(name, column, "column name", 0)
        for column, column_type, *_ in columns
        if scanned(column_type) and pii_column_name(column)
    ]
    checks: list[tuple[str, str]] = []
    items: list[str] = []
    for column, column_type, *_ in columns:
        if not scanned(column_type):
            continue
        text = text_expression(column, column_type)
        for kind, pattern in PATTERNS.items():
            checks.append((column, kind))
            items.append(
                f"count(*) filter (where regexp_matches({text}, {_quote_literal(pattern)}))"
            )
    if not items:
        return findings
    counts = con.execute(f"select {', '.join(items)} from ({select_sql})").fetchone()
    for (column, kind), count in zip(checks, counts, strict=True):
        if count:
            findings.append(PiiFinding(name, column, kind, int(count)))
    return findings


def scan(con: duckdb.DuckDBPyConnection, relations: Mapping[str, str]) -> list[PiiFinding]:
    """Findings for every relation (name -> `select` of its rows), in the given order."""
    findings: list[PiiFinding] = []
    for name, select_sql in relations.items():
        findings.extend(scan_relation(con, name, select_sql))
    return findings


def ensure_no_pii(
    con: duckdb.DuckDBPyConnection, relations: Mapping[str, str], action: str = "publish"
) -> None:
    """Raise PiiFoundError naming table, column, kind and count if any relation carries PII."""
    findings = scan(con, relations)
    if findings:
        raise PiiFoundError(action, findings)


def ensure_tables_clean(
    con: duckdb.DuckDBPyConnection, schema: str, tables: Iterable[str], action: str
) -> None:
    """ensure_no_pii over whole tables of one schema (the tables an export writes)."""
    relations = {
        f"{schema}.{table}": f"select * from {_quote_identifier(schema)}.{_quote_identifier(table)}"
        for table in tables
    }
    ensure_no_pii(con, relations, action)


# ---------------------------------------------------------------- scrubbing free text
# What a scrubbed identifier is replaced with, per kind (texts that stay readable).
REDACTIONS: dict[str, str] = {
    "e-mail addresses": "[email]",
    "phone numbers": "[phone]",
    "IPv4 addresses": "[ip]",
    "IPv6 addresses": "[ip]",
}
# boundary groups of PATTERNS: `(^|...)` before an identifier and `($|...)` after it
_BOUNDARY_OPENINGS = ("(^|", "($|")


def _boundary_pattern(pattern: str) -> tuple[str, str]:
    """The pattern with every group but its boundary groups made non-capturing, and the RE2
    rewrite that keeps the boundary characters around a redaction placeholder `{}`."""
    out: list[str] = []
    leading: list[int] = []
    trailing: list[int] = []
    group = 0
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(" and not pattern.startswith("(?", i):
            opening = pattern[i : i + 3]
            if opening in _BOUNDARY_OPENINGS:
                group += 1
                (leading if opening == "(^|" else trailing).append(group)
            else:
                out.append("(?:")
                i += 1
                continue
        out.append(char)
        i += 1
    rewrite = "".join(f"\\{g}" for g in leading) + "{}" + "".join(f"\\{g}" for g in trailing)
    return "".join(out), rewrite


def scrub_expression(value: str) -> str:
    """SQL (DuckDB) replacing every e-mail, phone number and IP in the text `value` by a
    placeholder (REDACTIONS), with the guard's own PATTERNS and decodings: a text that carries
    an identifier, plain or percent-encoded, is decoded and redacted; any other text is returned
    unchanged (byte for byte). Each pattern is applied twice, because a boundary character
    consumed by one match cannot start the next (`1.2.3.4,5.6.7.8`).

    Cost: one regular expression (the patterns combined) per text; only a text with an encoding
    marker (`%`, `\\u`) is decoded to be matched again, and only a matching one is rewritten
    (decoding every text was 90% of the cost)."""
    combined = _quote_literal("|".join(f"({pattern})" for pattern in PATTERNS.values()))
    decoded = decoded_expression(value)
    encoded = f"(contains({value}, '%') or contains({value}, {_quote_literal(chr(92) + 'u')}))"
    found = (
        f"(regexp_matches({value}, {combined}) "
        f"or ({encoded} and regexp_matches({decoded}, {combined})))"
    )
    redacted = decoded
    for kind, pattern in PATTERNS.items():
        capturing, rewrite = _boundary_pattern(pattern)
        replacement = _quote_literal(rewrite.format(REDACTIONS[kind]))
        for _ in range(2):
            redacted = (
                f"regexp_replace({redacted}, {_quote_literal(capturing)}, {replacement}, 'g')"
            )
    return f"case when {found} then {redacted} else {value} end"
