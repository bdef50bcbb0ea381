"""The run store: every run's config, status, metric history and latest snapshot, in SQLite.

    store = RunStore()                       # $RNNLAB_HOME/runs.sqlite, default ~/.rnnlab
    run_id = store.create_run(config, owner="cli", status="running")
    for event in train(config):
        store.add(run_id, event)
    store.history(run_id)                    # pandas DataFrame, one row per step

Many threads and processes may share one file. It runs in WAL mode with a busy timeout,
every write takes SQLite's write lock up front (BEGIN IMMEDIATE) so that no transaction
has to upgrade a read lock and fail with "database is locked", and step rows are buffered
and written in batches, so that recording costs next to nothing per training step.

A process that records active runs holds an advisory lock on a file named after it in
`runs.alive/`; the operating system drops the lock when the process dies, however it dies.
Opening a store (and listing runs) marks the `queued` or `running` runs of processes that
no longer hold their lock as `interrupted`: never silently lost, never shown as running.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .config import RunConfig

STATUSES = ("queued", "running", "completed", "diverged", "stopped", "interrupted", "failed")
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)

SCHEMA_VERSION = 1
STORE_FILENAME = "runs.sqlite"
BUSY_TIMEOUT_MS = 30_000
# Step rows wait in memory until there are this many, or this much time has passed.
FLUSH_ROWS = 512
FLUSH_SECONDS = 0.25
# A snapshot can be hundreds of KB of JSON (tens of ms to encode), and pages read live ones
# from memory; the store writes the newest at most this often, and always at the end.
SNAPSHOT_SECONDS = 30.0
# Listing runs looks for dead processes' runs at most this often.
RECOVER_SECONDS = 2.0

STEP_COLUMNS = ("step", "loss", "grad_norm", "elapsed_s")
EVALUATION_COLUMNS = ("step", "loss", "metric", "solved", "elapsed_s")


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


@dataclass(frozen=True)
class RunRecord:
    """One run as the store holds it (history and snapshot are read separately)."""

    id: str
    status: str
    owner: str
    sweep_id: str | None
    config: dict[str, Any]
    created_at: float  # seconds since the epoch
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    step: int = 0  # the latest step recorded
    info: dict[str, Any] | None = None  # the Started event: device, parameters, baseline, ...
    summary: dict[str, Any] | None = None  # the Finished event's summary
    error: str | None = None
    pid: int | None = None
    host: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RUN_FIELDS = tuple(f.name for f in fields(RunRecord))
_JSON_FIELDS = ("config", "info", "summary")


def _schema_v1(connection: sqlite3.Connection) -> None:
    """Runs, their step and evaluation history, and each run's latest snapshot."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    # One statement at a time: executescript() would commit the migration's transaction.
    schema = f"""
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ({statuses})),
            owner TEXT NOT NULL DEFAULT '',
            sweep_id TEXT,
            config TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            step INTEGER NOT NULL DEFAULT 0,
            info TEXT,
            summary TEXT,
            error TEXT,
            pid INTEGER,
            host TEXT,
            process TEXT
        );
        CREATE INDEX runs_by_created ON runs (created_at);
        CREATE INDEX runs_by_status ON runs (status);
        CREATE INDEX runs_by_sweep ON runs (sweep_id);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            loss REAL,
            grad_norm REAL,
            elapsed_s REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID;
        CREATE TABLE evaluations (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            loss REAL,
            metric REAL,
            solved INTEGER NOT NULL,
            elapsed_s REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID;
        CREATE TABLE snapshots (
            run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """
    for statement in schema.split(";"):
        if statement.strip():
            connection.execute(statement)


# Schema version -> the change that brings a file from the version before it to this one.
# To change the schema: add a function here, raise SCHEMA_VERSION, never edit an old one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _schema_v1}


class _ProcessLock:
    """This process's claim to be alive, as an advisory lock on `<alive dir>/<token>.lock`.

    The lock file is created under a temporary name, locked, then renamed into place, so a
    file with the final name is always locked while its process lives.
    """

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(8)
        temporary = directory / f".{self.token}.tmp"
        self.fd = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self.fd):
            os.close(self.fd)
            raise StoreError(f"cannot lock {temporary}")
        os.replace(temporary, directory / f"{self.token}.lock")


_process_locks: dict[Path, _ProcessLock] = {}
_process_locks_guard = threading.Lock()


def _process_lock(directory: Path) -> _ProcessLock:
    with _process_locks_guard:
        lock = _process_locks.get(directory)
        if lock is None:
            lock = _process_locks[directory] = _ProcessLock(directory)
        return lock


def _forget_process_locks() -> None:
    """In a forked child: the parent's locks are the parent's, not ours."""
    for lock in _process_locks.values():
        with contextlib.suppress(OSError):
            os.close(lock.fd)
    _process_locks.clear()


@atexit.register
def _release_process_locks() -> None:
    """On a clean exit, remove our lock files (a killed process leaves them to be reaped)."""
    for directory, lock in list(_process_locks.items()):
        with contextlib.suppress(OSError):
            os.unlink(directory / f"{lock.token}.lock")
        with contextlib.suppress(OSError):
            os.close(lock.fd)
    _process_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_process_locks)


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on fd without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _finite(value: Any) -> Any:
    """NaN and infinities become None, everywhere in a JSON-like value."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _Buffer:
    """Rows of one run waiting to be written."""

    __slots__ = ("steps", "evaluations", "snapshot", "snapshot_written_at", "flushed_at", "step")

    def __init__(self) -> None:
        self.steps: list[tuple] = []
        self.evaluations: list[tuple] = []
        self.snapshot: dict[str, Any] | None = None
        self.flushed_at = self.snapshot_written_at = time.monotonic()
        self.step = 0


class RunStore:
    """Runs, their metric history and latest snapshot, in one SQLite file; thread-safe.

    Writes go through one connection guarded by a lock (so threads queue in Python, not in
    SQLite's busy handler); each reading thread gets its own read-only connection, closed
    when the thread ends, so the dashboard can read while workers write. Each run's events
    should come from one thread at a time (its worker), as train() produces them.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path if path is not None else default_store_path()).expanduser()
        self.path = self.path.absolute()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            self._writer.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot open the run store {self.path}: {error}") from error
        self._write_lock = threading.RLock()
        self._readers = threading.local()
        self._buffers: dict[str, _Buffer] = {}
        self._buffers_lock = threading.Lock()
        self._alive_dir = self.path.with_name(self.path.stem + ".alive")
        self._recovered_at = 0.0
        self.host = socket.gethostname()
        self.recover_interrupted()

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
        """Write what is buffered and close this thread's connections."""
        self.flush()
        with self._write_lock:
            self._writer.close()
        reader = getattr(self._readers, "connection", None)
        if reader is not None:
            reader.close()
            del self._readers.connection

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = self._connect(read_only=True)
        return connection

    def create_run(
        self,
        config: RunConfig,
        *,
        owner: str = "",
        sweep_id: str | None = None,
        status: str = "queued",
    ) -> str:
        """Record a new run and return its id. `status` is 'queued' or 'running'."""
        if status not in ACTIVE_STATUSES:
            raise ValueError(f"a new run is queued or running, not {status!r}")
        process = _process_lock(self._alive_dir).token
        run_id = secrets.token_hex(6)
        now = time.time()
        row = {
            "id": run_id,
            "status": status,
            "owner": owner,
            "sweep_id": sweep_id,
            "config": json.dumps(config.to_dict()),
            "created_at": now,
            "updated_at": now,
            "started_at": now if status == "running" else None,
            "pid": os.getpid(),
            "host": self.host,
            "process": process,
        }
        with self._transaction() as db:
            _insert(db, "runs", row)
        return run_id

    def add(self, run_id: str, event: Any) -> None:
        """Record one event of train(): Started, Step, Evaluation, Snapshot or Finished.

        Steps, evaluations and snapshots are buffered and written in batches; Started and
        Finished are written at once. Events of other kinds are ignored.
        """
        handler = self._EVENT_HANDLERS.get(event.kind)
        if handler is not None:
            handler(self, run_id, event)

    def _buffer(self, run_id: str) -> _Buffer:
        buffer = self._buffers.get(run_id)
        if buffer is None:
            with self._buffers_lock:
                buffer = self._buffers.setdefault(run_id, _Buffer())
        return buffer

    def _add_started(self, run_id: str, event: Any) -> None:
        info = {k: v for k, v in event.to_dict().items() if k not in ("kind", "config")}
        now = time.time()
        with self._transaction() as db:
            _update_run(
                db,
                run_id,
                status="running",
                info=json.dumps(_finite(info)),
                started_at=now,
                updated_at=now,
                pid=os.getpid(),
                host=self.host,
                process=_process_lock(self._alive_dir).token,
            )

    def _add_step(self, run_id: str, event: Any) -> None:
        buffer = self._buffer(run_id)
        buffer.steps.append((run_id, event.step, event.loss, event.grad_norm, event.elapsed_s))
        buffer.step = event.step
        if len(buffer.steps) >= FLUSH_ROWS or time.monotonic() - buffer.flushed_at >= FLUSH_SECONDS:
            self.flush(run_id)

    def _add_evaluation(self, run_id: str, event: Any) -> None:
        buffer = self._buffer(run_id)
        buffer.evaluations.append(
            (run_id, event.step, event.loss, event.metric, bool(event.solved), event.elapsed_s)
        )

    def _add_snapshot(self, run_id: str, event: Any) -> None:
        self._buffer(run_id).snapshot = event.to_dict()

    def _add_finished(self, run_id: str, event: Any) -> None:
        summary = event.summary
        status = summary.get("status", "completed")
        self.finish(run_id, status if status in FINISHED_STATUSES else "completed", summary)

    _EVENT_HANDLERS: dict[str, Callable[[RunStore, str, Any], None]] = {
        "started": _add_started,
        "step": _add_step,
        "eval": _add_evaluation,
        "snapshot": _add_snapshot,
        "finished": _add_finished,
    }

    def flush(self, run_id: str | None = None) -> None:
        """Write the buffered rows of one run (or of every run) now."""
        if run_id is None:
            for each in list(self._buffers):
                self.flush(each)
            return
        buffer = self._buffers.get(run_id)
        if buffer is not None:
            with self._transaction() as db:
                self._write_buffer(db, run_id, buffer, final=False)

    def _write_buffer(
        self, db: sqlite3.Connection, run_id: str, buffer: _Buffer, *, final: bool
    ) -> None:
        now = time.monotonic()
        steps, buffer.steps = buffer.steps, []
        evaluations, buffer.evaluations = buffer.evaluations, []
        if steps:
            db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)", steps)
        if evaluations:
            db.executemany(
                "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?)", evaluations
            )
        snapshot = buffer.snapshot
        if snapshot is not None and (final or now - buffer.snapshot_written_at >= SNAPSHOT_SECONDS):
            db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                (run_id, snapshot.get("step"), json.dumps(snapshot), time.time()),
            )
            buffer.snapshot, buffer.snapshot_written_at = None, now
        if steps or evaluations:
            db.execute(
                "UPDATE runs SET step = max(step, ?), updated_at = ? WHERE id = ?",
                (buffer.step, time.time(), run_id),
            )
        buffer.flushed_at = now

    def finish(
        self,
        run_id: str,
        status: str,
        summary: dict[str, Any] | None = None,
        *,
        error: str | None = None,
    ) -> None:
        """Write what is buffered and give the run its final status (and summary or error)."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"a run ends as one of {', '.join(FINISHED_STATUSES)}, not {status!r}")
        with self._buffers_lock:
            buffer = self._buffers.pop(run_id, None)
        now = time.time()
        with self._transaction() as db:
            if buffer is not None:
                self._write_buffer(db, run_id, buffer, final=True)
            changes: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now}
            if summary is not None:
                changes["summary"] = json.dumps(_finite(summary))
            if error is not None:
                changes["error"] = error
            _update_run(db, run_id, **changes)

    def fail(self, run_id: str, error: str) -> None:
        """The run raised: keep its history so far, mark it failed with the message."""
        self.finish(run_id, "failed", error=error)

    def recover_interrupted(self) -> list[str]:
        """Mark the queued and running runs of processes that died as interrupted.

        Returns the ids it marked. Called on opening the store and (at most every few
        seconds) when listing runs.
        """
        self._recovered_at = time.monotonic()
        own = _process_locks.get(self._alive_dir)
        rows = (
            self._reader()
            .execute("SELECT DISTINCT process FROM runs WHERE status IN ('queued', 'running')")
            .fetchall()
        )
        dead: dict[str | None, int | None] = {}
        for (token,) in rows:
            if own is not None and token == own.token:
                continue
            fd = self._open_alive_file(token)
            if fd is None or _try_lock(fd):
                dead[token] = fd
            else:
                os.close(fd)
        marked: list[str] = []
        if dead:
            now = time.time()
            with self._transaction() as db:
                for token in dead:
                    marked += [
                        run_id
                        for (run_id,) in db.execute(
                            "SELECT id FROM runs WHERE process IS ?"
                            " AND status IN ('queued', 'running')",
                            (token,),
                        )
                    ]
                    db.execute(
                        "UPDATE runs SET status = 'interrupted', finished_at = ?, updated_at = ?,"
                        " error = 'the process running it stopped (killed, crashed or shut"
                        " down)' WHERE process IS ? AND status IN ('queued', 'running')",
                        (now, now, token),
                    )
        for token, fd in dead.items():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._alive_dir / f"{token}.lock")
                os.close(fd)
        self._remove_stale_alive_files()
        return marked

    def _open_alive_file(self, token: str | None) -> int | None:
        if not token or not token.isalnum():
            return None
        try:
            return os.open(self._alive_dir / f"{token}.lock", os.O_RDWR)
        except OSError:
            return None

    def _remove_stale_alive_files(self) -> None:
        """Lock files of dead processes that left no active runs (e.g. only read)."""
        own = _process_locks.get(self._alive_dir)
        try:
            names = [p for p in self._alive_dir.iterdir() if p.suffix == ".lock"]
        except OSError:
            return
        for path in names:
            if own is not None and path.stem == own.token:
                continue
            fd = self._open_alive_file(path.stem)
            if fd is None:
                continue
            if _try_lock(fd):
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; RunNotFound if there is none."""
        row = (
            self._reader()
            .execute(f"SELECT {', '.join(_RUN_FIELDS)} FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return _record(row)

    def resolve_id(self, prefix: str) -> str:
        """The id of the one run whose id starts with `prefix` (as git does with commits)."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix.lower()):
            raise RunNotFound(f"no run with id {prefix!r}")
        rows = (
            self._reader()
            .execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 2",
                (prefix.lower(), prefix.lower() + "g"),
            )
            .fetchall()
        )
        if not rows:
            raise RunNotFound(f"no run with id {prefix!r}")
        if len(rows) > 1:
            raise RunNotFound(f"{prefix!r} matches several runs; give more of the id")
        return rows[0][0]

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        owner: str | None = None,
        sweep_id: str | None = None,
        config: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by status, owner, sweep and config values.

        `config={"task": "adding", "cell": "lstm"}` keeps runs whose config has those values.
        """
        if time.monotonic() - self._recovered_at >= RECOVER_SECONDS:
            self.recover_interrupted()
        where, parameters = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            parameters += statuses
        if owner is not None:
            where.append("owner = ?")
            parameters.append(owner)
        if sweep_id is not None:
            where.append("sweep_id = ?")
            parameters.append(sweep_id)
        known = {f.name for f in fields(RunConfig)}
        for name, value in (config or {}).items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            where.append("json_extract(config, ?) = ?")
            parameters += [f"$.{name}", value]
        query = f"SELECT {', '.join(_RUN_FIELDS)} FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, id"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(int(limit))
        return [_record(row) for row in self._reader().execute(query, parameters)]

    def runs_frame(self, **filters: Any) -> pd.DataFrame:
        """list_runs(**filters) as a table: one row per run, config and summary flattened."""
        rows = []
        for run in self.list_runs(**filters):
            summary = run.summary or {}
            rows.append(
                {
                    "id": run.id,
                    "status": run.status,
                    "owner": run.owner,
                    "sweep_id": run.sweep_id,
                    "created_at": run.created_at,
                    "finished_at": run.finished_at,
                    **run.config,
                    "step": run.step,
                    "final_loss": summary.get("final_loss"),
                    "best_loss": summary.get("best_loss"),
                    "metric_name": summary.get("metric_name"),
                    "metric": summary.get("metric"),
                    "solved": summary.get("solved"),
                    "solved_at_step": summary.get("solved_at_step"),
                    "wall_s": summary.get("wall_s"),
                    "steps_per_s": summary.get("steps_per_s"),
                }
            )
        frame = pd.DataFrame(rows)
        for column in ("created_at", "finished_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def history(self, run_id: str) -> pd.DataFrame:
        """Every recorded training step: step, loss, grad_norm, elapsed_s."""
        rows = (
            self._reader()
            .execute(
                "SELECT step, loss, grad_norm, elapsed_s FROM steps WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
            .fetchall()
        )
        return pd.DataFrame.from_records(rows, columns=list(STEP_COLUMNS)).astype(
            {"step": "int64", "loss": "float64", "grad_norm": "float64", "elapsed_s": "float64"}
        )

    def evaluations(self, run_id: str) -> pd.DataFrame:
        """Every held-out evaluation: step, loss, metric, solved, elapsed_s."""
        rows = (
            self._reader()
            .execute(
                "SELECT step, loss, metric, solved, elapsed_s FROM evaluations"
                " WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
            .fetchall()
        )
        return pd.DataFrame.from_records(rows, columns=list(EVALUATION_COLUMNS)).astype(
            {
                "step": "int64",
                "loss": "float64",
                "metric": "float64",
                "solved": "bool",
                "elapsed_s": "float64",
            }
        )

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        """The latest snapshot recorded for the run, or None."""
        row = (
            self._reader()
            .execute("SELECT data FROM snapshots WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    def export_run(self, run_id: str, format: str = "json") -> str:
        """The run as text: 'json' (everything; import_run reads it back) or 'csv' (history).

        The CSV has one row per step, with the held-out loss, metric and solved flag on the
        steps that were evaluated; NaN and infinities are written as empty fields / null.
        """
        if format not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
        return EXPORT_FORMATS[format](self, run_id)

    def _export_json(self, run_id: str) -> str:
        record = self.get_run(run_id)
        history, evaluations = self.history(run_id), self.evaluations(run_id)
        document = {
            "rnnlab_run": SCHEMA_VERSION,
            "run": record.to_dict(),
            "steps": {c: history[c].tolist() for c in STEP_COLUMNS},
            "evaluations": {c: evaluations[c].tolist() for c in EVALUATION_COLUMNS},
            "snapshot": self.snapshot(run_id),
        }
        return json.dumps(_finite(document), allow_nan=False)

    def _export_csv(self, run_id: str) -> str:
        self.get_run(run_id)
        evaluations = self.evaluations(run_id).drop(columns="elapsed_s")
        evaluations.columns = ["step", "eval_loss", "eval_metric", "eval_solved"]
        table = self.history(run_id).merge(evaluations, on="step", how="outer")
        text = io.StringIO()
        table.to_csv(text, index=False)
        return text.getvalue()

    def import_run(self, document: str | Mapping[str, Any]) -> str:
        """Add a run exported with export_run(..., 'json'); returns its id (kept if free)."""
        data = json.loads(document) if isinstance(document, str) else document
        if not isinstance(data, Mapping) or "run" not in data:
            raise StoreError("not an rnnlab run export (no 'run' object)")
        run = dict(data["run"])
        run_id = str(run.get("id") or "")
        if not run_id or self._exists(run_id):
            run_id = secrets.token_hex(6)
        status = run.get("status")
        if status in ACTIVE_STATUSES:
            status = "interrupted"
        if status not in STATUSES:
            raise StoreError(f"the export has an unknown status {status!r}")
        steps = data.get("steps") or {}
        evaluations = data.get("evaluations") or {}
        now = time.time()
        row = {
            "id": run_id,
            "status": status,
            "owner": run.get("owner") or "",
            "sweep_id": run.get("sweep_id"),
            "config": json.dumps(run.get("config") or {}),
            "created_at": run.get("created_at") or now,
            "updated_at": run.get("updated_at") or now,
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
            "step": run.get("step") or 0,
            "info": None if run.get("info") is None else json.dumps(run["info"]),
            "summary": None if run.get("summary") is None else json.dumps(run["summary"]),
            "error": run.get("error"),
            "pid": run.get("pid"),
            "host": run.get("host"),
        }
        with self._transaction() as db:
            _insert(db, "runs", row)
            db.executemany(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?)",
                ((run_id, *row) for row in _rows(steps, STEP_COLUMNS)),
            )
            db.executemany(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)",
                ((run_id, *row) for row in _rows(evaluations, EVALUATION_COLUMNS)),
            )
            snapshot = data.get("snapshot")
            if snapshot is not None:
                db.execute(
                    "INSERT INTO snapshots VALUES (?, ?, ?, ?)",
                    (run_id, snapshot.get("step"), json.dumps(snapshot), now),
                )
        return run_id

    def _exists(self, run_id: str) -> bool:
        return (
            self._reader().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
            is not None
        )

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run with its history and snapshot; an active one must stop first."""
        with self._transaction() as db:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            if row[0] in ACTIVE_STATUSES:
                raise StoreError(f"run {run_id} is {row[0]}; stop it before deleting it")
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


EXPORT_FORMATS: dict[str, Callable[[RunStore, str], str]] = {
    "json": RunStore._export_json,
    "csv": RunStore._export_csv,
}


def _insert(db: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> None:
    names, marks = ", ".join(row), ", ".join("?" * len(row))
    db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))


def _update_run(db: sqlite3.Connection, run_id: str, **changes: Any) -> None:
    assignments = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*changes.values(), run_id))


def _rows(columns: Mapping[str, list], names: tuple[str, ...]) -> Iterator[tuple]:
    """{'step': [1, 2], 'loss': [...]} -> (1, loss1), (2, loss2): columns back into rows."""
    return zip(*(columns.get(name, []) for name in names), strict=True)


def _record(row: tuple) -> RunRecord:
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = _json_or_none(values[name])
    return RunRecord(**values)


_default_stores: dict[Path, RunStore] = {}
_default_stores_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> RunStore:
    """The process's shared RunStore for `path` (default $RNNLAB_HOME/runs.sqlite)."""
    resolved = Path(path if path is not None else default_store_path()).expanduser().absolute()
    with _default_stores_lock:
        store = _default_stores.get(resolved)
        if store is None:
            store = _default_stores[resolved] = RunStore(resolved)
        return store
