"""The SQLite file under the store: one SQLAlchemy engine, WAL, serialized writes.

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A
commit is then written to the WAL before it returns, but not fsynced; this
survives a kill -9 of the server (the OS still holds the pages), and only an
OS crash or power loss can drop the last transactions. That is the guarantee
the control plane promises ("kill -9 loses nothing acknowledged").

Concurrency: one engine shared by every thread (``check_same_thread=False``).
Writes are serialized by a process-wide lock and run as ``BEGIN IMMEDIATE``,
so they never fail half-way on a lock upgrade; reads run in deferred
transactions and, thanks to WAL, never wait for writers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import OperationalError

from ferry.errors import UnavailableError
from ferry.store.migrations import apply_migrations

__all__ = ["SqliteDatabase"]


def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy's "begin" hook issue BEGIN itself (pysqlite's own
    # transaction handling cannot do BEGIN IMMEDIATE).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("ferry_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class SqliteDatabase:
    """One SQLite file with its migrations applied; hands out transactions.

    Opening creates the file and its directory if needed and applies pending
    migrations. Raises ``UnavailableError`` if the file cannot be opened, and
    from ``read``/``write`` when the database fails.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(f"cannot create {path.parent}: {exc.strerror}") from exc
        self._engine = create_engine(
            f"sqlite:///{path}",
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=8,
            max_overflow=32,
        )
        event.listen(self._engine, "connect", _on_connect)
        event.listen(self._engine, "begin", _on_begin)
        self._write_lock = threading.Lock()
        self._raw: sqlite3.Connection | None = None  # raw_write's, opened on first use
        try:
            with self.write() as conn:
                apply_migrations(conn)
        except RuntimeError as exc:
            self._engine.dispose()
            raise UnavailableError(
                f"cannot open {path}: {exc}", hint="upgrade Ferry to open this database"
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A deferred (read) transaction; never waits for writers."""
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            raise UnavailableError(f"the state database {self.path} failed: {exc.orig}") from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """An immediate (write) transaction, one at a time in this process."""
        try:
            with self._write_lock, self._engine.connect() as conn:
                conn.execution_options(ferry_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise UnavailableError(f"the state database {self.path} failed: {exc.orig}") from exc

    @contextmanager
    def raw_write(self) -> Iterator[sqlite3.Cursor]:
        """The same immediate transaction as ``write``, serialized with it, on a plain
        sqlite3 connection kept for the hot path (machine creation), where building
        SQLAlchemy statements and checking out a pooled connection cost more than
        the writes. Same pragmas, so the same durability. Commits when the block
        ends; rolls back if it raises.
        """
        with self._write_lock, self._raw_transaction() as cursor:
            yield cursor

    @contextmanager
    def raw_write_if_free(self) -> Iterator[sqlite3.Cursor | None]:
        """``raw_write`` when no other write of this process is under way, else ``None``
        at once (nothing written): for a caller on the event loop, which must not wait."""
        if not self._write_lock.acquire(blocking=False):
            yield None
            return
        try:
            with self._raw_transaction() as cursor:
                yield cursor
        finally:
            self._write_lock.release()

    @contextmanager
    def _raw_transaction(self) -> Iterator[sqlite3.Cursor]:
        """One ``BEGIN IMMEDIATE`` transaction on the raw connection; the caller holds
        the write lock."""
        try:
            if self._raw is None:
                self._raw = sqlite3.connect(
                    self.path, timeout=10, isolation_level=None, check_same_thread=False
                )
                _on_connect(self._raw, None)
            cursor = self._raw.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                self._raw.rollback()
                raise
            else:
                self._raw.commit()
            finally:
                cursor.close()
        except sqlite3.OperationalError as exc:
            raise UnavailableError(f"the state database {self.path} failed: {exc}") from exc

    def close(self) -> None:
        with self._write_lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None
        self._engine.dispose()
