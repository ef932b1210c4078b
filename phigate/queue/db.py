"""Engines and schema migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from phigate.errors import ConfigError, PhigateError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Execution option set by :func:`read_only` (see there).
READ_ONLY_OPTION = "phigate_read_only"
ONE_STATEMENT_OPTION = "phigate_one_statement"


class SchemaError(PhigateError):
    """The database schema is not the one this version of phigate expects."""

    exit_status = 2


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine with the durability settings phigate relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("[storage] url: not a valid database URL") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)
    raise ConfigError("[storage] url: only sqlite and postgresql are supported")


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        parent = Path(database).parent
        if not parent.is_dir():
            raise ConfigError(f"[storage] url: directory does not exist: {parent}")
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own transaction
        # handling defers BEGIN and breaks SAVEPOINT and IMMEDIATE semantics).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers (the TUI, the CLI) run while the relay writes; FULL fsyncs the WAL
        # at every commit, so a 250 reply is only sent for a message that survives power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted content (a destroyed message's wrapped key and ciphertext) is overwritten
        # with zeros instead of lingering in free space; see shred_checkpoint.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get(ONE_STATEMENT_OPTION):
            # One SELECT in autocommit mode is its own read transaction (one snapshot):
            # a BEGIN around it would be one more statement per lookup, for nothing.
            return
        if options.get(READ_ONLY_OPTION):
            # A reader needs no lock: under WAL it reads a snapshot while a writer commits.
            # Taking the write lock here would queue every policy lookup behind the fsync of
            # whichever message is being committed.
            connection.exec_driver_sql("BEGIN")
            return
        # Take the write lock up front: a deferred transaction that later tries to write can
        # fail with "database is locked" without waiting for the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class _WriterTurn:
    """One writer at a time on one SQLite database: first among this process's threads (a
    re-entrant lock), then among its processes (``flock`` on a file beside the database).

    SQLite admits one writer; the others wait in its busy handler, which polls with sleeps
    growing to 100 ms, so under load a writer often sleeps long after the lock was freed.
    Waiting on a lock instead wakes the next writer the moment the previous one committed.
    ``serve`` runs delivery in a child process (issue 16), so submission's commits and
    delivery's claims and outcomes meet across processes: without the file lock their tail
    latency was the busy handler's sleeps. Where the lock file cannot be opened (a read-only
    directory, another user's file) only this process's writers take turns, as before.
    """

    def __init__(self, lock_file: Path | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._descriptor: int | None = None
        if lock_file is not None:
            try:
                self._descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                           0o600)
            except OSError:
                self._descriptor = None

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._descriptor is not None:
            try:
                fcntl.flock(self._descriptor, fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise

    def __exit__(self, *_exc: object) -> None:
        if self._depth == 1 and self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        self._depth -= 1
        self._threads.release()

    def __del__(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)


_WRITER_TURNS: weakref.WeakKeyDictionary[Engine, _WriterTurn] = weakref.WeakKeyDictionary()
_WRITER_TURNS_GUARD = threading.Lock()


def writer_turn(engine: Engine) -> contextlib.AbstractContextManager[Any]:
    """Hold this around a write transaction on a hot path: on SQLite, one writer at a time
    on the database, across this process's threads and phigate's processes (see
    :class:`_WriterTurn`); elsewhere nothing."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _WRITER_TURNS_GUARD:
        turn = _WRITER_TURNS.get(engine)
        if turn is None:
            database = engine.url.database
            lock_file = (Path(f"{database}-writers") if database and database != ":memory:"
                         else None)
            turn = _WRITER_TURNS[engine] = _WriterTurn(lock_file)
    return turn


def read_only(engine: Engine) -> Engine:
    """``engine`` for transactions that only read (policy lookups, bodies, admin views).

    On SQLite these begin with a plain (deferred) BEGIN instead of BEGIN IMMEDIATE, so they
    never wait for the write lock. Never write through it: a deferred transaction that
    tries to write fails with "database is locked" instead of waiting its turn. On
    PostgreSQL it changes nothing. The returned engine shares ``engine``'s pool.
    """
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def one_statement_reads(engine: Engine) -> Engine:
    """``engine`` for connections that run a single SELECT and nothing else (the policy
    lookups asked per recipient): on SQLite no BEGIN is sent, the statement reads one
    snapshot on its own. Never write through it, nor run two statements that must agree.
    On PostgreSQL it changes nothing.
    """
    return engine.execution_options(**{READ_ONLY_OPTION: True, ONE_STATEMENT_OPTION: True})


def shred_checkpoint(engine: Engine) -> bool:
    """Make destroyed keys unreadable on disk now, not at the next checkpoint.

    On SQLite the zeroed pages a crypto-shred writes sit in ``-wal`` next to the older page
    images that still hold the wrapped key, and the database file keeps the old page until
    a checkpoint copies the new one over it. ``wal_checkpoint(TRUNCATE)`` does that copy and
    empties the WAL. It waits (busy timeout) for readers of older snapshots; False means it
    could not finish and the next checkpoint will. PostgreSQL: nothing to do here (dead
    tuples go at VACUUM; see docs/operations.md).
    """
    if engine.dialect.name != "sqlite":
        return True
    connection = engine.raw_connection()  # autocommit (isolation_level None): no BEGIN
    try:
        cursor = connection.cursor()
        busy, _pages, _moved = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cursor.close()
    finally:
        connection.close()
    return not busy


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str | None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except SQLAlchemyError as error:
        raise SchemaError(f"database migration failed: {type(error).__name__}") from None


def ensure_current(engine: Engine) -> None:
    """Refuse to run against a schema that is behind (or ahead of) this code."""
    try:
        current = current_revision(engine)
    except SQLAlchemyError as error:
        raise SchemaError(f"cannot reach the database: {type(error).__name__}") from None
    head = head_revision()
    if current != head:
        raise SchemaError(
            f"database schema is at {current or 'nothing'} but this phigate needs {head}: "
            "run `phigate db upgrade`"
        )
