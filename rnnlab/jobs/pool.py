"""The pool of training workers: processes on this machine (or Ray actors), and the one
thread that reads what they send.

Local workers are forked from a fork server that has imported torch once
(rnnlab._preload), each with its own torch threads; see rnnlab.worker for their loop.
A worker that dies is replaced, unless workers keep dying before they are ready.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.spawn
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any, Protocol

from ..updates import Update
from .settings import MAX_START_FAILURES, ORPHAN_CHECK_S
from .sizing import UNMEASURED, Calibration

log = logging.getLogger(__name__)


class WorkerProcess:
    """The server's handle on one worker process: its connection and the runs it holds.
    (rnnlab.cluster.RayWorker is the same for a worker in a Ray actor.)"""

    server_records = False  # the worker records its runs in the store itself

    def __init__(self, context: Any, store_path: str, torch_threads: int, number: int):
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main,
            args=(child, store_path, torch_threads),
            name=f"rnnlab-worker-{number}",
            daemon=True,
        )
        with _without_parent_main():
            self.process.start()
        child.close()
        self.send_lock = threading.Lock()
        self.jobs: dict[str, Any] = {}  # run id -> its LiveRun
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


def _worker_main(*args: Any) -> None:
    """A worker process's entry point. rnnlab.worker imports torch, which the server
    never does: only the processes that train hold it (the fork server already has)."""
    from ..worker import main

    main(*args)


_starting = threading.local()
_preparation_lock = threading.Lock()


@contextlib.contextmanager
def _without_parent_main():
    """While a worker process starts, in this thread: it is not told to import the
    parent's __main__ first, as a new process normally is.

    Under Streamlit __main__ is whichever page ran last, which a training worker must not
    run; workers need only rnnlab. Other processes, and other threads, are not affected.
    """
    original = multiprocessing.spawn.get_preparation_data

    def preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if getattr(_starting, "active", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    with _preparation_lock:
        multiprocessing.spawn.get_preparation_data = preparation_data
        _starting.active = True
        try:
            yield
        finally:
            _starting.active = False
            multiprocessing.spawn.get_preparation_data = original


def process_context() -> Any:
    """A fork server that has imported torch once (spawn where fork servers do not exist)."""
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(["rnnlab._preload"])
    return context


class PoolEvents(Protocol):
    """What the pool tells its owner (the job manager), from the update thread."""

    def started(self) -> None: ...  # a worker is up: hand it work

    def update(self, worker: Any, update: Update) -> None: ...

    # A worker died (its runs failed), or one could not start (no runs: `jobs` is empty).
    def lost(self, jobs: dict, how: str, *, ready: bool, giving_up: bool) -> None: ...

    def tick(self) -> None: ...  # every ORPHAN_CHECK_S

    # A weights file made for download (rnnlab.worker's "export"), or why it could not be.
    def exported(self, request: int, data: bytes | None, error: str | None) -> None: ...


class WorkerPool:
    """`size` workers made by `make_worker(number)`, replaced when they die; `lock` is the
    manager's, held whenever the list of workers is read or changed."""

    def __init__(
        self, size: int, make_worker: Callable[[int], Any], lock: threading.Lock, events: PoolEvents
    ):
        self.size = size
        self.make_worker = make_worker
        self.lock = lock
        self.events = events
        self.workers: list[Any] = []  # started by the update thread
        self.closed = False
        self.start_failures = 0
        self.calibration: Calibration = UNMEASURED  # this machine's, once a worker says
        self._started = 0
        self._thread = threading.Thread(target=self._read_updates, name="rnnlab-updates")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    @property
    def failing(self) -> bool:
        """Workers keep dying before they are ready: the pool has stopped replacing them."""
        return self.start_failures >= MAX_START_FAILURES

    def running(self) -> int:
        """Runs held by the workers. Lock held."""
        return sum(len(worker.jobs) for worker in self.workers)

    def least_busy(self) -> Any | None:
        """The live worker holding the fewest runs, if any. Lock held."""
        candidates = [worker for worker in self.workers if not worker.lost]
        return min(candidates, key=lambda w: len(w.jobs)) if candidates else None

    def pids(self) -> list[int]:
        with self.lock:
            return [w.process.pid for w in self.workers if not w.lost and w.process.pid]

    def close(self) -> list[Any]:
        """Tell every worker to finish its runs and exit; the workers, to join. Lock held."""
        already, self.closed = self.closed, True
        if not already:
            for worker in self.workers:
                worker.send(("close",))
        return list(self.workers)

    def join(self, workers: list[Any], deadline: float | None) -> None:
        """Wait for `workers` to exit (terminating those still alive at the deadline), then
        for the update thread."""

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        for worker in workers:
            worker.process.join(remaining())
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        self._thread.join(remaining())

    def _start_worker(self) -> Any:
        self._started += 1
        return self.make_worker(self._started)

    def _read_updates(self) -> None:
        """The update thread: workers' reports in, dead workers replaced, ticks."""
        self._start_missing()  # seconds, the first time
        next_tick = 0.0
        while True:
            with self.lock:
                pool = [worker for worker in self.workers if not worker.lost]
                if self.closed and not any(w.process.is_alive() for w in pool):
                    return
            waitables: dict[Any, Any] = {}
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
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + ORPHAN_CHECK_S
                self._start_missing()
                self.events.tick()

    def _receive(self, worker: Any) -> bool:
        """Read every waiting message of a worker; False once its connection is broken."""
        try:
            while worker.connection.poll():
                kind, *payload = worker.connection.recv()
                if kind == "update":
                    self.events.update(worker, *payload)
                elif kind == "ready":
                    worker.ready = True
                    self.start_failures = 0
                    _, calibration = payload
                    if calibration is not None:
                        self.calibration = calibration
                elif kind == "exported":
                    self.events.exported(*payload)
        except (EOFError, OSError):
            return False
        except Exception:
            log.exception("a worker sent a message that could not be read")
        return True

    def _lose(self, worker: Any) -> None:
        """A worker died: fail its runs and replace it (unless workers keep dying at
        start)."""
        worker.process.join(5)
        how = worker.how_it_ended()
        if not worker.ready:
            self.start_failures += 1
        with self.lock:
            worker.lost = True
            self.workers.remove(worker)
        self.events.lost(worker.jobs, how, ready=worker.ready, giving_up=self.failing)
        self._start_missing()

    def _start_missing(self) -> None:
        """Start workers until there are `size` of them, unless the pool is closed or
        workers keep failing to start (the fork server killed for memory, say): each
        failure counts, and the manager hears of it. Then the manager hands out work."""
        started = []
        while not self.closed and not self.failing:
            with self.lock:
                if len(self.workers) + len(started) >= self.size:
                    break
            try:
                started.append(self._start_worker())
            except Exception as error:
                log.exception("a training worker could not start")
                self.start_failures += 1
                how = f"{type(error).__name__}: {error}"
                self.events.lost({}, how, ready=False, giving_up=self.failing)
                break  # try again at the next tick
        if not started:
            return
        with self.lock:
            self.workers += started
            closed = self.closed
        if closed:  # shut down while they were starting
            for worker in started:
                worker.send(("close",))
        self.events.started()


def make_local_worker(
    context: Any, store_path: str, torch_threads: int
) -> Callable[[int], WorkerProcess]:
    return lambda number: WorkerProcess(context, store_path, torch_threads, number)


def make_ray_worker(torch_threads: int, cpus: float) -> Callable[[int], Any]:
    from ..cluster import RayWorker  # Ray, only for a pool that uses it

    return lambda number: RayWorker(torch_threads, number, cpus=cpus)
