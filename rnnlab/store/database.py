"""The store's file: opening and migrating it, connections, and writes that survive faults.

The file returns the space of what is deleted (auto_vacuum = INCREMENTAL, so pruning can
give pages back a few at a time; see rnnlab.store.retention), and a commit that leaves
the write-ahead log longer than CHECKPOINT_WAL_BYTES checkpoints and truncates it.

Writes go through one connection guarded by a lock (so threads queue in Python, not in
SQLite's busy handler), each in a transaction that takes SQLite's write lock up front
(BEGIN IMMEDIATE), so that no transaction has to upgrade a read lock and fail with
"database is locked". Each reading thread gets its own read-only connection.

A write that fails for a reason that can pass (the file locked beyond the busy timeout,
the disk full, an I/O error) is tried again for WRITE_PATIENCE_S before the store gives
up with a StoreError that names the cause and the file.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .schema import MIGRATIONS, SCHEMA_VERSION

STORE_FILENAME = "runs.sqlite"
BUSY_TIMEOUT_MS = 30_000
# How long a failing write is retried, and the pauses between tries (the last repeats).
WRITE_PATIENCE_S = 60.0
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0)
# The write-ahead log is truncated to this after a checkpoint (it may grow past it between
# checkpoints, by what is written meanwhile).
JOURNAL_SIZE_LIMIT = 64 * 2**20
# A commit that leaves the log longer than this checkpoints it and truncates it: writers
# that never pause (a trained run's weights are tens of MB) keep SQLite's own checkpoints
# from ever reaching the log's end, and the log would grow without bound.
CHECKPOINT_WAL_BYTES = JOURNAL_SIZE_LIMIT // 8
# How long such a checkpoint waits for other writers and readers before it gives up.
CHECKPOINT_PATIENCE_MS = 2000
CHECKPOINT_RETRY_S = 0.01
# A write larger than this (a run's weights) waits for any other such write, in any
# process, to commit and checkpoint first: the log then holds at most one of them.
LARGE_WRITE_BYTES = 4 * 2**20
# How long a large write waits for the log to be checkpointed before it writes anyway.
LARGE_WRITE_PATIENCE_MS = 10_000

T = TypeVar("T")


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message says why and what to do."""


class RunNotFound(StoreError, KeyError):
    """No run has this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


def rnnlab_home() -> Path:
    """Where rnnlab keeps its files: $RNNLAB_HOME, or ~/.rnnlab."""
    return Path(os.environ.get("RNNLAB_HOME") or Path.home() / ".rnnlab").expanduser()


def default_store_path() -> Path:
    """$RNNLAB_HOME/runs.sqlite (default ~/.rnnlab/runs.sqlite)."""
    return rnnlab_home() / STORE_FILENAME


def retry_delay(attempt: int) -> float:
    """The pause before try number `attempt` + 1 of a failing write."""
    return RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]


def write_error(path: Path, error: Exception, tried_s: float) -> StoreError:
    return StoreError(
        f"cannot write to the run store {path}: {error} (tried for {tried_s:.0f} s); "
        "check that the disk has space and that no other program holds the file"
    )


class Database:
    """One SQLite file: a writing connection, a reading one per thread, transactions."""

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path if path is not None else default_store_path()).expanduser()
        self.path = self.path.absolute()
        started = time.monotonic()
        for attempt in itertools.count():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = self._connect()
                # Takes effect only in a new file (an old one converts with a VACUUM: prune).
                self._writer.execute("PRAGMA auto_vacuum = INCREMENTAL")
                # Switching a new file to WAL takes it whole, and SQLite does not wait for
                # that: processes opening one store at once retry for a while.
                self._writer.execute("PRAGMA journal_mode = WAL")
                self._migrate()
                break
            except (sqlite3.Error, OSError) as error:
                locked = isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
                if not locked or time.monotonic() - started > BUSY_TIMEOUT_MS / 1000:
                    raise StoreError(f"cannot open the run store {self.path}: {error}") from error
                with contextlib.suppress(Exception):
                    self._writer.close()
                time.sleep(retry_delay(attempt))
        self._write_lock = threading.RLock()
        self._readers = threading.local()
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self._large_write_path = self.path.with_name(self.path.name + "-large-write.lock")

    def _connect(self, *, read_only: bool = False) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        # Some builds (Debian's) zero every deleted page: dropping a run's 30 MB of weights
        # then wrote 30 MB to the log. FAST zeroes what is rewritten anyway, nothing more.
        connection.execute("PRAGMA secure_delete = FAST")
        if read_only:
            connection.execute("PRAGMA query_only = ON")
        return connection

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION, one migration at a time, in one transaction."""

        def version() -> int:
            return self._writer.execute("PRAGMA user_version").fetchone()[0]

        if version() == SCHEMA_VERSION:
            return
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            current = version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer rnnlab (schema {current}; this "
                    f"version reads up to {SCHEMA_VERSION}); upgrade rnnlab to open it"
                )
            for target in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](self._writer)
            self._writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._writer.execute("COMMIT")
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        """The file's PRAGMA user_version: which of MIGRATIONS it has had."""
        return self._reader().execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connections (RunStore.close writes what is buffered first)."""
        with self._write_lock:
            self._writer.close()
        reader = getattr(self._readers, "connection", None)
        if reader is not None:
            reader.close()
            del self._readers.connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed if the block ends, rolled back if it raises."""
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
                self._writer.execute("COMMIT")
            except BaseException:
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise
            self._keep_wal_short()

    def _keep_wal_short(self) -> None:
        """After a commit: checkpoint and truncate a log longer than CHECKPOINT_WAL_BYTES."""
        if self.wal_bytes() > CHECKPOINT_WAL_BYTES:
            self.checkpoint()

    @contextlib.contextmanager
    def _one_large_write(self) -> Iterator[None]:
        """While inside, no other large write (see LARGE_WRITE_BYTES) of this file runs,
        in this process or another; the log is checkpointed before the next one starts."""
        try:
            import fcntl
        except ImportError:  # Windows: large writes are not kept apart
            yield
            return
        descriptor = os.open(self._large_write_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            if self.wal_bytes() > CHECKPOINT_WAL_BYTES:
                self.checkpoint(LARGE_WRITE_PATIENCE_MS)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def used_bytes(self) -> int:
        """The bytes of the file's pages that hold data (the rest are free pages)."""
        reader = self._reader()
        pages = reader.execute("PRAGMA page_count").fetchone()[0]
        free = reader.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * reader.execute("PRAGMA page_size").fetchone()[0]

    def wal_bytes(self) -> int:
        """The size of the write-ahead log file (0 if there is none)."""
        try:
            return os.stat(self._wal_path).st_size
        except OSError:
            return 0

    def checkpoint(self, patience_ms: int = CHECKPOINT_PATIENCE_MS) -> bool:
        """Copy the write-ahead log into the file and truncate it; False if other writers
        or readers kept part of it for longer than `patience_ms` (meanwhile it holds new
        writers off). Another connection's checkpoint (SQLite's own, after a commit)
        refuses ours at once, so it is tried again until then."""
        deadline = time.monotonic() + patience_ms / 1000
        with self._write_lock:
            try:
                while True:
                    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                    self._writer.execute(f"PRAGMA busy_timeout = {left_ms}")
                    busy = self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if not busy:
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(CHECKPOINT_RETRY_S)
            except sqlite3.OperationalError:
                return False
            finally:
                self._writer.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _write(
        self, work: Callable[[sqlite3.Connection], T], *, patience_s: float | None = None
    ) -> T:
        """work(db) in one transaction, tried again while it fails for a passing reason.

        Gives up after `patience_s` (default WRITE_PATIENCE_S) with a StoreError naming
        the cause and the file. Errors that retrying cannot mend are raised as they are.
        """
        patience_s = WRITE_PATIENCE_S if patience_s is None else patience_s
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                with self._transaction() as db:
                    return work(db)
            except sqlite3.OperationalError as error:
                tried = time.monotonic() - started
                delay = retry_delay(attempt)
                if tried + delay > patience_s:
                    raise write_error(self.path, error, tried) from error
                time.sleep(delay)
                attempt += 1

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = self._connect(read_only=True)
        return connection


def insert(db: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> None:
    names, marks = ", ".join(row), ", ".join("?" * len(row))
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))


def update_run(db: sqlite3.Connection, run_id: str, **changes: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*changes.values(), run_id))


def json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
