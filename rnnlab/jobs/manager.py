"""The job manager: one pool of training workers per server, shared by everyone.

    manager = get_manager()
    run_id = manager.submit(config, owner=session_id)   # QueueFull if the owner has too many
    manager.heartbeat(session_id)                       # the owner is still there
    manager.progress(run_id)                            # Progress: status, step, loss, ETA, ...
    manager.live(run_id, since=step)                    # new points, for a page's live chart
    manager.cancel(run_id, owner=session_id)
    manager.queue()                                     # what runs and what waits, in order

Training happens in `workers` processes (`RNNLAB_WORKERS`, default one per processor
the container allows, fewer if its memory cannot hold them; see rnnlab.jobs.resources,
rnnlab.jobs.pool and rnnlab.worker). Every worker interleaves its runs, sharing its time
equally between their owners, so up to `max_running` runs (`RNNLAB_MAX_RUNNING`,
default 32 per worker) train at once and all of them start within a second; beyond
that, or beyond the memory a worker has for runs, runs wait in one queue, fair between
owners (rnnlab.jobs.scheduling), whose positions pages show. A run whose step would take
more than a second on this machine, or whose memory no worker has, is refused with a
message naming the setting to lower (rnnlab.jobs.sizing). The server keeps each live run's
curve, latest evaluation and latest encoded snapshot in memory (rnnlab.jobs.feed), fed
by the pool's update thread; pages and routes read from there, and read a run that has
left memory from the store once.

With `RNNLAB_EXECUTOR=ray` the workers are Ray actors instead, on the cluster at
`RNNLAB_RAY_ADDRESS` (default: a local Ray runtime), one per CPU of the cluster unless
`RNNLAB_WORKERS` says otherwise; they run the same worker loop, and since they share no
disk with the server, the server records their runs from their updates (rnnlab.cluster).

Room rules (rnnlab.jobs.admission): caps on waiting and training runs per owner and on
owners per client address, and the runs of an owner that has gone are stopped. A worker
that dies (killed, out of memory) fails only its own runs, with a message that says so,
and is replaced.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from ..config import RunConfig
from ..store import ACTIVE_STATUSES, RunStore, open_store
from .admission import Admission, JobError, TooLarge
from .feed import LiveRun
from .pool import WorkerPool, make_local_worker, make_ray_worker, process_context
from .reports import Export, Reports
from .resources import detect
from .scheduling import Scheduler, fair_order
from .settings import (
    DEFAULT_MAX_QUEUED_PER_OWNER,
    EXECUTORS,
    KEEP_FINISHED,
    RUNS_PER_WORKER,
    SNAPSHOT_EVERY_S,
    default_executor,
    default_max_running_per_owner,
    default_orphan_after_s,
    memory_plan,
    positive_int_from_env,
)
from .sizing import estimate, too_large
from .stored import StoredRuns
from .upkeep import Upkeep
from .watch import Watched

log = logging.getLogger(__name__)

_FROM_ENVIRONMENT = object()  # orphan_after_s's default: RNNLAB_ORPHAN_AFTER_S, else 60 s


class JobManager(Watched, Reports):
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
        max_running_per_owner: int | None | object = _FROM_ENVIRONMENT,
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
        cluster_cpus, machine = None, detect()
        if self.executor == "ray":  # workers in Ray actors; see rnnlab.cluster
            from ..cluster import cluster_cpus as count_cluster_cpus
            from ..cluster import connect

            connect(ray_address or os.environ.get("RNNLAB_RAY_ADDRESS") or None)
            cluster_cpus = count_cluster_cpus()
        plan = memory_plan(machine, cluster_cpus, local=self.executor == "local")
        self.workers = workers if workers is not None else plan.workers
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        self.resources = machine
        self.scheduler = Scheduler(plan.memory_per_worker(self.workers))
        self.store = store if store is not None else open_store()
        self.max_running = (
            max_running
            or positive_int_from_env("RNNLAB_MAX_RUNNING")
            or RUNS_PER_WORKER * self.workers
        )
        self.runs_per_worker = -(-self.max_running // self.workers)
        self.torch_threads = torch_threads
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a job was queued or finished
        self.admission = Admission(
            self._lock,
            max_queued_per_owner=max_queued_per_owner,
            max_running_per_owner=(
                default_max_running_per_owner()
                if max_running_per_owner is _FROM_ENVIRONMENT
                else max_running_per_owner
            ),
            orphan_after_s=(
                default_orphan_after_s() if orphan_after_s is _FROM_ENVIRONMENT else orphan_after_s
            ),
            presence=presence,
            clock=clock,
        )
        self.stored = StoredRuns(self.store)
        self._queue: collections.deque[LiveRun] = collections.deque()
        self._jobs: dict[str, LiveRun] = {}
        self._finished: collections.deque[str] = collections.deque()
        self._sweeps: dict[str, list[str]] = {}  # sweep id -> its runs, in submission order
        self.cpu_seconds: collections.Counter[str] = collections.Counter()  # owner -> its runs'
        self._exports: dict[int, Export] = {}  # download requests a worker has yet to answer
        self._requests = itertools.count()
        self._closed = False
        if self.executor == "ray":
            cpus = min(1.0, cluster_cpus / self.workers)  # more workers than CPUs share
            make_worker = make_ray_worker(torch_threads, cpus)
        else:
            make_worker = make_local_worker(process_context(), str(self.store.path), torch_threads)
        self.pool = WorkerPool(self.workers, make_worker, self._lock, self)
        self.upkeep = Upkeep(self.store)  # the store within its disk budget
        self.pool.start()
        self.upkeep.start()

    def submit(
        self,
        config: RunConfig,
        *,
        owner: str,
        sweep_id: str | None = None,
        snapshot_every_s: float | None = SNAPSHOT_EVERY_S,
        label: str | None = None,
        study: str | None = None,
        trial: int | None = None,
    ) -> str:
        """Queue a run of `config` for `owner`; return its run id at once.

        snapshot_every_s is passed to train() (math.inf: only the final snapshot).
        `label` is the name the owner goes by (the room shows it; memory only).
        `study` and `trial`: the run is that trial of a study (rnnlab.tune).
        Raises QueueFull when the owner already has max_queued_per_owner jobs waiting,
        TooLarge (a JobError) when the run is too large for this server, and JobError after
        shutdown() or once the owner has been dropped as absent.
        """
        if not isinstance(config, RunConfig):
            raise TypeError(f"submit() takes a RunConfig, not {type(config).__name__}")
        refusal = too_large(config, self.pool.calibration, self.scheduler.memory_per_worker)
        if refusal is not None:
            raise TooLarge(refusal[0].upper() + refusal[1:] + ".")
        with self._lock:
            if self._closed:
                raise JobError("the training pool is shutting down; try again in a moment")
            if self.pool.failing:
                raise JobError("the training workers cannot start; the server log says why")
            waiting = sum(job.owner == owner for job in self._queue)
            self.admission.reserve(owner, waiting)
        try:
            run_id = self.store.create_run(
                config, owner=owner, sweep_id=sweep_id, study=study, trial=trial
            )
        finally:
            with self._lock:
                self.admission.release(owner)
        job = LiveRun(
            run_id=run_id,
            owner=owner,
            config=config,
            sweep_id=sweep_id,
            snapshot_every_s=snapshot_every_s,
            label=label,
            study=study,
            trial=trial,
        )
        with self._lock:
            if not self._closed:
                self._jobs[run_id] = job
                if sweep_id is not None:
                    self._sweeps.setdefault(sweep_id, []).append(run_id)
                self.scheduler.memory[run_id] = estimate(config, self.pool.calibration)
                self._queue.append(job)
                self._dispatch()
                return run_id
        self.store.finish(run_id, "interrupted", error="the server shut down")
        raise JobError("the training pool is shutting down; try again in a moment")

    def locate(self, owner: str, address: str) -> None:
        """`owner` connects from client `address` (a page says, where it can tell):
        one address may hold only so many owners with runs."""
        with self._lock:
            self.admission.locate(owner, address)

    def name(self, owner: str, name: str, *, instructor: bool = False) -> str:
        """Give `owner` the name it asks for in the room, or the nearest free one (a
        suffix when another present owner has it or a look-alike; rnnlab.jobs.names),
        for runs it submits without a label; returns the name given."""
        return self.admission.names.claim(owner, name, instructor=instructor)

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run from the store (RunStore.delete_run) and forget what this
        process kept of it, so that no page or route shows it again."""
        self.store.delete_run(run_id)
        with self._lock:
            if (job := self._jobs.get(run_id)) is not None and not job.active:
                del self._jobs[run_id]
        self.stored.forget(run_id)

    def export_weights(self, run_id: str, *, timeout: float = 60.0) -> bytes | None:
        """A finished run's weights as a .pt file to download (rnnlab.weights.
        exported_weights), made by a worker: the server never imports PyTorch. None if
        the run kept no weights; JobError if no worker made the file in `timeout`."""
        data = self.store.weights(run_id)
        if data is None:
            return None
        summary = self.store.get_run(run_id).summary
        request, export = next(self._requests), Export()
        with self._lock:
            worker = self.pool.least_busy()
            if worker is None:
                raise JobError("no training worker is up to make the file; try again in a moment")
            self._exports[request] = export
            worker.send(("export", request, data, run_id, summary))
        try:
            if not export.done.wait(timeout):
                raise JobError("the weights file took too long to make; try again")
        finally:
            with self._lock:
                del self._exports[request]
        if export.error is not None:
            raise JobError(export.error)
        return export.file

    def heartbeat(self, owner: str) -> None:
        """Say that `owner` is still there. Once an owner has been seen, absence for
        orphan_after_s cancels its jobs."""
        with self._lock:
            self.admission.heartbeat(owner)

    def cancel(
        self,
        run_id: str,
        *,
        owner: str | None = None,
        status: str = "stopped",
        reason: str | None = None,
    ) -> bool:
        """Stop a job: a waiting one leaves the queue, a running one stops after its step.
        It ends as `status` (a study's pruner says `pruned`), with `reason` as its error.

        With `owner`, only that owner's job can be cancelled (JobError otherwise). Returns
        False if the job is not active in this process (unknown, or already finished).
        """
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None or job.status not in ACTIVE_STATUSES:
                return False
            if owner is not None and job.owner != owner:
                raise JobError("That run was started by someone else; only they can stop it.")
            dequeued = [job] if self._stop(job, reason, status=status) else []
        self._record_dequeued(dequeued)
        return True

    def cancel_owner(self, owner: str, *, reason: str | None = None) -> int:
        """Cancel every active job of `owner`; returns how many."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner and j.active]
            dequeued = [job for job in jobs if self._stop(job, reason)]
        self._record_dequeued(dequeued)
        return len(jobs)

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for tests, benchmarks and memory figures)."""
        return self.pool.pids()

    def shutdown(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Refuse new jobs, stop waiting and running ones, and (by default) wait for workers.

        Runs cut short this way end `interrupted`: nobody asked for them to stop.
        """
        self.upkeep.close()
        with self._lock:
            self._closed = True
            dequeued = [
                job
                for job in list(self._jobs.values())
                if job.active and self._stop(job, "the server shut down", status="interrupted")
            ]
            workers = self.pool.close()
            self._changed.notify_all()
        self._record_dequeued(dequeued)
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            self.pool.join(workers, deadline)

    @property
    def closed(self) -> bool:
        return self._closed

    def _dispatch(self) -> None:
        """Start waiting jobs while workers have room (rnnlab.jobs.scheduling), then put
        the queue in the order the rest will start. Lock held."""
        running = collections.Counter(
            job.owner for worker in self.pool.workers for job in worker.jobs.values()
        )
        while self._queue and self.pool.running() < self.max_running:
            chosen = self.scheduler.next_start(
                self._queue,
                self.pool.workers,
                self.runs_per_worker,
                self.admission.may_start,
                running,
            )
            if chosen is None:
                break
            job, worker = chosen
            self._queue.remove(job)
            running[job.owner] += 1
            job.status, job.worker = "running", worker
            worker.jobs[job.run_id] = job
            config = job.config.to_dict()
            worker.send(("start", job.run_id, config, job.snapshot_every_s, job.owner))
        self._queue = collections.deque(fair_order(self._queue, running))
        for worker, owner, spread in self.scheduler.spreads(self.pool.workers):
            worker.send(("spread", owner, spread))
        self._changed.notify_all()

    def _stop(self, job: LiveRun, reason: str | None, *, status: str = "stopped") -> bool:
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

    def _record_dequeued(self, jobs: Iterable[LiveRun]) -> None:
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

    def _retire(self, job: LiveRun) -> None:
        """Mark a job done, drop its snapshot, forget the oldest finished jobs. Lock held."""
        self.scheduler.forget(job.run_id)
        self.upkeep.run_finished()
        job.forget_snapshot()
        job.done.set()
        self._finished.append(job.run_id)
        while len(self._finished) > KEEP_FINISHED:
            self._jobs.pop(self._finished.popleft(), None)
        self._changed.notify_all()


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
