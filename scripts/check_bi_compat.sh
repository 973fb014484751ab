#!/usr/bin/env bash
# Open a published DuckDB file read-only with an OLDER DuckDB, as a BI tool embedding DuckDB 1.x
# would, and read every published view in full.
#
#   scripts/check_bi_compat.sh [PUBLISHED_DB] [DUCKDB_VERSION]
#
# PUBLISHED_DB    default: data/published/current/published.duckdb
# DUCKDB_VERSION  default: 1.0.0, the oldest the README promises; `make install` puts its package
#                 in .venv/duckdb-1.0.0 (used with the project's Python, nothing downloaded).
#                 Any other version is installed from PyPI into a throwaway venv, reused.
# BI_COMPAT_VENV  where that venv lives (default: ${TMPDIR:-/tmp}/bi-compat-duckdb-<version>)
#
# Exit 0 when every view reads; non-zero (with DuckDB's error) otherwise.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
db="${1:-data/published/current/published.duckdb}"
version="${2:-1.0.0}"
venv="${BI_COMPAT_VENV:-${TMPDIR:-/tmp}/bi-compat-duckdb-${version}}"
python="${PYTHON:-python3}"

if [ ! -f "$db" ]; then
    echo "error: $db not found (run: personalization publish)" >&2
    exit 2
fi
if [ -f "$root/.venv/duckdb-${version}/.installed" ]; then
    run=(env PYTHONPATH="$root/.venv/duckdb-${version}" "$root/.venv/bin/python")
else
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import duckdb, pytz" 2>/dev/null; then
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==${version}" pytz
    fi
    run=("$venv/bin/python")
fi

"${run[@]}" - "$db" <<'EOF'
import sys

import duckdb

path = sys.argv[1]
con = duckdb.connect(path, read_only=True)
views = con.sql(
    "select schema_name, view_name from duckdb_views() where not internal order by 1, 2"
).fetchall()
tables = con.sql(
    "select schema_name, table_name from duckdb_tables() order by 1, 2"
).fetchall()
if not views:
    sys.exit(f"error: no views in {path}")
for schema, name in views + tables:
    rows = con.sql(f'select * from "{schema}"."{name}"').fetchall()
    print(f"ok {schema}.{name}: {len(rows)} rows")
(comments,) = con.sql(
    "select count(comment) from duckdb_columns() where schema_name <> 'publish_meta'"
).fetchone()
print(f"{comments} column comments")
version = con.sql("select version_id from publish_meta.version_info").fetchone()[0]
print(f"duckdb {duckdb.__version__} read {len(views)} views of version {version} from {path}")
EOF
