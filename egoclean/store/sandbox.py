"""What SQL typed by a user (`egoclean sql`, `egoclean export --sql`) may run on the store.

The connection's own settings do most of it (`egoclean.store.tables.SANDBOX`: external
access off, no extension installed or loaded, configuration locked). What they cannot
express is checked here before the query runs:

- Statement types (`check_statements`, both stores): only SELECT queries (SELECT, FROM,
  WITH, VALUES...), and with `--allow-files` on the embedded store also COPY and EXPORT.
  INSTALL, LOAD, ATTACH, DETACH, SET, RESET, CALL, PRAGMA and every write are refused
  whatever the settings would say (`FORCE INSTALL ... FROM <url>` included).
- The shared store (`check_lake_query`): its connection must keep reaching the lake's
  catalog in PostgreSQL and its Parquet files, so the query may name nothing but the
  lake's own tables and views (or its CTEs): no other catalog (`__ducklake_metadata_lake`,
  `system`, `temp`), no table function but `range`, `generate_series` and `unnest`
  (`postgres_scan(dsn, ...)`, `postgres_query`, `query(...)`, `read_*`, `glob`,
  `duckdb_*()` all reach past the tables), and no function that reads settings or the
  environment (`current_setting`, `getenv`, `duckdb_*`, `postgres_*`, `pg_*`). The parse
  tree is DuckDB's own (`json_serialize_sql`), so a spelling (quotes, case, schema
  qualification, FROM-first) cannot hide a name.

Both raise `Refused` with the reason; the store turns it into its one-line QueryError.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import duckdb

READ_TYPES = frozenset({"SELECT"})
FILE_TYPES = frozenset({"COPY", "EXPORT"})  # the embedded store with --allow-files
LAKE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
DENIED_FUNCTIONS = frozenset({"current_setting", "getenv", "which_secret", "getvariable", "query", "query_table"})
DENIED_PREFIXES = ("duckdb_", "postgres_", "pg_", "ducklake_", "read_", "glob", "sniff_", "parquet_", "iceberg_",
                   "delta_", "sqlite_", "mysql_")
LAKE_CATALOGS = frozenset({"", "lake"})
LAKE_SCHEMAS = frozenset({"", "main"})


class Refused(Exception):
    """The query may not run in the sandbox; the message says why."""


def check_statements(con: duckdb.DuckDBPyConnection, sql: str, allow_files: bool = False) -> None:
    """Refuse any statement that is not a query (COPY and EXPORT too, unless `allow_files`).

    A parser error is left to the query itself, which reports it as DuckDB words it."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error:
        return
    allowed = READ_TYPES | (FILE_TYPES if allow_files else frozenset())
    for st in statements:
        kind = st.type.name
        if kind not in allowed:
            files = " (with --allow-files also COPY and EXPORT)" if kind in FILE_TYPES and not allow_files else ""
            raise Refused(f"{kind} statements are not run here; only queries (SELECT){files}")


def lake_tables(con: duckdb.DuckDBPyConnection, alias: str = "lake") -> set[str]:
    """The lake's own table and view names (lowercase), read before the query runs."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $a "
        "UNION SELECT view_name FROM duckdb_views() WHERE database_name = $a AND NOT internal", {"a": alias}
    ).fetchall()
    return {r[0].lower() for r in rows}


def check_lake_query(con: duckdb.DuckDBPyConnection, sql: str, tables: set[str]) -> None:
    """Refuse a query on the shared store that names anything but the lake's tables (see the module docstring)."""
    check_statements(con, sql)
    (tree,) = con.execute("SELECT json_serialize_sql($q::VARCHAR)", {"q": sql}).fetchone()
    doc = json.loads(tree)
    if doc.get("error"):
        # not a plain SELECT DuckDB can show us (PIVOT, DESCRIBE, SHOW, SUMMARIZE...): nothing to check it by
        raise Refused(f"only plain SELECT queries are run on the shared store ({doc.get('error_message', '')})")
    ctes = {str(k).lower() for node in _walk(doc) for k in _cte_names(node)}
    known = tables | ctes
    for node in _walk(doc):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            catalog, schema = str(node.get("catalog_name", "")).lower(), str(node.get("schema_name", "")).lower()
            name = str(node.get("table_name", ""))
            if catalog not in LAKE_CATALOGS or schema not in LAKE_SCHEMAS or name.lower() not in known:
                where = ".".join(p for p in (node.get("catalog_name"), node.get("schema_name"), name) if p)
                raise Refused(f"{where!r} is not a table of the lake (its tables: {', '.join(sorted(tables))})")
        elif kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            name = str(fn.get("function_name", "")).lower()
            if name not in LAKE_TABLE_FUNCTIONS:
                raise Refused(f"table function {name}() reaches past the lake's tables")
        if node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
                raise Refused(f"function {name}() reaches past the lake's tables")


def _cte_names(node: dict) -> Iterator[str]:
    cte = node.get("cte_map")
    if isinstance(cte, dict):
        for entry in cte.get("map") or []:
            if isinstance(entry, dict) and "key" in entry:
                yield entry["key"]


def _walk(obj: Any) -> Iterator[dict]:
    """Every dict in a JSON tree, depth first (iterative: a deeply nested query cannot exhaust the stack)."""
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            yield cur
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)


def confine_lake(con: duckdb.DuckDBPyConnection, data_path: str | None, config: dict) -> None:
    """Settings of a sandboxed connection to the lake: secrets out of reach, files only under the lake's data path.

    DuckDB's S3 settings hold the key pair it read from AWS_* (`current_setting` would show
    it); the lake reads through its secret, so they are cleared. External access goes off
    with the lake's data path as the only allowed directory (its Parquet files), then the
    rest of `config` (tables.SANDBOX, the memory limit, no temporary folder) and the
    configuration lock."""
    for setting in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token"):
        con.execute(f"SET {setting} = ''")
    if data_path:
        quoted = "'" + (str(data_path).rstrip("/") + "/").replace("'", "''") + "'"
        con.execute(f"SET allowed_directories = [{quoted}]")
    lock = config.get("lock_configuration", False)
    # sizes and folders first: with external access off DuckDB no longer lets temp_directory change
    for k, v in sorted(config.items(), key=lambda kv: isinstance(kv[1], bool)):
        if k == "lock_configuration":
            continue
        if isinstance(v, bool):
            con.execute(f"SET {k} = {'true' if v else 'false'}")
        else:  # a size or a folder ('': none)
            con.execute(f"SET {k} = '{str(v).replace(chr(39), chr(39) * 2)}'")
    if lock:
        con.execute("SET lock_configuration = true")
