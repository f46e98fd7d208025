"""DuckLake connections for the shared segment store: catalog in PostgreSQL, data as Parquet.

A table-store URL `ducklake:postgres:<libpq keywords>` (e.g. `ducklake:postgres:dbname=lake
host=db.internal port=5432 user=egoclean`) selects the shared store. Every machine opens
a short-lived in-memory DuckDB, loads the DuckLake, postgres and httpfs extensions from the
`duckdb-extension-*` wheels (never from the network), creates an S3 secret from the
standard AWS_* environment, and attaches the lake. The data path (`s3://bucket/tables/`
or a shared folder) is given once, when the lake is created (EGOCLEAN_DB_DATA_PATH); the
catalog remembers it.

DuckLake commits optimistically: two transactions that touch different rows both
commit (it retries the commit itself), but two writers that each delete a clip's rows
that are not there yet and then insert them would both succeed and leave the rows twice.
So writers of one clip (or one ground-truth source) also hold a PostgreSQL advisory lock
on a name derived from it for the length of their transaction (`key_lock`); the lock
belongs to a libpq session, so a writer that dies releases it with its connection.
Passwords belong in PGPASSWORD (libpq reads it), not in the URL; `redact_url` hides one
that is there anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlsplit

from egoclean.core.errors import InvalidInputError

PREFIX = "ducklake:"
# extension name DuckDB loads -> the wheel that ships it (file name inside the wheel)
EXTENSIONS = {"ducklake": ("duckdb_extension_ducklake", "ducklake"),
              "postgres_scanner": ("duckdb_extension_postgres", "postgres"),
              "httpfs": ("duckdb_extension_httpfs", "httpfs")}
ALIAS = "lake"


def is_lake_url(url: str | os.PathLike) -> bool:
    """True for a DuckLake table-store URL (`ducklake:...`)."""
    return str(url).startswith(PREFIX)


def redact_url(url: str) -> str:
    """The URL with any `password=...` / `passwd=...` keyword or `[user]:password@` hidden."""
    s = re.sub(r"((?:password|passwd)\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", str(url), flags=re.I)
    return re.sub(r"(://[^:/@\s]*:)[^@\s]+@", r"\1***@", s)


def postgres_dsn(url: str) -> str:
    """The libpq connection string of a `ducklake:postgres:...` URL (InvalidInputError otherwise)."""
    rest = str(url)[len(PREFIX):]
    if not rest.startswith("postgres:"):
        raise InvalidInputError(
            f"table store {redact_url(url)}: only DuckLake catalogs in PostgreSQL are supported "
            "(ducklake:postgres:dbname=... host=... port=... user=...)"
        )
    dsn = rest[len("postgres:"):]
    import psycopg2.extensions  # libpq's own parser (keywords, quoting, postgresql:// URIs)

    try:
        keywords = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error as e:
        # libpq's message names the keyword, never a value
        raise InvalidInputError(f"table store {redact_url(url)}: not a libpq connection string "
                                f"({' '.join(str(e).split())})") from None
    if keywords.get("password"):
        # it would be spelled into ATTACH, shown by duckdb_databases() and kept in run snapshots
        raise InvalidInputError(
            f"table store {redact_url(url)}: holds a password; keep it out of EGOCLEAN_DB and give it to libpq "
            "as PGPASSWORD or in ~/.pgpass (PGPASSFILE)")
    return dsn


def extension_dir() -> Path:
    """A folder laid out as DuckDB expects (<dir>/<version>/<platform>/<name>.duckdb_extension)
    that links to the extensions of the installed duckdb-extension-* wheels.

    DuckDB names the postgres extension `postgres_scanner` inside; loading the wheel's
    `postgres.duckdb_extension` by path fails on that name, so every extension is linked
    here under the name DuckDB loads it by."""
    import duckdb  # the store's engine; only needed when a lake is opened

    version = "v" + duckdb.__version__
    platform = duckdb.connect().execute("PRAGMA platform").fetchone()[0]
    base = Path(tempfile.gettempdir()) / f"egoclean-duckdb-ext-{os.getuid()}"
    target = base / version / platform
    target.mkdir(parents=True, exist_ok=True)
    for name, (package, file_stem) in EXTENSIONS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise InvalidInputError(f"DuckLake store needs the {package.replace('_', '-')} wheel (not installed)")
        src = Path(list(spec.submodule_search_locations)[0]) / "extensions" / version / f"{file_stem}.duckdb_extension"
        if not src.is_file():
            raise InvalidInputError(f"{src} is missing: {package} does not match DuckDB {duckdb.__version__}")
        link = target / f"{name}.duckdb_extension"
        if not (link.is_symlink() and os.readlink(link) == str(src)):
            tmp = link.with_name(f".{link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(src)
            os.replace(tmp, link)  # atomic: other processes see the old or the new link
    return base


def s3_secret_sql(env: Mapping[str, str] | None = None) -> str | None:
    """CREATE SECRET for DuckDB's S3 client from the AWS_* environment s3fs reads too.

    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_REGION (or
    AWS_DEFAULT_REGION, default us-east-1) and AWS_ENDPOINT_URL (an S3-compatible server:
    path-style URLs, SSL from its scheme). None when no key is set."""
    env = os.environ if env is None else env
    key = env.get("AWS_ACCESS_KEY_ID")
    if not key:
        return None

    def q(v: str) -> str:
        return "'" + str(v).replace("'", "''") + "'"

    parts = ["TYPE s3", f"KEY_ID {q(key)}", f"SECRET {q(env.get('AWS_SECRET_ACCESS_KEY', ''))}",
             f"REGION {q(env.get('AWS_REGION') or env.get('AWS_DEFAULT_REGION') or 'us-east-1')}"]
    if env.get("AWS_SESSION_TOKEN"):
        parts.append(f"SESSION_TOKEN {q(env['AWS_SESSION_TOKEN'])}")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        u = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        parts += [f"ENDPOINT {q(u.netloc)}", f"USE_SSL {'true' if u.scheme == 'https' else 'false'}",
                  "URL_STYLE 'path'"]
    return "CREATE OR REPLACE TEMPORARY SECRET egoclean_s3 (" + ", ".join(parts) + ")"


def connect(url: str, data_path: str | None = None, read_only: bool = False):
    """An in-memory DuckDB connection with the lake at `url` attached as `lake` and in use.

    `data_path` (EGOCLEAN_DB_DATA_PATH) is needed only to create a new lake; an existing
    one keeps the path its catalog records."""
    import duckdb  # the store's engine

    dsn = postgres_dsn(url)
    con = duckdb.connect(config={"extension_directory": str(extension_dir()),
                                 "autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        for name in EXTENSIONS:
            con.execute(f"LOAD {name}")
        secret = s3_secret_sql()
        if secret:
            con.execute(secret)
        opts = []
        if data_path:
            opts.append("DATA_PATH '" + (str(data_path).rstrip("/") + "/").replace("'", "''") + "'")
        if read_only:
            opts.append("READ_ONLY")
        target = f"{PREFIX}postgres:{dsn}".replace("'", "''")  # a quoted value in the DSN stays inside the literal
        # a plain SQL string: DuckDB keeps backslashes as they are (libpq's \' escape included)
        con.execute(f"ATTACH '{target}' AS {ALIAS}" + (f" ({', '.join(opts)})" if opts else ""))
        con.execute(f"USE {ALIAS}")
        return con
    except BaseException:
        con.close()
        raise


def _lock_id(name: str) -> int:
    """A signed 64-bit advisory-lock id for a name (stable across machines)."""
    return int.from_bytes(hashlib.sha256(("egoclean:" + name).encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def key_lock(url: str, names: list[str], timeout_sec: float) -> Iterator[None]:
    """Hold PostgreSQL advisory locks on `names` (sorted, so writers never deadlock).

    Waits at most `timeout_sec` for them (lock_timeout), then raises TimeoutError."""
    import psycopg2  # the catalog's PostgreSQL client (a dagster-postgres dependency)

    con = psycopg2.connect(postgres_dsn(url), connect_timeout=max(1, int(timeout_sec)),
                           application_name="egoclean-store-lock")
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SET lock_timeout = %s", [f"{max(1, int(timeout_sec * 1000))}ms"])
            try:
                for name in sorted(set(names)):
                    cur.execute("SELECT pg_advisory_lock(%s)", [_lock_id(name)])
            except psycopg2.errors.LockNotAvailable:
                raise TimeoutError(f"another writer held {', '.join(sorted(set(names)))} for over "
                                   f"{timeout_sec:.0f} s") from None
        yield
    finally:
        con.close()  # ends the session: PostgreSQL releases its advisory locks
