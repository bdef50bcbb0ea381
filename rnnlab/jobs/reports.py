"""What the pool reports, applied to the jobs: progress, ends, workers that died, owners
that left. The job manager's half that runs on the pool's update thread
(rnnlab.jobs.pool.PoolEvents); the manager's state and lock are its own.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..store import RunStore
from ..updates import Update, recorded_events
from .admission import Admission
from .feed import LiveRun
from .pool import WorkerPool

log = logging.getLogger(__name__)


@dataclass
class Export:
    """A weights file a worker is making for download (JobManager.export_weights)."""

    done: threading.Event = field(default_factory=threading.Event)
    file: bytes | None = None
    error: str | None = None


class Reports:
    """Mixed into JobManager: the pool's events."""

    _lock: threading.Lock
    _queue: collections.deque[LiveRun]
    _jobs: dict[str, LiveRun]
    admission: Admission
    pool: WorkerPool
    store: RunStore
    cpu_seconds: collections.Counter[str]
    _exports: dict[int, Export]
    # The manager's own, called as it says (rnnlab.jobs.manager).
    _dispatch: Callable[[], None]
    _retire: Callable[[LiveRun], None]
    _stop: Callable[..., bool]
    _record_dequeued: Callable[[Iterable[LiveRun]], None]

    def started(self) -> None:
        with self._lock:
            self._dispatch()

    def update(self, worker: Any, update: Update) -> None:
        job = worker.jobs.get(update.run_id)
        if job is None:
            return
        job.apply(update)
        self.cpu_seconds[job.owner] += update.cpu_s
        if worker.server_records:
            self._record(job, update)
        finished = update.finished
        if finished is not None:
            with self._lock:
                job.summary, job.error = finished["summary"], finished["error"]
                job.status = finished["status"]
                worker.jobs.pop(job.run_id, None)
                self._retire(job)
                self._dispatch()

    def lost(self, jobs: dict, how: str, *, ready: bool, giving_up: bool) -> None:
        """A worker died or could not start: fail its runs (`jobs`), saying so, and every
        waiting run if no worker is left and none can start."""
        message = (
            f"the training worker process stopped unexpectedly ({how}; out of memory?). "
            "Other runs were not affected; press Train to run it again."
        )
        if giving_up and not ready:
            message = f"the training workers cannot start ({how}); the server log says why"
        with self._lock:
            orphaned = list(jobs.values())
            jobs.clear()
            if not self.pool.workers and giving_up:
                orphaned += self._queue
                self._queue.clear()
            for job in orphaned:
                job.status, job.error = "failed", message
            self._dispatch()
        if orphaned:
            failed = [job.run_id for job in orphaned]
            log.error("a worker died (%s); failed runs %s", how, failed)
        for job in orphaned:
            try:
                self.store.fail(job.run_id, message)
            except Exception:
                log.exception("could not record run %s as failed", job.run_id)
        with self._lock:  # only now: whoever waits for these runs finds the store written
            for job in orphaned:
                self._retire(job)

    def tick(self) -> None:
        """Cancel the jobs of owners that have been absent for orphan_after_s."""
        absent = set(
            self.admission.absent(lambda: {job.owner for job in self._jobs.values() if job.active})
        )
        if not absent:
            return
        reason = "its owner stopped watching (page closed)"
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.owner in absent and job.active]
            dequeued = [job for job in jobs if self._stop(job, reason)]
        self._record_dequeued(dequeued)

    def _record(self, job: LiveRun, update: Update) -> None:
        """Write what a worker that records nothing reported (a Ray actor's) to the store;
        a run whose events cannot be written is stopped as failed, saying why."""
        finished = update.finished
        try:
            for event in recorded_events(update, job.config, with_snapshot=finished is not None):
                self.store.add(job.run_id, event)
            if finished is not None:
                status, summary, error = finished["status"], finished["summary"], finished["error"]
                self.store.finish(job.run_id, status, summary, error=error)
        except Exception as error:
            log.exception("could not record run %s", job.run_id)
            if finished is None:
                with self._lock:
                    self._stop(job, f"it could not be recorded: {error}", status="failed")

    def exported(self, request: int, data: bytes | None, error: str | None) -> None:
        with self._lock:
            export = self._exports.get(request)
        if export is not None:
            export.file, export.error = data, error
            export.done.set()
