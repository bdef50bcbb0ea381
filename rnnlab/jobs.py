"""The job manager: one pool of training worker processes per server, shared by everyone.

    manager = get_manager()
    run_id = manager.submit(config, owner=session_id)   # QueueFull if the owner has too many
    manager.heartbeat(session_id)                       # the owner is still there
    manager.progress(run_id)                            # Progress: status, step, loss, ETA, ...
    manager.live(run_id, since=step)                    # new points, for a page's live chart
    manager.cancel(run_id, owner=session_id)
    manager.queue()                                     # what runs and what waits, in order

Training happens in `workers` processes (`RNNLAB_WORKERS`, default one per core; see
rnnlab.worker), forked from a fork server that has imported torch once, each with one
torch thread. Every worker interleaves its runs, a slice of time each, so up to
`max_running` runs (`RNNLAB_MAX_RUNNING`, default 16 per worker) train at once and all
of them start within a second; beyond that, runs wait in one first-in-first-out queue
whose positions pages show. The server keeps
each live run's curve, latest evaluation and latest snapshot in memory, fed by one
thread that reads the workers' updates; pages and the live route read from there, never
from the store, which the workers write.

With `RNNLAB_EXECUTOR=ray` the workers are Ray actors instead, on the cluster at
`RNNLAB_RAY_ADDRESS` (default: a local Ray runtime), one per CPU of the cluster unless
`RNNLAB_WORKERS` says otherwise; they run the same worker loop, and since they share no
disk with the server, the server records their runs from their updates (rnnlab.cluster).

Room rules: an owner (a browser session) may have at most `max_queued_per_owner` runs
waiting; an owner that has been seen (a heartbeat, or `presence` saying so) and is then
absent for `orphan_after_s` (a closed tab) loses its waiting and running runs, and
cannot submit more until it is seen again. A worker that dies (killed, out of memory)
fails only its own runs, with a message that says so, and is replaced.
"""

from __future__ import annotations

import array
import atexit
import bisect
import collections
import json
import logging
import math
import multiprocessing
import multiprocessing.spawn
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from typing import Any

from . import worker as worker_module
from .config import RunConfig
from .store import ACTIVE_STATUSES, RunNotFound, RunStore, open_store

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED_PER_OWNER = 4
DEFAULT_ORPHAN_AFTER_S = 60.0
# Runs one worker trains at once (interleaved) before new ones wait in the queue.
RUNS_PER_WORKER = 16
# Finished runs stay in memory (without their snapshot) so a page's last poll sees the end.
KEEP_FINISHED = 200
# The manager looks for absent owners and dead workers this often.
ORPHAN_CHECK_S = 0.5
# Seconds between the Snapshot events a live run sends to its page.
SNAPSHOT_EVERY_S = 0.5
# Workers that die before they are ready, in a row, after which the pool stops replacing them.
MAX_START_FAILURES = 3
# steps/s is measured over windows of at least this length.
RATE_WINDOW_S = 0.5


_FROM_ENVIRONMENT = object()  # orphan_after_s's default: RNNLAB_ORPHAN_AFTER_S, else 60 s


class JobError(Exception):
    """The manager refused a request; the message is written for the person who made it."""


class QueueFull(JobError):
    """This owner already has as many jobs waiting as one owner may."""


def _positive_int_from_env(name: str) -> int | None:
    configured = os.environ.get(name, "").strip()
    if not configured:
        return None
    try:
        value = int(configured)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {configured!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def default_workers(cores: int | None = None) -> int:
    """RNNLAB_WORKERS if set, else one worker per core (of this machine, or `cores`)."""
    return _positive_int_from_env("RNNLAB_WORKERS") or cores or (os.cpu_count() or 1)


EXECUTORS = ("local", "ray")


def default_executor() -> str:
    """RNNLAB_EXECUTOR if set (local or ray), else local: worker processes on this machine."""
    configured = os.environ.get("RNNLAB_EXECUTOR", "").strip().lower() or "local"
    if configured not in EXECUTORS:
        raise ValueError(f"RNNLAB_EXECUTOR must be local or ray, got {configured!r}")
    return configured


def default_orphan_after_s() -> float:
    """RNNLAB_ORPHAN_AFTER_S if set, else DEFAULT_ORPHAN_AFTER_S."""
    configured = os.environ.get("RNNLAB_ORPHAN_AFTER_S", "").strip()
    if not configured:
        return DEFAULT_ORPHAN_AFTER_S
    try:
        value = float(configured)
    except ValueError:
        raise ValueError(f"RNNLAB_ORPHAN_AFTER_S must be a number, got {configured!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"RNNLAB_ORPHAN_AFTER_S must be a positive number, got {configured!r}")
    return value


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
    label: str | None = None  # the name its owner goes by in the room, if it gave one

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(eq=False)
class _Job:
    """A job's live state, written by the manager's update thread, read by everyone."""

    run_id: str
    owner: str
    config: RunConfig
    sweep_id: str | None
    snapshot_every_s: float | None = None
    label: str | None = None
    status: str = "queued"
    worker: _WorkerProcess | None = None
    step: int = 0
    loss: float | None = None
    held_out_loss: float | None = None
    metric: float | None = None
    metric_name: str | None = None
    solved: bool = False
    solved_at: int | None = None
    steps_per_s: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    # The curve so far: one entry per training step, NaN where the loss was not finite.
    curve_steps: array.array = field(default_factory=lambda: array.array("l"))
    curve_losses: array.array = field(default_factory=lambda: array.array("d"))
    evaluations: list[tuple[int, float | None, float | None, bool]] = field(default_factory=list)
    # The latest snapshot as the worker encoded it; decoded only when a page asks.
    snapshot_step: int | None = None
    snapshot_json: bytes | None = None
    views_json: list[bytes] | None = None  # per layer, see rnnlab.worker.view_of_snapshot
    _snapshot: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Set when the job is stopped for a reason other than its owner asking.
    stop_reason: str | None = None
    stop_status: str = "stopped"  # "interrupted" when the pool shuts down
    rate_step: int = 0
    rate_elapsed: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def snapshot(self) -> dict[str, Any] | None:
        """The latest snapshot as a dict (decoded once per snapshot)."""
        encoded = self.snapshot_json
        if encoded is None:
            return None
        decoded = self._snapshot
        if decoded is None or decoded.get("step") != self.snapshot_step:
            decoded = self._snapshot = json.loads(encoded)
        return decoded

    def eta_s(self) -> float | None:
        if self.status == "running" and self.steps_per_s:
            return (self.config.steps - self.step) / self.steps_per_s
        return None

    def progress(self, queue_position: int | None, *, with_snapshot: bool = True) -> Progress:
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
            eta_s=self.eta_s(),
            queue_position=queue_position,
            snapshot=self.snapshot() if with_snapshot else None,
            summary=self.summary,
            error=self.error,
            sweep_id=self.sweep_id,
            label=self.label,
        )

    def apply(self, update: worker_module.Update) -> None:
        """Take in what the worker reports of one slice of training."""
        if update.started is not None:
            self.metric_name = update.started.get("metric_name")
        for step, loss, _grad_norm, elapsed_s in update.steps:
            self.curve_steps.append(step)
            self.curve_losses.append(loss if math.isfinite(loss) else math.nan)
            self.step, self.loss = step, _finite_or_none(loss)
            if self.rate_elapsed is None:
                self.rate_step, self.rate_elapsed = step, elapsed_s
            elif elapsed_s - self.rate_elapsed >= RATE_WINDOW_S:
                self.steps_per_s = (step - self.rate_step) / (elapsed_s - self.rate_elapsed)
                self.rate_step, self.rate_elapsed = step, elapsed_s
        for step, loss, metric, solved, _elapsed_s in update.evaluations:
            self.held_out_loss, self.metric = _finite_or_none(loss), _finite_or_none(metric)
            self.solved = solved
            if solved and self.solved_at is None:
                self.solved_at = step
            self.evaluations.append((step, self.held_out_loss, self.metric, solved))
        if update.snapshot_json is not None:
            self.snapshot_json, self.views_json = update.snapshot_json, update.views_json
            self.snapshot_step = update.snapshot_step


class _WorkerProcess:
    """The server's handle on one worker process: its connection and the runs it holds.
    (rnnlab.cluster.RayWorker is the same for a worker in a Ray actor.)"""

    server_records = False  # the worker records its runs in the store itself

    def __init__(self, context: Any, store_path: str, torch_threads: int, number: int):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=worker_module.main,
            args=(child, store_path, torch_threads),
            name=f"rnnlab-worker-{number}",
            daemon=True,
        )
        _starting_worker.active = True
        try:
            self.process.start()
        finally:
            _starting_worker.active = False
        child.close()
        self.send_lock = threading.Lock()
        self.jobs: dict[str, _Job] = {}
        self.ready = False  # it has imported torch and said so
        self.lost = False

    def send(self, command: tuple) -> None:
        """Send a command; a worker that died is found by the update thread."""
        try:
            with self.send_lock:
                self.connection.send(command)
        except (BrokenPipeError, EOFError, OSError):
            pass

    def how_it_ended(self) -> str:
        code = self.process.exitcode
        return f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"


_starting_worker = threading.local()
_preparation_data = multiprocessing.spawn.get_preparation_data


def _worker_preparation_data(name: str) -> dict[str, Any]:
    """What a new process is told of its parent, less the parent's __main__ for ours.

    A child normally re-imports its parent's __main__ first; under Streamlit that is
    whichever page ran last (Streamlit installs each page as __main__), which a training
    worker must not run. Workers need only rnnlab, so for them the entry is dropped; for
    every other process started here nothing changes.
    """
    data = _preparation_data(name)
    if getattr(_starting_worker, "active", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


multiprocessing.spawn.get_preparation_data = _worker_preparation_data


def _process_context() -> Any:
    """A fork server that has imported torch once (spawn where fork servers do not exist)."""
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(["rnnlab._preload"])
    return context


class JobManager:
    """A pool of training worker processes, a FIFO queue beyond its capacity; thread-safe.

    Every public method may be called from any thread (a Streamlit script thread, its
    fragments, the server's event loop); none of them waits for training, except
    wait() and wait_any(). `presence(owner)` may say whether an owner is still there
    (True, False, or None for "cannot tell"); owners it cannot tell about are judged by
    their heartbeats alone. `clock` is for tests.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        store: RunStore | None = None,
        max_queued_per_owner: int | None = DEFAULT_MAX_QUEUED_PER_OWNER,
        orphan_after_s: float | None | object = _FROM_ENVIRONMENT,
        max_running: int | None = None,
        torch_threads: int = 1,
        presence: Callable[[str], bool | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        executor: str | None = None,
        ray_address: str | None = None,
    ):
        self.executor = executor if executor is not None else default_executor()
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be local or ray, got {self.executor!r}")
        self._cluster_cpus: int | None = None
        if self.executor == "ray":  # workers in Ray actors; see rnnlab.cluster
            from . import cluster

            cluster.connect(ray_address or os.environ.get("RNNLAB_RAY_ADDRESS") or None)
            self._cluster_cpus = cluster.cluster_cpus()
        self.workers = workers if workers is not None else default_workers(self._cluster_cpus)
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self.store = store if store is not None else open_store()
        self.max_queued_per_owner = max_queued_per_owner
        self.orphan_after_s = (
            default_orphan_after_s() if orphan_after_s is _FROM_ENVIRONMENT else orphan_after_s
        )
        self.max_running = (
            max_running
            or _positive_int_from_env("RNNLAB_MAX_RUNNING")
            or RUNS_PER_WORKER * self.workers
        )
        self.torch_threads = torch_threads
        self.presence = presence
        self.clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a job was queued or finished
        self._queue: collections.deque[_Job] = collections.deque()
        self._jobs: dict[str, _Job] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._reserved: collections.Counter[str] = collections.Counter()
        self._heartbeats: dict[str, float] = {}
        self._gone: set[str] = set()
        self._closed = False
        self._context = _process_context()
        self._started = 0
        self._start_failures = 0
        self._pool: list[_WorkerProcess] = []  # started by the update thread
        self._updates = threading.Thread(target=self._read_updates, name="rnnlab-updates")
        self._updates.daemon = True
        self._updates.start()

    def _start_worker(self) -> _WorkerProcess:
        self._started += 1
        if self.executor == "ray":
            from .cluster import RayWorker

            cpus = min(1.0, self._cluster_cpus / self.workers)  # more workers than CPUs share
            return RayWorker(self.torch_threads, self._started, cpus=cpus)
        return _WorkerProcess(
            self._context, str(self.store.path), self.torch_threads, self._started
        )

    def submit(
        self,
        config: RunConfig,
        *,
        owner: str,
        sweep_id: str | None = None,
        snapshot_every_s: float | None = SNAPSHOT_EVERY_S,
        label: str | None = None,
    ) -> str:
        """Queue a run of `config` for `owner`; return its run id at once.

        snapshot_every_s is passed to train() (math.inf: only the final snapshot).
        `label` is the name the owner goes by (the room's view shows it; memory only).
        Raises QueueFull when the owner already has max_queued_per_owner jobs waiting, and
        JobError after shutdown() or once the owner has been dropped as absent.
        """
        if not isinstance(config, RunConfig):
            raise TypeError(f"submit() takes a RunConfig, not {type(config).__name__}")
        with self._lock:
            if self._closed:
                raise JobError("the training pool is shutting down; try again in a moment")
            if self._start_failures >= MAX_START_FAILURES:
                raise JobError("the training workers cannot start; the server log says why")
            if owner in self._gone:
                raise JobError("this session was closed, so its runs were stopped")
            waiting = self._reserved[owner] + sum(job.owner == owner for job in self._queue)
            cap = self.max_queued_per_owner
            if cap is not None and waiting >= cap:
                raise QueueFull(
                    f"You already have {waiting} runs waiting (at most {cap}); "
                    "wait for one to start, or cancel one."
                )
            self._reserved[owner] += 1
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
            label=label,
        )
        with self._lock:
            if not self._closed:
                self._jobs[run_id] = job
                self._queue.append(job)
                self._dispatch()
                return run_id
        self.store.finish(run_id, "interrupted", error="the server shut down")
        raise JobError("the training pool is shutting down; try again in a moment")

    def progress(self, run_id: str) -> Progress | None:
        """The job's progress; for a run this process no longer holds, what the store says.

        None if there is no such run. Cheap: no database access for live jobs.
        """
        with self._lock:
            job = self._jobs.get(run_id)
            position = self._position(job) if job is not None else None
        if job is not None:
            return job.progress(position)
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

    def live(self, run_id: str, *, since: int = 0) -> dict[str, Any] | None:
        """What a live chart needs after step `since`: new points, evaluations, progress.

        Plain JSON-ready values (NaN losses as None); None if this process does not hold
        the run. Reads memory only, so a page may ask several times a second.
        """
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return None
            position = self._position(job)
            count = len(job.curve_steps)
        steps = job.curve_steps
        start = bisect.bisect_right(steps, since, 0, count)
        losses = job.curve_losses[start:count].tolist()
        # Evaluations up to the last point sent: the next poll asks from there.
        last = steps[count - 1] if count > start else since
        return {
            "run_id": run_id,
            "status": job.status,
            "step": job.step,
            "steps": job.config.steps,
            "loss": job.loss,
            "held_out_loss": job.held_out_loss,
            "metric": job.metric,
            "metric_name": job.metric_name,
            "solved": job.solved,
            "solved_at": job.solved_at,
            "steps_per_s": job.steps_per_s,
            "eta_s": job.eta_s(),
            "queue_position": position,
            "error": job.error,
            "snapshot_step": job.snapshot_step,
            "points": {
                "step": steps[start:count].tolist(),
                "loss": [None if math.isnan(v) else v for v in losses],
            },
            "evaluations": [list(e) for e in job.evaluations if since < e[0] <= last],
        }

    def gates_view(self, run_id: str, layer: int = 0) -> tuple[int, bytes | None] | None:
        """One layer's gate pictures from the latest snapshot, as JSON bytes (see
        rnnlab.worker.view_of_snapshot), and the snapshot's step: (-1, None) before the
        first snapshot or for a layer the run does not have; None if the run is not live
        in this process (unknown, or finished: the store has its last snapshot)."""
        job = self._jobs.get(run_id)
        if job is None or not job.active:
            return None
        views = job.views_json
        if views is None or not 0 <= layer < len(views):
            return -1, None
        return job.snapshot_step or 0, views[layer]

    def queue(self, *, finished: int = 0) -> list[Progress]:
        """Active jobs: the running ones, then the waiting ones in the order they will start;
        then up to `finished` of the jobs still in memory that ended, latest first.

        Without their snapshots (progress() has a run's): a page may list thirty runs.
        """
        with self._lock:
            running = [job for job in self._jobs.values() if job.status == "running"]
            waiting = list(self._queue)
            ended = [self._jobs[i] for i in self._finished if i in self._jobs] if finished else []
        return (
            [job.progress(None, with_snapshot=False) for job in running]
            + [job.progress(i + 1, with_snapshot=False) for i, job in enumerate(waiting)]
            + [job.progress(None, with_snapshot=False) for job in ended[::-1][:finished]]
        )

    def heartbeat(self, owner: str) -> None:
        """Say that `owner` is still there. Once an owner has been seen, absence for
        orphan_after_s cancels its jobs."""
        with self._lock:
            self._heartbeats[owner] = self.clock()
            self._gone.discard(owner)

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
            dequeued = [job] if self._stop(job, None) else []
        self._record_dequeued(dequeued)
        return True

    def cancel_owner(self, owner: str, *, reason: str | None = None) -> int:
        """Cancel every active job of `owner`; returns how many."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner and j.active]
            dequeued = [job for job in jobs if self._stop(job, reason)]
        self._record_dequeued(dequeued)
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

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for tests, benchmarks and memory figures)."""
        with self._lock:
            return [w.process.pid for w in self._pool if not w.lost and w.process.pid]

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Refuse new jobs, stop waiting and running ones, and (by default) wait for workers.

        Runs cut short this way end `interrupted`: nobody asked for them to stop.
        """
        with self._lock:
            already = self._closed
            self._closed = True
            dequeued = [
                job
                for job in list(self._jobs.values())
                if job.active and self._stop(job, "the server shut down", status="interrupted")
            ]
            pool = list(self._pool)
            self._changed.notify_all()
        self._record_dequeued(dequeued)
        if not already:
            for worker in pool:
                worker.send(("close",))
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            for worker in pool:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                worker.process.join(remaining)
            for worker in pool:
                if worker.process.is_alive():
                    worker.process.terminate()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._updates.join(remaining)

    @property
    def closed(self) -> bool:
        return self._closed

    def _running(self) -> int:
        return sum(len(worker.jobs) for worker in self._pool)

    def _dispatch(self) -> None:
        """Hand waiting jobs to the least busy workers while there is room. Lock held."""
        while self._queue and self._running() < self.max_running:
            candidates = [worker for worker in self._pool if not worker.lost]
            if not candidates:
                return
            worker = min(candidates, key=lambda w: len(w.jobs))
            job = self._queue.popleft()
            job.status, job.worker = "running", worker
            worker.jobs[job.run_id] = job
            config = job.config.to_dict()
            worker.send(("start", job.run_id, config, job.snapshot_every_s))
        self._changed.notify_all()

    def _position(self, job: _Job) -> int | None:
        if job.status != "queued":
            return None
        for i, waiting in enumerate(self._queue):
            if waiting is job:
                return i + 1
        return None

    def _stop(self, job: _Job, reason: str | None, *, status: str = "stopped") -> bool:
        """Cancel a job; it ends as `status`, with `reason` as its error. Lock held.

        Returns True when the job was still waiting: it leaves the queue here, and the
        caller records its end in the store, then retires it, once the lock is released
        (_record_dequeued), so that whoever waits for it finds the store up to date.
        """
        if job.stop_reason is None:
            job.stop_reason, job.stop_status = reason, status
        if job.status == "queued" and job in self._queue:
            self._queue.remove(job)
            job.status, job.error = job.stop_status, job.stop_reason
            return True
        if job.worker is not None:
            job.worker.send(("cancel", job.run_id, job.stop_reason, job.stop_status))
        return False

    def _record_dequeued(self, jobs: Iterable[_Job]) -> None:
        """Write the end of jobs that never reached a worker, then retire them."""
        jobs = list(jobs)
        for job in jobs:
            try:
                self.store.finish(job.run_id, job.status, error=job.error)
            except Exception:
                log.exception("could not record run %s as %s", job.run_id, job.status)
        if jobs:
            with self._lock:
                for job in jobs:
                    self._retire(job)

    def _retire(self, job: _Job) -> None:
        """Mark a job done, drop its snapshot, forget the oldest finished jobs. Lock held."""
        job.snapshot_json = job.views_json = job._snapshot = None
        job.done.set()
        self._finished.append(job.run_id)
        while len(self._finished) > KEEP_FINISHED:
            self._jobs.pop(self._finished.popleft(), None)
        self._changed.notify_all()

    def _read_updates(self) -> None:
        """The update thread: workers' reports in, dead workers replaced, absent owners out."""
        started = [self._start_worker() for _ in range(self.workers)]  # seconds, the first time
        with self._lock:
            self._pool += started
            self._dispatch()
            closed = self._closed
        if closed:  # shut down while the workers were starting
            for worker in started:
                worker.send(("close",))
        next_check = 0.0
        while True:
            with self._lock:
                pool = [worker for worker in self._pool if not worker.lost]
                if self._closed and not any(w.process.is_alive() for w in pool):
                    return
            waitables: dict[Any, _WorkerProcess] = {}
            for worker in pool:
                waitables[worker.connection] = worker
                waitables[worker.process.sentinel] = worker
            for ready in wait(list(waitables), timeout=ORPHAN_CHECK_S):
                worker = waitables[ready]
                if worker.lost:
                    continue
                if not self._receive(worker) or ready == worker.process.sentinel:
                    self._receive(worker)  # whatever it sent before it died
                    self._lose(worker)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + ORPHAN_CHECK_S
                self._drop_orphans()

    def _receive(self, worker: _WorkerProcess) -> bool:
        """Read every waiting message of a worker; False once its connection is broken."""
        try:
            while worker.connection.poll():
                kind, payload = worker.connection.recv()
                if kind == "update":
                    self._apply(worker, payload)
                elif kind == "ready":
                    worker.ready = True
                    self._start_failures = 0
        except (EOFError, OSError):
            return False
        except Exception:
            log.exception("a worker sent a message that could not be read")
        return True

    def _apply(self, worker: _WorkerProcess, update: worker_module.Update) -> None:
        job = worker.jobs.get(update.run_id)
        if job is None:
            return
        job.apply(update)
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

    def _record(self, job: _Job, update: worker_module.Update) -> None:
        """Write what a worker that records nothing reported (a Ray actor's) to the store;
        a run whose events cannot be written is stopped as failed, saying why."""
        finished = update.finished
        try:
            events = worker_module.recorded_events(
                update, job.config, with_snapshot=finished is not None
            )
            for event in events:
                self.store.add(job.run_id, event)
            if finished is not None:
                status, summary, error = finished["status"], finished["summary"], finished["error"]
                self.store.finish(job.run_id, status, summary, error=error)
        except Exception as error:
            log.exception("could not record run %s", job.run_id)
            if finished is None:
                with self._lock:
                    self._stop(job, f"it could not be recorded: {error}", status="failed")

    def _lose(self, worker: _WorkerProcess) -> None:
        """A worker died: fail its runs (saying so), start another, carry on."""
        worker.process.join(5)
        how = worker.how_it_ended()
        message = (
            f"the training worker process stopped unexpectedly ({how}; out of memory?). "
            "Other runs were not affected; press Train to run it again."
        )
        if not worker.ready:
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                message = f"the training workers cannot start ({how}); the server log says why"
        with self._lock:
            worker.lost = True
            orphaned = list(worker.jobs.values())
            worker.jobs.clear()
            self._pool.remove(worker)
            if not self._closed and self._start_failures < MAX_START_FAILURES:
                self._pool.append(self._start_worker())
            if not self._pool and self._start_failures >= MAX_START_FAILURES:
                orphaned += self._queue
                self._queue.clear()
            for job in orphaned:
                job.status, job.error = "failed", message
            self._dispatch()
        if orphaned:
            failed = [job.run_id for job in orphaned]
            log.error("worker %s died (%s); failed runs %s", worker.process.pid, how, failed)
        for job in orphaned:
            try:
                self.store.fail(job.run_id, message)
            except Exception:
                log.exception("could not record run %s as failed", job.run_id)
        with self._lock:  # only now: whoever waits for these runs finds the store written
            for job in orphaned:
                self._retire(job)

    def _drop_orphans(self) -> None:
        """Cancel the jobs of owners that have been absent for orphan_after_s (None: never)."""
        if self.orphan_after_s is None:
            return
        with self._lock:
            owners = {job.owner for job in self._jobs.values() if job.active}
            owners |= set(self._heartbeats)  # seen before: still here, with nothing running?
        if self.presence is not None:
            for owner in owners:
                try:
                    present = self.presence(owner)
                except Exception:
                    present = None
                if present:
                    with self._lock:
                        self._heartbeats[owner] = self.clock()
                        self._gone.discard(owner)
        now = self.clock()
        dequeued: list[_Job] = []
        with self._lock:
            silent = [
                owner
                for owner, last in self._heartbeats.items()
                if now - last > self.orphan_after_s
            ]
            for owner in silent:
                del self._heartbeats[owner]
                self._gone.add(owner)
                for job in list(self._jobs.values()):
                    if job.owner == owner and job.active:
                        reason = "its owner stopped watching (page closed)"
                        if self._stop(job, reason):
                            dequeued.append(job)
        self._record_dequeued(dequeued)


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
