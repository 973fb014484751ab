"""Forget a person: erasure with suppression, and the retention purge (see docs/privacy.md).

`personalization forget --user-id ID` (or `--anonymous-id ID`, both repeatable):

1. Identities: the given ids and every identity stitched to them - anonymous ids (and alias
   previousIds) linked to their userIds, userIds of their anonymous ids - read from every judged
   line, valid or quarantined, until nothing new appears. An anonymous id also linked to another
   user (a shared device) is not followed to that user and is not erased.
2. Lines: every landing line of those identities (by userId / anonymousId / previousId, or, for
   lines that are not valid JSON, the JSON-quoted id in the text).
3. Landing files are rewritten without those lines (gzip kept; a file left empty is deleted) and
   the load manifest (the file_size / file_modified_at / file_hash columns of
   raw.raw_landing_events) is updated to the new files, with the remaining lines renumbered in
   every table keyed by (file_path, line_number): the next load sees nothing changed, and a full
   refresh rebuilds exactly the same rows.
4. Warehouse: every base table of every schema (raw, staging, intermediate, marts, membership
   history, activation tables; not the privacy schema and the seeds) loses the rows of those
   lines and every row where an identity column (user_id, canonical_user_id, person_id,
   id, email_hash..., text or list of texts) holds one of the ids, their keyed
   pseudonyms or their e-mail pseudonyms.
5. Published versions: every Parquet file of every kept version is rewritten without those rows
   (atomically, file by file), and the version's row counts are updated.
6. Suppression: pseudonymise('suppressed:' || id) of each identity goes on
   privacy.privacy_suppression_list, so a later event for them is quarantined at staging with
   reason `suppressed` (counted in conservation).
7. The request is logged in privacy.privacy_requests (rpt_privacy_requests after a build):
   request id, time, rows removed per layer; no PII.

Run `dbt build` afterwards (the Dagster erasure job does) so that tables computed from many
people (counts, overlaps, audits) are recomputed without them.

`personalization forget --retention-days N` purges the lines of events older than N days before
as_of (invalid lines: loaded before it) the same way (steps 2-5 and 7).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import yaml

from personalization.privacy import pseudonymise, resolve_key, user_pseudonym
from personalization.publish import VERSION_FILE, VERSIONS, quote_literal
from personalization.raw_load import file_hash
from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)

RAW_TABLE = "raw.raw_landing_events"
CHECKED_TABLE = "staging.stg_landing__events_checked"
SUPPRESSION_TABLE = "privacy.privacy_suppression_list"
REQUESTS_TABLE = "privacy.privacy_requests"
# schemas never touched by an erasure: the erasure's own records and the seeds (reference data)
KEPT_SCHEMAS = ("privacy", "reference", "information_schema", "pg_catalog")
PENDING_SUFFIX = ".erasure-pending"
LAYERS = ("raw", "staging", "intermediate", "marts")
SUPPRESSION_PREFIX = "suppressed:"
# columns that hold a person's key (raw id, pseudonym, e-mail pseudonym): rows with an erased
# value there are deleted. Other text columns are left alone, so a short id ("1") cannot delete
# a segment or an order that happens to share its text.
IDENTITY_TOKENS = frozenset(
    {"user", "anonymous", "person", "people", "identity", "canonical", "previous", "email",
     "pseudonym", "member"}
)  # fmt: skip


class ErasureError(RuntimeError):
    """The erasure could not be carried out; the message says why."""


@dataclass
class ErasureReport:
    """What a request removed; written to privacy.privacy_requests (no PII)."""

    request_id: str
    request_type: str
    requested_at: datetime
    identities: int = 0
    landing_lines_removed: int = 0
    landing_files_rewritten: int = 0
    rows_removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    published_rows_removed: int = 0
    published_versions_rewritten: int = 0


def suppression_hash(identity: str, key: bytes) -> str | None:
    """The suppression list's pseudonym of an id (domain-separated from every other pseudonym)."""
    return pseudonymise(SUPPRESSION_PREFIX + identity, key)


def default_retention_days() -> int | None:
    """The `retention_days` var of dbt_project.yml (null: keep raw events forever)."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())
    value = project.get("vars", {}).get("retention_days")
    return None if value is None else int(value)


def identity_column(name: str) -> bool:
    """Whether a column holds a person's key (user_id, canonical_user_id, person_id, id...)."""
    tokens = set(name.lower().split("_"))
    return name.lower() == "id" or bool(tokens & IDENTITY_TOKENS)


def _value_conditions(columns: list[tuple[str, str]]) -> list[str]:
    """SQL conditions: an identity column (text, or list of texts) holds an erased value."""
    conditions = []
    for name, column_type in columns:
        if not identity_column(name):
            continue
        if column_type == "VARCHAR":
            conditions.append(f"{_quote(name)} in (select value from erase_values)")
        elif column_type == "VARCHAR[]":
            conditions.append(
                f"coalesce(list_has_any({_quote(name)}, "
                "(select list(value) from erase_values)), false)"
            )
    return conditions


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- identities and lines


def stitched_identities(
    con: duckdb.DuckDBPyConnection, user_ids: set[str], anonymous_ids: set[str]
) -> tuple[set[str], set[str]]:
    """(userIds, anonymous ids to erase): the given ids and everything stitched to them."""
    links = con.execute(
        f"""
        select distinct anonymous_id, user_id from (
            select anonymous_id, user_id from {CHECKED_TABLE}
            union all
            select previous_id, user_id from {CHECKED_TABLE}
        )
        where anonymous_id is not null and user_id is not null and anonymous_id != user_id
        """
    ).fetchall()
    users_of: dict[str, set[str]] = defaultdict(set)
    anons_of: dict[str, set[str]] = defaultdict(set)
    for anonymous_id, user_id in links:
        users_of[anonymous_id].add(user_id)
        anons_of[user_id].add(anonymous_id)
    users, anons = set(user_ids), set(anonymous_ids)
    while True:
        new_anons = anons | {a for u in users for a in anons_of[u]}
        new_users = users | {u for a in new_anons if len(users_of[a]) == 1 for u in users_of[a]}
        if (new_users, new_anons) == (users, anons):
            break
        users, anons = new_users, new_anons
    # an anonymous id shared with someone else stays: it is not only this person's
    exclusive = {a for a in anons if users_of[a] <= users}
    return users, exclusive


def _register_ids(con: duckdb.DuckDBPyConnection, name: str, values: set[str]) -> None:
    con.execute(f"create or replace temp table {name} (value varchar)")
    if values:
        con.executemany(f"insert into {name} values (?)", [[v] for v in sorted(values)])


def select_person_lines(con: duckdb.DuckDBPyConnection) -> None:
    """temp.erase_lines (file_path, line_number): the lines of erase_users / erase_anons."""
    con.execute(
        f"""
        create or replace temp table erase_lines as
        select file_path, line_number from {CHECKED_TABLE}
        where user_id in (select value from erase_users)
            or (
                (anonymous_id in (select value from erase_anons)
                    or previous_id in (select value from erase_anons))
                and (user_id is null or user_id in (select value from erase_users))
            )
        union
        select raw.file_path, raw.line_number
        from {RAW_TABLE} as raw
        inner join (
            select value from erase_users union all select value from erase_anons
        ) as ids
            on contains(raw.raw_line, '"' || ids.value || '"')
        left join {CHECKED_TABLE} as checked
            on raw.file_path = checked.file_path and raw.line_number = checked.line_number
        where checked.event_type is null
        """
    )


def select_expired_lines(
    con: duckdb.DuckDBPyConnection, retention_days: int, as_of: datetime
) -> None:
    """temp.erase_lines: lines of events older than retention_days before as_of."""
    cutoff = (as_of - timedelta(days=retention_days)).replace(tzinfo=None)
    con.execute(
        f"""
        create or replace temp table erase_lines as
        select raw.file_path, raw.line_number
        from {RAW_TABLE} as raw
        left join {CHECKED_TABLE} as checked
            on raw.file_path = checked.file_path and raw.line_number = checked.line_number
        where coalesce(checked.event_at, raw.loaded_at) < $cutoff
        """,
        {"cutoff": cutoff},
    )


# ---------------------------------------------------------------- landing files


def _read_raw_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.readlines()  # split at \n only, as raw_load.read_lines does


def _write_pending(path: Path, lines: list[bytes]) -> Path:
    pending = path.with_name(path.name + PENDING_SUFFIX)
    if path.suffix == ".gz":
        # no name and no time in the header: the same lines always give the same bytes
        with (
            open(pending, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as out,
        ):
            out.writelines(lines)
    else:
        pending.write_bytes(b"".join(lines))
    return pending


def finish_pending(landing: Path) -> int:
    """Complete rewrites a crash left behind (their manifest rows are already committed)."""
    done = 0
    for pending in sorted(landing.rglob(f"*{PENDING_SUFFIX}")):
        os.replace(pending, pending.with_name(pending.name[: -len(PENDING_SUFFIX)]))
        done += 1
    return done


@dataclass(frozen=True)
class Rewrite:
    file_path: str
    target: Path
    pending: Path | None  # None: every line removed, the file is deleted
    size: int = 0
    modified_at: datetime | None = None
    content_hash: str = ""


def prepare_rewrites(con: duckdb.DuckDBPyConnection, landing: Path) -> tuple[list[Rewrite], int]:
    """Write each affected landing file without its erased lines to a pending file."""
    by_file: dict[str, set[int]] = defaultdict(set)
    for file_path, line_number in con.execute(
        "select file_path, line_number from erase_lines"
    ).fetchall():
        by_file[file_path].add(line_number)
    rewrites: list[Rewrite] = []
    removed = 0
    for file_path, numbers in sorted(by_file.items()):
        target = landing / file_path
        if not target.is_file():
            log.warning("landing file %s is gone: only the warehouse rows are removed", file_path)
            continue
        lines = _read_raw_lines(target)
        kept = [line for number, line in enumerate(lines, 1) if number not in numbers]
        removed += len(lines) - len(kept)
        if not kept:
            rewrites.append(Rewrite(file_path, target, None))
            continue
        pending = _write_pending(target, kept)
        stat = pending.stat()
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).replace(tzinfo=None)
        rewrites.append(
            Rewrite(file_path, target, pending, stat.st_size, modified, file_hash(pending))
        )
    return rewrites, removed


def update_manifest(con: duckdb.DuckDBPyConnection, rewrites: list[Rewrite]) -> None:
    """The load manifest of rewritten files: new size, time and hash (loading goes on)."""
    for rewrite in rewrites:
        if rewrite.pending is None:
            continue
        con.execute(
            f"update {RAW_TABLE} set file_size = ?, file_modified_at = ?, file_hash = ? "
            "where file_path = ?",
            [rewrite.size, rewrite.modified_at, rewrite.content_hash, rewrite.file_path],
        )


def apply_rewrites(rewrites: list[Rewrite]) -> None:
    for rewrite in rewrites:
        if rewrite.pending is None:
            rewrite.target.unlink(missing_ok=True)
        else:
            os.replace(rewrite.pending, rewrite.target)


# ---------------------------------------------------------------- warehouse tables


def base_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(schema, table, [(column, type)]) of every base table an erasure may touch."""
    rows = con.execute(
        """
        select t.schema_name, t.table_name, list(c.column_name order by c.column_index),
            list(c.data_type order by c.column_index)
        from duckdb_tables() as t
        inner join duckdb_columns() as c
            on t.table_oid = c.table_oid
        where t.database_name = current_database() and not t.temporary
            and not list_contains($kept, t.schema_name)
        group by all
        order by 1, 2
        """,
        {"kept": list(KEPT_SCHEMAS)},
    ).fetchall()
    return [(s, t, list(zip(names, types, strict=True))) for s, t, names, types in rows]


def _layer(schema: str) -> str:
    return schema if schema in LAYERS else "marts"


def delete_rows(con: duckdb.DuckDBPyConnection, report: ErasureReport, by_value: bool) -> None:
    """Delete the erased lines' rows, and (by_value) rows holding an erased value, everywhere."""
    for schema, table, columns in base_tables(con):
        names = {name for name, _ in columns}
        conditions = []
        if {"file_path", "line_number"} <= names:
            conditions.append(
                "(file_path, line_number) in (select (file_path, line_number) from erase_lines)"
            )
        if by_value:
            conditions += _value_conditions(columns)
        if not conditions:
            continue
        relation = f"{_quote(schema)}.{_quote(table)}"
        (count,) = con.execute(f"delete from {relation} where {' or '.join(conditions)}").fetchone()
        if count:
            log.info("removed %d row(s) from %s.%s", count, schema, table)
            report.rows_removed[_layer(schema)] += int(count)


def renumber_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Renumber the remaining lines of rewritten files as they now stand in the files."""
    con.execute(
        f"""
        create or replace temp table line_renumbering as
        select file_path, line_number,
            row_number() over (partition by file_path order by line_number) as new_number
        from {RAW_TABLE}
        where file_path in (select distinct file_path from erase_lines)
        """
    )
    for schema, table, columns in base_tables(con):
        if {"file_path", "line_number"} <= {name for name, _ in columns}:
            con.execute(
                f"""
                update {_quote(schema)}.{_quote(table)} as t
                set line_number = m.new_number
                from line_renumbering as m
                where t.file_path = m.file_path and t.line_number = m.line_number
                    and m.new_number != m.line_number
                """
            )


# ---------------------------------------------------------------- published versions


def scrub_published(
    con: duckdb.DuckDBPyConnection, publish_root: Path, report: ErasureReport, by_value: bool
) -> None:
    """Rewrite every Parquet file of every kept version without the erased rows."""
    versions = publish_root / VERSIONS
    if not by_value or not versions.is_dir():
        return
    for version_dir in sorted(p for p in versions.iterdir() if p.is_dir()):
        changed = False
        version_file = version_dir / VERSION_FILE
        info = json.loads(version_file.read_text()) if version_file.is_file() else None
        for parquet in sorted(version_dir.rglob("*.parquet")):
            source = f"read_parquet({quote_literal(str(parquet))})"
            columns = con.execute(f"describe select * from {source}").fetchall()
            conditions = _value_conditions([(name, ctype) for name, ctype, *_ in columns])
            if not conditions:
                continue
            where = " or ".join(conditions)
            (hits,) = con.execute(f"select count(*) from {source} where {where}").fetchone()
            if not hits:
                continue
            temporary = parquet.with_name(parquet.name + PENDING_SUFFIX)
            con.execute(
                f"copy (select * from {source} where not coalesce({where}, false)) "
                f"to {quote_literal(str(temporary))} (format parquet, compression zstd)"
            )
            os.replace(temporary, parquet)
            report.published_rows_removed += int(hits)
            changed = True
            if info is not None:
                relpath = parquet.relative_to(version_dir).as_posix()
                for name, table in info.get("tables", {}).items():
                    if table.get("file") == relpath:
                        table["rows"] -= int(hits)
                        info["row_counts"][name] = table["rows"]
        if changed:
            report.published_versions_rewritten += 1
            if info is not None:
                version_file.write_text(json.dumps(info, indent=2) + "\n")


# ---------------------------------------------------------------- the requests


def _record(con: duckdb.DuckDBPyConnection, report: ErasureReport, completed_at: datetime) -> None:
    con.execute(
        f"insert into {REQUESTS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.request_id,
            report.request_type,
            report.requested_at.replace(tzinfo=None),
            completed_at.replace(tzinfo=None),
            report.identities,
            report.landing_lines_removed,
            report.landing_files_rewritten,
            report.rows_removed["raw"],
            report.rows_removed["staging"],
            report.rows_removed["intermediate"],
            report.rows_removed["marts"],
            report.published_rows_removed,
            report.published_versions_rewritten,
        ],
    )


def _require_tables(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    present = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database()"
        ).fetchall()
    }
    missing = [
        t for t in (RAW_TABLE, CHECKED_TABLE, SUPPRESSION_TABLE, REQUESTS_TABLE) if t not in present
    ]
    if missing:
        raise ErasureError(f"{db_path} has no {', '.join(missing)}: run `dbt build` first")


# prepare(con) selects temp.erase_lines and returns (values to delete everywhere or None for a
# retention purge, suppression hashes, identities)
Prepare = Callable[[duckdb.DuckDBPyConnection], tuple[set[str] | None, set[str], int]]


def _carry_out(
    db_path: Path,
    landing: Path,
    publish_roots: list[Path],
    report: ErasureReport,
    prepare: Prepare,
) -> ErasureReport:
    """Shared steps of an erasure and a retention purge."""
    if not Path(db_path).is_file():
        raise ErasureError(f"no warehouse at {db_path}: run `dbt build` first")
    finish_pending(landing)
    with duckdb.connect(str(db_path)) as con:
        _require_tables(con, db_path)
        values, suppress, report.identities = prepare(con)
        rewrites, removed_lines = prepare_rewrites(con, landing)
        report.landing_lines_removed = removed_lines
        report.landing_files_rewritten = len(rewrites)
        _register_ids(con, "erase_values", values or set())
        con.execute("begin transaction")
        try:
            delete_rows(con, report, by_value=values is not None)
            renumber_lines(con)
            update_manifest(con, rewrites)
            _register_ids(con, "suppress_values", suppress)
            con.execute(
                f"insert into {SUPPRESSION_TABLE} "
                "select value, $request_id, $at from suppress_values "
                f"where value not in (select identity_hash from {SUPPRESSION_TABLE})",
                {"request_id": report.request_id, "at": report.requested_at.replace(tzinfo=None)},
            )
            _record(con, report, datetime.now(UTC))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            for rewrite in rewrites:
                if rewrite.pending is not None:
                    rewrite.pending.unlink(missing_ok=True)
            raise
        # committed: the manifest describes the rewritten files, so put them in place
        apply_rewrites(rewrites)
        for root in publish_roots:
            scrub_published(con, root, report, by_value=values is not None)
        con.execute(
            f"update {REQUESTS_TABLE} set published_rows_removed = ?, "
            "published_versions_rewritten = ? where request_id = ?",
            [report.published_rows_removed, report.published_versions_rewritten, report.request_id],
        )
    log.info(
        "%s %s: %d identities, %d landing line(s) in %d file(s), warehouse rows %s, "
        "published rows %d in %d version(s)",
        report.request_type,
        report.request_id,
        report.identities,
        report.landing_lines_removed,
        report.landing_files_rewritten,
        dict(report.rows_removed),
        report.published_rows_removed,
        report.published_versions_rewritten,
    )
    return report


def forget(
    db_path: Path,
    landing: Path,
    key: bytes,
    user_ids: Iterable[str] = (),
    anonymous_ids: Iterable[str] = (),
    publish_roots: list[Path] | None = None,
    now: datetime | None = None,
) -> ErasureReport:
    """Erase a person (and every identity stitched to them) everywhere; suppress them."""
    given_users, given_anons = set(user_ids), set(anonymous_ids)
    if not given_users and not given_anons:
        raise ErasureError("name the person: --user-id ID and/or --anonymous-id ID")

    def prepare(con: duckdb.DuckDBPyConnection) -> tuple[set[str] | None, set[str], int]:
        users, anons = stitched_identities(con, given_users, given_anons)
        # the given ids count even when never seen: they are suppressed all the same
        users |= given_users
        anons |= given_anons
        _register_ids(con, "erase_users", users)
        _register_ids(con, "erase_anons", anons)
        select_person_lines(con)
        # the e-mail pseudonyms of their lines go too (people.email_hash and the like)
        email_hashes = con.execute(
            f"select distinct email_hash from {CHECKED_TABLE} "
            "where (file_path, line_number) in (select (file_path, line_number) from erase_lines) "
            "and email_hash is not null"
        ).fetchall()
        identities = users | anons
        values = set(identities) | {h for (h,) in email_hashes}
        values |= {p for i in identities if (p := pseudonymise(i, key))}
        # and their user keys: the marts' canonical_user_id / person_id / id
        values |= {p for i in identities if (p := user_pseudonym(i, key))}
        suppress = {h for i in identities if (h := suppression_hash(i, key))}
        return values, suppress, len(identities)

    report = ErasureReport(uuid.uuid4().hex, "erasure", now or datetime.now(UTC))
    return _carry_out(db_path, landing, publish_roots or [], report, prepare)


def purge_expired(
    db_path: Path,
    landing: Path,
    retention_days: int,
    as_of: datetime,
    now: datetime | None = None,
) -> ErasureReport:
    """Remove raw events older than retention_days before as_of, the way an erasure does."""
    if retention_days < 1:
        raise ErasureError(f"retention_days must be at least 1, not {retention_days}")

    def prepare(con: duckdb.DuckDBPyConnection) -> tuple[set[str] | None, set[str], int]:
        select_expired_lines(con, retention_days, as_of)
        return None, set(), 0

    report = ErasureReport(uuid.uuid4().hex, "retention", now or datetime.now(UTC))
    return _carry_out(db_path, landing, [], report, prepare)


# ---------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user-id", action="append", default=[], help="a userId (repeatable)")
    parser.add_argument(
        "--anonymous-id", action="append", default=[], help="an anonymousId (repeatable)"
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="instead: purge raw events older than this many days before --as-of "
        "(default: the retention_days var)",
    )
    parser.add_argument("--as-of", default=None, help="reference time (ISO; default now)")
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("PERSONALIZATION_DB", PROJECT_ROOT / "data/warehouse.duckdb")),
    )
    parser.add_argument(
        "--landing",
        type=Path,
        default=Path(os.environ.get("PERSONALIZATION_LANDING", PROJECT_ROOT / "data/landing")),
    )
    parser.add_argument(
        "--published",
        type=Path,
        action="append",
        default=None,
        help="published folder(s) whose kept versions are scrubbed "
        "(default: $PERSONALIZATION_PUBLISH or data/published)",
    )
    parser.add_argument(
        "--development-key",
        action="store_true",
        help="allow the public development key when PERSONALIZATION_HMAC_KEY is unset (demo)",
    )


def run(args: argparse.Namespace) -> int:
    published = args.published or [
        Path(os.environ.get("PERSONALIZATION_PUBLISH", PROJECT_ROOT / "data/published"))
    ]
    try:
        if args.user_id or args.anonymous_id:
            key = resolve_key(require_key=not args.development_key)
            forget(args.db, args.landing, key, args.user_id, args.anonymous_id, published)
        else:
            days = args.retention_days or default_retention_days()
            if days is None:
                raise ErasureError(
                    "nothing to do: name a person (--user-id / --anonymous-id) or a retention "
                    "(--retention-days, or the retention_days var)"
                )
            as_of = datetime.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC)
            if as_of.tzinfo is not None:
                as_of = as_of.astimezone(UTC)
            purge_expired(args.db, args.landing, days, as_of)
    except (ErasureError, RuntimeError, duckdb.Error) as error:
        log.error("%s", error)
        return 2
    log.info("run `dbt build` now so that tables computed from many people are recomputed")
    return 0
