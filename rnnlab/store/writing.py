"""Recording runs: new runs, the events of train() in batches, final statuses, deletions.

A run's Weights (the .pt file of its trained network) wait in memory with its last rows
and are written with its final status, in the same transaction; large ones one at a time,
and not at all when they would take the file past its disk budget (rnnlab.store.retention).

Step and evaluation rows are buffered and written in batches, so that recording costs
next to nothing per training step. A batch that cannot be written for a passing reason
(see rnnlab.store.database) stays in memory and is tried again, with growing pauses,
while training goes on; only a failure that lasts WRITE_PATIENCE_S ends the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import RunConfig
from ..values import finite_or_none
from .database import (
    LARGE_WRITE_BYTES,
    WRITE_PATIENCE_S,
    RunNotFound,
    StoreError,
    insert,
    retry_delay,
    update_run,
    write_error,
)
from .liveness import Liveness
from .retention import weights_fit
from .schema import ACTIVE_STATUSES, FINISHED_STATUSES

# Step rows wait in memory until there are this many, or this much time has passed.
FLUSH_ROWS = 512
FLUSH_SECONDS = 0.25
# A snapshot can be hundreds of KB of JSON (tens of ms to encode), and pages read live ones
# from memory; the store writes the newest at most this often, and always at the end.
SNAPSHOT_SECONDS = 30.0


class _Buffer:
    """Rows of one run waiting to be written, and how writing them has been going."""

    __slots__ = (
        "steps",
        "evaluations",
        "snapshot",
        "snapshot_written_at",
        "weights",
        "flushed_at",
        "step",
        "failing_since",
        "failures",
        "retry_at",
    )

    def __init__(self) -> None:
        self.steps: list[tuple] = []
        self.evaluations: list[tuple] = []
        self.snapshot: tuple[int, bytes] | None = None  # (step, JSON) of a Snapshot event
        self.weights: tuple[int, bytes] | None = None  # (step, .pt file) of a Weights event
        self.flushed_at = self.snapshot_written_at = time.monotonic()
        self.step = 0
        self.failing_since: float | None = None  # when the first failed write was tried
        self.failures = 0
        self.retry_at = 0.0

    def due(self, now: float) -> bool:
        full = len(self.steps) >= FLUSH_ROWS or now - self.flushed_at >= FLUSH_SECONDS
        return full and now >= self.retry_at

    def drop(
        self,
        steps: int,
        evaluations: int,
        snapshot: tuple[int, bytes] | None,
        weights: tuple[int, bytes] | None,
    ) -> None:
        """Forget what was written (rows added meanwhile stay)."""
        now = time.monotonic()
        del self.steps[:steps]
        del self.evaluations[:evaluations]
        if weights is not None and self.weights is weights:
            self.weights = None
        if snapshot is not None:
            self.snapshot_written_at = now
            if self.snapshot is snapshot:
                self.snapshot = None
        self.flushed_at = now
        self.failing_since, self.failures, self.retry_at = None, 0, 0.0


class Writing(Liveness):
    """RunStore's writing part; each run's events should come from one thread at a time."""

    def __init__(self, path=None):
        super().__init__(path)
        self._buffers: dict[str, _Buffer] = {}
        self._buffers_lock = threading.Lock()
        self.host = socket.gethostname()

    def create_run(
        self,
        config: RunConfig,
        *,
        owner: str = "",
        sweep_id: str | None = None,
        study: str | None = None,
        trial: int | None = None,
        status: str = "queued",
    ) -> str:
        """Record a new run and return its id. `status` is 'queued' or 'running'; a trial
        of a study (rnnlab.tune) is recorded with the study's name and its number."""
        if status not in ACTIVE_STATUSES:
            raise ValueError(f"a new run is queued or running, not {status!r}")
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
            "process": self._process_token(),
        }
        if study is not None:
            row.update(study=study, trial=trial)
        self._write(lambda db: insert(db, "runs", row))
        return run_id

    def add(self, run_id: str, event: Any) -> None:
        """Record one event of train(): Started, Step, Evaluation, Snapshot, Weights or Finished.

        Steps, evaluations, snapshots and weights are buffered and written in batches;
        Started and Finished are written at once. Events of other kinds are ignored.
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
        changes = dict(
            status="running",
            info=json.dumps(finite_or_none(info)),
            started_at=now,
            updated_at=now,
            pid=os.getpid(),
            host=self.host,
            process=self._process_token(),
        )
        self._write(lambda db: update_run(db, run_id, **changes))

    def _add_step(self, run_id: str, event: Any) -> None:
        buffer = self._buffer(run_id)
        buffer.steps.append((run_id, event.step, event.loss, event.grad_norm, event.elapsed_s))
        buffer.step = event.step
        if buffer.due(time.monotonic()):
            self._try_flush(run_id, buffer)

    def _add_evaluation(self, run_id: str, event: Any) -> None:
        buffer = self._buffer(run_id)
        buffer.evaluations.append(
            (run_id, event.step, event.loss, event.metric, bool(event.solved), event.elapsed_s)
        )

    def _add_snapshot(self, run_id: str, event: Any) -> None:
        self._buffer(run_id).snapshot = (event.step, event.to_json())  # encoded once

    def _add_weights(self, run_id: str, event: Any) -> None:
        self._buffer(run_id).weights = (event.step, event.data)

    def _add_finished(self, run_id: str, event: Any) -> None:
        summary = event.summary
        status = summary.get("status", "completed")
        self.finish(run_id, status if status in FINISHED_STATUSES else "completed", summary)

    _EVENT_HANDLERS: dict[str, Callable[[Writing, str, Any], None]] = {
        "started": _add_started,
        "step": _add_step,
        "eval": _add_evaluation,
        "snapshot": _add_snapshot,
        "weights": _add_weights,
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
            written = self._write(lambda db: self._write_buffer(db, run_id, buffer, final=False))
            buffer.drop(*written)

    def _try_flush(self, run_id: str, buffer: _Buffer) -> None:
        """Write the buffer once; if that fails for a passing reason, keep the rows and
        try again later, until the failure has lasted WRITE_PATIENCE_S (then StoreError)."""
        try:
            with self._transaction() as db:
                written = self._write_buffer(db, run_id, buffer, final=False)
        except sqlite3.OperationalError as error:
            now = time.monotonic()
            if buffer.failing_since is None:
                buffer.failing_since = now
            tried = now - buffer.failing_since
            if tried >= WRITE_PATIENCE_S:
                raise write_error(self.path, error, tried) from error
            buffer.retry_at = now + retry_delay(buffer.failures)
            buffer.failures += 1
            return
        buffer.drop(*written)

    def _write_buffer(
        self, db: sqlite3.Connection, run_id: str, buffer: _Buffer, *, final: bool
    ) -> tuple[int, int, tuple[int, bytes] | None, tuple[int, bytes] | None]:
        """Write the buffered rows in db's transaction; returns what was written, for
        _Buffer.drop once the transaction has committed."""
        steps, evaluations = list(buffer.steps), list(buffer.evaluations)
        if steps:
            db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?)", steps)
        if evaluations:
            db.executemany(
                "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?)", evaluations
            )
        snapshot = buffer.snapshot
        due = time.monotonic() - buffer.snapshot_written_at >= SNAPSHOT_SECONDS
        if snapshot is not None and (final or due):
            db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)",
                (run_id, snapshot[0], snapshot[1].decode(), time.time()),
            )
        else:
            snapshot = None
        weights = buffer.weights
        if weights is not None:
            db.execute(
                "INSERT OR REPLACE INTO weights VALUES (?, ?, ?, ?)",
                (run_id, weights[0], weights[1], time.time()),
            )
        if steps or evaluations:
            db.execute(
                "UPDATE runs SET step = max(step, ?), updated_at = ? WHERE id = ?",
                (buffer.step, time.time(), run_id),
            )
        return len(steps), len(evaluations), snapshot, weights

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
        buffer = self._buffers.get(run_id)
        now = time.time()
        changes: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now}
        if summary is not None:
            changes["summary"] = json.dumps(finite_or_none(summary))
        if error is not None:
            changes["error"] = error

        def work(db: sqlite3.Connection) -> None:
            if buffer is not None:
                self._write_buffer(db, run_id, buffer, final=True)
            update_run(db, run_id, **changes)

        weights = None if buffer is None else buffer.weights
        large = weights is not None and len(weights[1]) > LARGE_WRITE_BYTES
        with self._one_large_write() if large else contextlib.nullcontext():
            if large and not weights_fit(self, len(weights[1])):
                buffer.weights = None  # the file is at its budget, and pruning lags behind
            self._write(work)
        with self._buffers_lock:
            self._buffers.pop(run_id, None)

    def fail(self, run_id: str, error: str) -> None:
        """The run raised: keep its history so far, mark it failed with the message."""
        self.finish(run_id, "failed", error=error)

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run with its history, snapshot and weights; an active one must
        stop first."""

        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            if row[0] in ACTIVE_STATUSES:
                raise StoreError(f"run {run_id} is {row[0]}; stop it before deleting it")
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

        self._write(work)
