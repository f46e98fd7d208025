"""Where the segment tables live, and how one transaction reaches them: the store's two backends.

`_Backend` is the small interface the domain code (`egoclean.store.tables.Store`) calls,
never asking which backend it holds:

- `_EmbeddedBackend`: a local DuckDB file. DuckDB lets one process at a time open a
  database file for writing, and a second process that tries fails at once with a lock
  error. So every call opens a short-lived connection, does its work in one
  transaction, and closes it; opening retries with exponential backoff and jitter on
  the lock error for a bounded number of attempts and seconds, then raises
  `StoreBusyError` naming the file and the process holding it. Threads of one process
  queue for writing.
- `_LakeBackend`: a shared DuckLake (catalog in PostgreSQL, Parquet in the object
  store; `egoclean.store.ducklake`) that many machines write at once. Writers of one
  clip (or ground-truth source) take turns through PostgreSQL advisory locks; a commit
  DuckLake refuses as conflicting is re-run whole, bounded like the lock retry; each
  process keeps one read-write connection (attaching costs ~0.5 s).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import duckdb

from egoclean.core import defaults, retry
from egoclean.core.errors import (EgoCleanError, InvalidInputError, StoreBusyError, StoreSchemaError,
                                  StoreUnavailableError)
from egoclean.store import sandbox
from egoclean.store.schema import EMBEDDED_SCHEMA, LAKE_SCHEMA, ensure_schema, has_schema
from egoclean.store.text import one_line

T = TypeVar("T")
Work = Callable[[duckdb.DuckDBPyConnection], T]
log = logging.getLogger(__name__)


class StoreMissingError(InvalidInputError):
    """The database file does not exist yet (nothing has been materialized)."""


def _backoff(retries: int, timeout_sec: float) -> retry.Backoff:
    """How a store waits for another writer: `retries` tries within `timeout_sec` (jitter keeps
    several waiting writers from retrying in lockstep)."""
    return retry.Backoff(attempts=retries, base_sec=defaults.STORE_BACKOFF_SEC,
                         cap_sec=defaults.STORE_BACKOFF_CAP_SEC, deadline_sec=timeout_sec)


def _transaction(con: duckdb.DuckDBPyConnection, fn: Work[T], schema: str | None) -> T:
    """Run `fn` in one transaction on `con` (`schema` ensured first unless None); rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        if schema is not None:
            ensure_schema(con, schema)
        result = fn(con)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return result


class _Backend:
    """Where the tables live and how one transaction reaches them."""

    location: str  # for messages and metadata (a password in a URL hidden)
    retries: int  # attempts in all (>= 1) while the tables are held by another writer
    timeout_sec: float  # give up retrying after this long
    files_allowed_on_request = True  # `egoclean sql --allow-files` opens files (not on the shared store)

    def init(self) -> None:
        """Create the tables and the detection_eval view if missing (idempotent)."""
        raise NotImplementedError

    def write(self, fn: Work[T], locks: Sequence[str]) -> T:
        """Run `fn` in one transaction on a read-write connection (schema ensured).

        `locks` name what the transaction replaces (a clip, a ground-truth source):
        writers of the same name take turns."""
        raise NotImplementedError

    def read(self, fn: Work[T], config: dict | None = None) -> T:
        """Run `fn` on a read-only connection. `config`: DuckDB settings fixed for it (see tables.SANDBOX)."""
        raise NotImplementedError

    def exists(self) -> bool:
        """False when there is nothing to read yet (a database file never created)."""
        return True

    def check_user_sql(self, con: duckdb.DuckDBPyConnection, sql: str, allow_files: bool) -> None:
        """Refuse (sandbox.Refused) SQL from a user that the sandbox does not run (egoclean.store.sandbox)."""
        sandbox.check_statements(con, sql, allow_files)

    def redact(self, text: str) -> str:
        """`text` (an error message) with any secret of the location hidden."""
        return text


# -- embedded: one DuckDB file ------------------------------------------------------

_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _named_lock(key: str) -> threading.Lock:
    """This process's lock of one name (a database file, a lake)."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


def _is_lock_error(e: BaseException) -> bool:
    """True for the errors that clear once another connection closes the file."""
    msg = str(e)
    if isinstance(e, duckdb.IOException) and "lock" in msg.lower():
        return True
    # Same process, other configuration (read-only vs read-write, sandboxed) still open,
    # or a thread's connection to the file closing while another opens it with another
    # configuration (DuckDB then says the file "is already attached").
    if isinstance(e, duckdb.ConnectionException) and "different configuration" in msg:
        return True
    return isinstance(e, duckdb.BinderException) and "already attached" in msg


_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.+?) \(PID (?P<pid>\d+)\)")


def lock_holder(msg: str) -> str:
    """Who holds the file, from DuckDB's lock error: 'process 123 (python3 -m ...)', or 'another process'."""
    m = _LOCK_HOLDER.search(msg)
    if not m:
        return "another process"
    pid, what = int(m["pid"]), m["exe"]
    try:  # the command line says more than the executable (e.g. which script or notebook)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # one line: arguments such as `python -c "<script>"` may hold newlines
            cmd = " ".join(" ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a).split())
        what = cmd[:160] + ("…" if len(cmd) > 160 else "") if cmd else what
    except OSError:
        pass
    return f"process {pid} ({what})"


class _EmbeddedBackend(_Backend):
    """A local DuckDB file, opened briefly per call."""

    def __init__(self, path: str | os.PathLike, retries: int, timeout_sec: float):
        self.path = Path(path)
        self.location = str(self.path)
        self.retries, self.timeout_sec = retries, timeout_sec

    def _connect(self, read_only: bool, config: dict | None = None) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying with backoff + jitter while another process holds it."""
        if read_only and not self.path.is_file():
            raise StoreMissingError(
                f"database {self.path} does not exist: materialize a clip first "
                "(e.g. anomaly_segments in `dagster dev`) or pass --db PATH"
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)

        def busy(e: BaseException, attempt: int, delay: float) -> None:
            log.info("database %s is busy (attempt %d); retrying in %.2f s", self.path, attempt, delay)

        try:
            return retry.call(lambda: duckdb.connect(str(self.path), read_only=read_only, config=dict(config or {})),
                              _backoff(self.retries, self.timeout_sec), retry_if=_is_lock_error, on_retry=busy)
        except retry.GaveUp as g:
            raise StoreBusyError(
                f"database {self.path} is busy: {lock_holder(str(g.error))} holds its lock "
                f"(gave up after {g.attempts} attempts in {g.elapsed_sec:.1f} s); "
                "close the DuckDB session in that process (a duckdb shell, notebook or script "
                "with the file open) or wait for it to finish, then try again"
            ) from None
        except duckdb.Error as e:
            raise InvalidInputError(f"database {self.path}: cannot open: {one_line(str(e))}") from None

    def init(self) -> None:
        self.write(lambda con: None, ())

    def write(self, fn: Work[T], locks: Sequence[str] = ()) -> T:
        # Threads of one process share DuckDB's instance for a file, where concurrent
        # transactions can conflict (schema creation, same rows): writers queue here.
        # Other processes are kept out by the file's own lock.
        with _named_lock(os.path.realpath(self.path)):
            con = self._connect(read_only=False)
            try:
                return _transaction(con, fn, EMBEDDED_SCHEMA)
            except StoreSchemaError as e:
                raise StoreSchemaError(f"database {self.location}: {e}") from None
            finally:
                con.close()

    def read(self, fn: Work[T], config: dict | None = None) -> T:
        con = self._connect(read_only=True, config=config)
        try:
            return fn(con)
        finally:
            con.close()

    def exists(self) -> bool:
        return self.path.is_file()


# -- shared: a DuckLake -------------------------------------------------------------

# The shared store's kept read-write connections, one per (process, lake); a named lock
# gives a connection to one thread's transaction at a time.
_LAKE_WRITERS: dict[tuple, duckdb.DuckDBPyConnection] = {}


class _LakeBackend(_Backend):
    """A DuckLake at a `ducklake:postgres:...` URL that many machines write at once."""

    files_allowed_on_request = False  # the sandbox lets a query name the lake's tables only

    def __init__(self, url: str, data_path: str | None, retries: int, timeout_sec: float):
        from egoclean.store import ducklake

        self.url, self.data_path = str(url), data_path
        self.location = ducklake.redact_url(self.url)
        self.retries, self.timeout_sec = retries, timeout_sec
        self._schema_ok = False

    def redact(self, text: str) -> str:
        from egoclean.store.ducklake import redact_url

        return redact_url(text)

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        from egoclean.store import ducklake

        try:
            return ducklake.connect(self.url, self.data_path, read_only=read_only)
        except duckdb.Error as e:
            raise self._catalog_error(e, "attach") from None

    def _catalog_error(self, e: BaseException, doing: str) -> EgoCleanError:
        """The catalog database's error on `doing`: unreachable (retried) or bad input, its URL redacted."""
        from egoclean.store import ducklake

        msg = ducklake.redact_url(one_line(str(e)))
        if is_unreachable(msg):
            return StoreUnavailableError(
                f"table store {self.location}: cannot reach its catalog to {doing} ({msg}); the database server is "
                "down or unreachable: the step is retried, or rerun it once the server is back")
        return InvalidInputError(f"table store {self.location}: cannot {doing}: {msg}")

    def read(self, fn: Work[T], config: dict | None = None) -> T:
        con = self._connect(read_only=True)
        try:
            if config:
                # the lake reads its catalog (attached already) and its Parquet files (under
                # the data path its catalog records): external access goes off around them
                (data_path,) = con.execute(
                    f"SELECT data_path FROM ducklake_settings('{ducklake_alias()}')").fetchone()
                sandbox.confine_lake(con, data_path, config)
            return fn(con)
        finally:
            con.close()

    def check_user_sql(self, con: duckdb.DuckDBPyConnection, sql: str, allow_files: bool) -> None:
        sandbox.check_lake_query(con, sql, sandbox.lake_tables(con, ducklake_alias()))

    def init(self) -> None:
        self._ensure_schema()

    def write(self, fn: Work[T], locks: Sequence[str] = ()) -> T:
        self._ensure_schema()
        with self._key_lock(list(locks)), _named_lock(repr(self._key())):
            return self._retry_conflicts(lambda: self._write_kept(fn))

    def _retry_conflicts(self, attempt_fn: Callable[[], T]) -> T:
        """Re-run a transaction that DuckLake refused for a conflicting commit.

        DuckLake refuses a commit that deletes from a table another writer inserted into
        since this transaction began (different clips included); the whole transaction
        (fresh snapshot) is re-run with backoff + jitter, bounded like the lock retry."""
        def conflict(e: BaseException) -> bool:
            return isinstance(e, duckdb.TransactionException) and "conflict" in str(e).lower()

        def again(e: BaseException, attempt: int, delay: float) -> None:
            log.info("table store %s: commit conflict (attempt %d); retrying in %.2f s", self.location, attempt, delay)

        try:
            return retry.call(attempt_fn, _backoff(self.retries, self.timeout_sec), retry_if=conflict, on_retry=again)
        except retry.GaveUp as g:
            raise StoreBusyError(
                f"table store {self.location} is busy: commits kept conflicting with other writers "
                f"(gave up after {g.attempts} attempts in {g.elapsed_sec:.1f} s): {one_line(str(g.error))}"
            ) from None

    @contextlib.contextmanager
    def _key_lock(self, names: list[str]):
        """Hold the PostgreSQL advisory locks of `names` (StoreBusyError after timeout_sec)."""
        from egoclean.store import ducklake

        if not names:
            yield
            return
        try:
            lock = ducklake.key_lock(self.url, names, self.timeout_sec)
            lock.__enter__()
        except TimeoutError as e:
            raise StoreBusyError(f"table store {self.location} is busy: {e}") from None
        except Exception as e:  # psycopg2.Error: the catalog database is unreachable
            raise self._catalog_error(e, f"lock {', '.join(names)}") from None
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def _ensure_schema(self) -> None:
        """Create the shared schema once, one writer at a time (DDL conflicts otherwise)."""
        if self._schema_ok:
            return
        con = self._connect(read_only=False)
        try:
            ok = has_schema(con)
        finally:
            con.close()
        if not ok:
            with self._key_lock(["schema"]):
                con = self._connect(read_only=False)
                try:
                    _transaction(con, lambda con: None, LAKE_SCHEMA)
                except StoreSchemaError as e:
                    raise StoreSchemaError(f"table store {self.location}: {e}") from None
                finally:
                    con.close()
        self._schema_ok = True

    def _key(self) -> tuple:
        return (os.getpid(), self.url, self.data_path)

    def _write_kept(self, fn: Work[T]) -> T:
        """One transaction on this process's kept read-write connection to the lake.

        Callers hold the lake's named lock; each transaction starts from the lake's newest
        snapshot, so a kept connection sees other machines' commits."""
        key = self._key()
        con = _LAKE_WRITERS.get(key)
        if con is None:
            con = _LAKE_WRITERS[key] = self._connect(read_only=False)
        try:
            return _transaction(con, fn, None)
        except (duckdb.ConnectionException, duckdb.IOException, duckdb.FatalException) as e:
            # the catalog connection broke (server restarted, network): reattach next time
            _LAKE_WRITERS.pop(key, None)
            with contextlib.suppress(duckdb.Error):
                con.close()
            raise StoreUnavailableError(
                f"table store {self.location}: lost its catalog connection during a write "
                f"({self.redact(one_line(str(e)))}); the transaction was not committed: the step is retried, "
                "or rerun it once the database server is back") from None


# What libpq and DuckDB say when the server is not there (or went away): a later try can succeed.
_UNREACHABLE = ("connection refused", "could not connect", "timeout expired", "server closed the connection",
                "connection reset", "no route to host", "network is unreachable", "could not translate host name",
                "the database system is starting up", "the database system is shutting down",
                "terminating connection", "ssl syscall error")


def is_unreachable(msg: str) -> bool:
    """True for a PostgreSQL connection failure that can clear by itself (not bad credentials or a missing database)."""
    low = msg.lower()
    return any(s in low for s in _UNREACHABLE)


def ducklake_alias() -> str:
    from egoclean.store import ducklake

    return ducklake.ALIAS


def open_backend(path: str | os.PathLike, data_path: str | None, retries: int, timeout_sec: float) -> _Backend:
    """The backend of a store location: a DuckLake URL (`ducklake:...`) or a DuckDB file path."""
    from egoclean.store import ducklake

    if ducklake.is_lake_url(path):
        return _LakeBackend(str(path), data_path, retries, timeout_sec)
    return _EmbeddedBackend(path, retries, timeout_sec)
