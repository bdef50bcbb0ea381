"""The job manager: one bounded pool of training workers per process, shared by everyone.

    manager = get_manager()
    run_id = manager.submit(config, owner=session_id)   # QueueFull if the owner has too many
    manager.heartbeat(session_id)                       # on every poll of the page
    manager.progress(run_id)                            # Progress: status, step, loss, ETA, ...
    manager.cancel(run_id, owner=session_id)
    manager.queue()                                     # what runs and what waits, in order

Jobs wait in one first-in-first-out queue and run on a fixed number of worker threads
(`RNNLAB_WORKERS`, default min(2, cores)). PyTorch releases the GIL inside its kernels, so
threads train in parallel; each worker gets cores // workers torch threads so the pool
does not oversubscribe the machine. Workers never touch the UI: they write each run to
the store and keep a small in-memory Progress that readers poll cheaply from any thread.

Room rules: an owner (a browser session) may have at most `max_queued_per_owner` jobs
waiting, and an owner that has sent a heartbeat and then goes silent for
`orphan_after_s` (a closed tab) loses its waiting and running jobs.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .config import RunConfig
from .store import ACTIVE_STATUSES, RunNotFound, RunStore, open_store
from .train import train

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED_PER_OWNER = 4
DEFAULT_ORPHAN_AFTER_S = 60.0
# Finished jobs stay in memory this long so a page's last poll still sees the final state.
KEEP_FINISHED = 1000
# Workers look for a silent owner this often while training.
ORPHAN_CHECK_S = 0.5
# Seconds between the Snapshot events a live run sends to its page.
SNAPSHOT_EVERY_S = 0.5
# steps/s is measured over windows of at least this length.
RATE_WINDOW_S = 0.5


class JobError(Exception):
    """The manager refused a request; the message is written for the person who made it."""


class QueueFull(JobError):
    """This owner already has as many jobs waiting as one owner may."""


def default_workers() -> int:
    """RNNLAB_WORKERS if set, else min(2, cores)."""
    configured = os.environ.get("RNNLAB_WORKERS", "").strip()
    if configured:
        try:
            workers = int(configured)
        except ValueError:
            raise ValueError(f"RNNLAB_WORKERS must be a whole number, got {configured!r}") from None
        if workers < 1:
            raise ValueError(f"RNNLAB_WORKERS must be at least 1, got {workers}")
        return workers
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class Progress:
    """What a page shows about one job; a copy, safe to keep and to read from any thread."""

    run_id: str
    owner: str
    status: str  # queued, running, completed, diverged, stopped, interrupted, failed
    config: dict[str, Any]
    step: int = 0
    steps: int = 0
    loss: float | None = None  # latest training loss
    held_out_loss: float | None = None  # latest evaluation
    metric: float | None = None
    metric_name: str | None = None
    solved: bool = False
    steps_per_s: float | None = None
    eta_s: float | None = None
    queue_position: int | None = None  # 1 = next to start; None unless queued
    snapshot: dict[str, Any] | None = None  # latest Snapshot event, as its to_dict()
    summary: dict[str, Any] | None = None  # once finished
    error: str | None = None
    sweep_id: str | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(eq=False)
class _Job:
    """A job's live state. Its worker writes the fields; readers copy them into Progress."""

    run_id: str
    owner: str
    config: RunConfig
    sweep_id: str | None
    snapshot_every_s: float | None = None
    status: str = "queued"
    step: int = 0
    loss: float | None = None
    held_out_loss: float | None = None
    metric: float | None = None
    metric_name: str | None = None
    solved: bool = False
    steps_per_s: float | None = None
    snapshot: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    # Set when the job is stopped for a reason other than its owner asking.
    stop_reason: str | None = None
    stop_status: str = "stopped"  # "interrupted" when the pool shuts down
    rate_step: int = 0
    rate_elapsed: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def progress(self, queue_position: int | None) -> Progress:
        eta = None
        if self.status == "running" and self.steps_per_s:
            eta = (self.config.steps - self.step) / self.steps_per_s
        return Progress(
            run_id=self.run_id,
            owner=self.owner,
            status=self.status,
            config=self.config.to_dict(),
            step=self.step,
            steps=self.config.steps,
            loss=self.loss,
            held_out_loss=self.held_out_loss,
            metric=self.metric,
            metric_name=self.metric_name,
            solved=self.solved,
            steps_per_s=self.steps_per_s,
            eta_s=eta,
            queue_position=queue_position,
            snapshot=self.snapshot,
            summary=self.summary,
            error=self.error,
            sweep_id=self.sweep_id,
        )


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _on_started(job: _Job, event: Any) -> None:
    job.metric_name = event.metric_name


def _on_step(job: _Job, event: Any) -> None:
    job.step, job.loss = event.step, _finite_or_none(event.loss)
    if job.rate_elapsed is None:
        job.rate_step, job.rate_elapsed = event.step, event.elapsed_s
    elif event.elapsed_s - job.rate_elapsed >= RATE_WINDOW_S:
        job.steps_per_s = (event.step - job.rate_step) / (event.elapsed_s - job.rate_elapsed)
        job.rate_step, job.rate_elapsed = event.step, event.elapsed_s


def _on_evaluation(job: _Job, event: Any) -> None:
    job.held_out_loss = _finite_or_none(event.loss)
    job.metric = _finite_or_none(event.metric)
    job.solved = bool(event.solved)


def _on_snapshot(job: _Job, event: Any) -> None:
    job.snapshot = event.to_dict()


# How each kind of train() event changes a job's in-memory progress.
PROGRESS_UPDATES: dict[str, Callable[[_Job, Any], None]] = {
    "started": _on_started,
    "step": _on_step,
    "eval": _on_evaluation,
    "snapshot": _on_snapshot,
}


class JobManager:
    """A FIFO queue of training jobs and a fixed set of worker threads; thread-safe.

    Every public method may be called from any thread (a Streamlit script thread, its
    fragments, other sessions); none of them waits for training, except wait() and
    wait_any(). Making one sets torch's intra-op threads, which are process-wide, to
    `torch_threads` (default cores // workers).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        store: RunStore | None = None,
        max_queued_per_owner: int | None = DEFAULT_MAX_QUEUED_PER_OWNER,
        orphan_after_s: float | None = DEFAULT_ORPHAN_AFTER_S,
        torch_threads: int | None = None,
    ):
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self.store = store if store is not None else open_store()
        self.max_queued_per_owner = max_queued_per_owner
        self.orphan_after_s = orphan_after_s
        self.torch_threads = torch_threads or max(1, (os.cpu_count() or 1) // self.workers)
        torch.set_num_threads(self.torch_threads)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a job was queued or finished
        self._queue: collections.deque[_Job] = collections.deque()
        self._jobs: dict[str, _Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._reserved: collections.Counter[str] = collections.Counter()
        self._heartbeats: dict[str, float] = {}
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"rnnlab-worker-{i + 1}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        config: RunConfig,
        *,
        owner: str,
        sweep_id: str | None = None,
        snapshot_every_s: float | None = SNAPSHOT_EVERY_S,
    ) -> str:
        """Queue a run of `config` for `owner`; return its run id at once.

        snapshot_every_s is passed to train() (math.inf: only the final snapshot).
        Raises QueueFull when the owner already has max_queued_per_owner jobs waiting, and
        JobError after shutdown(). Submitting counts as the owner's heartbeat.
        """
        if not isinstance(config, RunConfig):
            raise TypeError(f"submit() takes a RunConfig, not {type(config).__name__}")
        with self._lock:
            if self._closed:
                raise JobError("the training pool is shutting down; try again in a moment")
            self._drop_orphans()
            waiting = self._reserved[owner] + sum(job.owner == owner for job in self._queue)
            cap = self.max_queued_per_owner
            if cap is not None and waiting >= cap:
                raise QueueFull(
                    f"You already have {waiting} runs waiting (at most {cap}); "
                    "wait for one to start, or cancel one."
                )
            self._reserved[owner] += 1
            if owner in self._heartbeats:
                self._heartbeats[owner] = time.monotonic()
        try:
            run_id = self.store.create_run(config, owner=owner, sweep_id=sweep_id)
        finally:
            with self._lock:
                self._reserved[owner] -= 1
                if not self._reserved[owner]:
                    del self._reserved[owner]
        job = _Job(
            run_id=run_id,
            owner=owner,
            config=config,
            sweep_id=sweep_id,
            snapshot_every_s=snapshot_every_s,
        )
        with self._lock:
            if not self._closed:
                self._jobs[run_id] = job
                self._queue.append(job)
                self._changed.notify_all()
                return run_id
        self.store.finish(run_id, "interrupted", error="the server shut down")
        raise JobError("the training pool is shutting down; try again in a moment")

    def progress(self, run_id: str) -> Progress | None:
        """The job's progress; for a run this process no longer holds, what the store says.

        None if there is no such run. Cheap: no database access for live jobs.
        """
        with self._lock:
            self._drop_orphans()
            job = self._jobs.get(run_id)
            if job is not None:
                return job.progress(self._position(job))
        try:
            record = self.store.get_run(run_id)
        except RunNotFound:
            return None
        summary = record.summary or {}
        return Progress(
            run_id=record.id,
            owner=record.owner,
            status=record.status,
            config=record.config,
            step=record.step,
            steps=record.config.get("steps", 0),
            held_out_loss=summary.get("final_loss"),
            metric=summary.get("metric"),
            metric_name=summary.get("metric_name"),
            solved=bool(summary.get("solved")),
            summary=record.summary,
            error=record.error,
            sweep_id=record.sweep_id,
        )

    def queue(self) -> list[Progress]:
        """Active jobs: the running ones, then the waiting ones in the order they will start."""
        with self._lock:
            self._drop_orphans()
            running = [job.progress(None) for job in self._jobs.values() if job.status == "running"]
            waiting = [job.progress(i + 1) for i, job in enumerate(self._queue)]
        return running + waiting

    def heartbeat(self, owner: str) -> None:
        """Say that `owner` is still watching. Call it on every poll from the owner's page.

        Once an owner has sent one, silence for orphan_after_s cancels its jobs.
        """
        with self._lock:
            self._heartbeats[owner] = time.monotonic()

    def cancel(self, run_id: str, *, owner: str | None = None) -> bool:
        """Stop a job: a waiting one leaves the queue, a running one stops after its step.

        With `owner`, only that owner's job can be cancelled (JobError otherwise). Returns
        False if the job is not active in this process (unknown, or already finished).
        """
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or job.status not in ACTIVE_STATUSES:
                return False
            if owner is not None and job.owner != owner:
                raise JobError("That run was started by someone else; only they can stop it.")
            self._stop(job, None)
        return True

    def cancel_owner(self, owner: str, *, reason: str | None = None) -> int:
        """Cancel every active job of `owner`; returns how many."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner and j.active]
            for job in jobs:
                self._stop(job, reason)
        return len(jobs)

    def wait(self, run_id: str, timeout: float | None = None) -> Progress | None:
        """Block until the job finishes (or timeout); its progress then."""
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job.done.wait(timeout)
        return self.progress(run_id)

    def wait_any(self, run_ids: Iterable[str], timeout: float | None = None) -> list[str]:
        """Block until at least one of `run_ids` is no longer active; return those that are not.

        Ids this process does not hold count as finished. Returns [] on timeout.
        """
        run_ids = list(run_ids)
        deadline = None if timeout is None else time.monotonic() + timeout

        def finished() -> list[str]:
            return [
                run_id
                for run_id in run_ids
                if run_id not in self._jobs or self._jobs[run_id].done.is_set()
            ]

        with self._lock:
            while not (done := finished()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._changed.wait(remaining)
            return done

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Refuse new jobs, stop waiting and running ones, and (by default) wait for workers.

        Runs cut short this way end `interrupted`: nobody asked for them to stop.
        """
        with self._lock:
            self._closed = True
            for job in list(self._jobs.values()):
                if job.active:
                    self._stop(job, "the server shut down", status="interrupted")
            self._changed.notify_all()
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for thread in self._threads:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(remaining)

    @property
    def closed(self) -> bool:
        return self._closed

    def _position(self, job: _Job) -> int | None:
        if job.status != "queued":
            return None
        for i, waiting in enumerate(self._queue):
            if waiting is job:
                return i + 1
        return None

    def _orphaned(self, owner: str, now: float) -> bool:
        last = self._heartbeats.get(owner)
        return (
            self.orphan_after_s is not None
            and last is not None
            and (now - last > self.orphan_after_s)
        )

    def _drop_orphans(self) -> None:
        """Cancel the jobs of owners that went silent. Call with the lock held."""
        if self.orphan_after_s is None or not self._heartbeats:
            return
        now = time.monotonic()
        silent = [owner for owner in self._heartbeats if self._orphaned(owner, now)]
        for owner in silent:
            del self._heartbeats[owner]
            for job in list(self._jobs.values()):
                if job.owner == owner and job.active:
                    self._stop(job, "its owner stopped watching (page closed)")

    def _stop(self, job: _Job, reason: str | None, *, status: str = "stopped") -> None:
        """Cancel a job; it ends as `status`, with `reason` as its error. Lock held."""
        if job.stop_reason is None:
            job.stop_reason, job.stop_status = reason, status
        job.cancel.set()
        if job.status == "queued" and job in self._queue:
            self._queue.remove(job)
            job.status, job.error = job.stop_status, job.stop_reason
            self._retire(job)
            try:
                self.store.finish(job.run_id, job.status, error=reason)
            except Exception:
                log.exception("could not record run %s as %s", job.run_id, job.status)

    def _retire(self, job: _Job) -> None:
        """Mark a job done and forget the oldest finished ones. Call with the lock held."""
        job.done.set()
        self._finished.append(job.run_id)
        while len(self._finished) > KEEP_FINISHED:
            self._jobs.pop(self._finished.popleft(), None)
        self._changed.notify_all()

    def _work(self) -> None:
        torch.set_num_threads(self.torch_threads)
        _warm_up()
        while True:
            with self._lock:
                self._drop_orphans()
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                job.status = "running"
            self._run(job)

    def _run(self, job: _Job) -> None:
        """Train one job, writing every event to the store and to its progress."""
        status = "failed"
        next_orphan_check = time.monotonic() + ORPHAN_CHECK_S
        try:
            events = train(job.config, cancel=job.cancel, snapshot_every_s=job.snapshot_every_s)
            for event in events:
                if event.kind == "finished":
                    status = self._record_finish(job, event.summary)
                    continue
                self.store.add(job.run_id, event)
                update = PROGRESS_UPDATES.get(event.kind)
                if update is not None:
                    update(job, event)
                if time.monotonic() >= next_orphan_check:
                    next_orphan_check = time.monotonic() + ORPHAN_CHECK_S
                    if self._orphaned(job.owner, time.monotonic()):
                        with self._lock:
                            self._drop_orphans()
        except Exception as error:
            status, job.error = "failed", f"{type(error).__name__}: {error}"
            log.exception("run %s failed", job.run_id)
            try:
                self.store.fail(job.run_id, job.error)
            except Exception:
                log.exception("could not record run %s as failed", job.run_id)
        with self._lock:
            job.status = status
            self._retire(job)

    def _record_finish(self, job: _Job, summary: dict[str, Any]) -> str:
        """Store the run's end; a run stopped by the pool says why. Returns its status."""
        if job.stop_reason is not None:
            job.error = job.stop_reason
            if summary["status"] == "stopped":
                summary = {**summary, "status": job.stop_status}
        job.summary = summary
        self.store.finish(job.run_id, summary["status"], summary, error=job.error)
        return summary["status"]


_warm_up_lock = threading.Lock()


def _warm_up() -> None:
    """Make torch import what the first optimizer needs (seconds, once per process).

    Done by an idle worker when the pool starts, so the first run someone submits shows
    its first step at once instead of after torch's lazy imports.
    """
    with _warm_up_lock:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process's job manager, made on first use (workers from RNNLAB_WORKERS)."""
    global _manager
    with _manager_lock:
        if _manager is None or _manager.closed:
            _manager = JobManager()
            atexit.register(_manager.shutdown, timeout=5.0)
        return _manager
