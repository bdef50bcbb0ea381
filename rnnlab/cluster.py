"""Training on Ray: a sweep's runs as Ray tasks, and the job manager's workers as Ray actors.

    executor = RayExecutor(address="head-node:6379")   # None: a local Ray runtime
    sweep = run_sweep(grid, executor=executor)          # as on the local pool
    executor.close()                                    # leaves the cluster, or stops ours

    JobManager(executor="ray", ray_address="head-node:6379")   # RNNLAB_EXECUTOR=ray

Ray is optional (`pip install -e .[ray]`) and imported only when something connects.
The rnnlab package travels to a cluster with the job (Ray's `py_modules`); the cluster
needs PyTorch. Either way the process that asked records the runs in its own run store
as their events arrive, so the Ray workers need no disk in common with it and the
pages show the runs live.

A sweep's run is one Ray task that trains with train() and streams its events back in
small batches. A run whose Ray worker dies ends `failed`, saying so; the rest go on.

A job manager on Ray (rnnlab.jobs) hosts each of its workers in a Ray actor that runs
the same rnnlab.worker loop: commands go to the actor as calls, its Updates come back as
a stream, and a thread here hands them to the manager through a pipe, so the manager
waits on them as on a local worker's; it records the runs from the Updates.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import multiprocessing
import queue
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig
from .recording import Recorder
from .store import RunStore, open_store
from .sweep import POLL_S, RunResult
from .tasks import Task, make_task
from .train import Event, train
from .worker import Worker, warm_up

RAY_MISSING = (
    "Ray is not installed; install it with: pip install 'rnnlab[ray]' (or pip install ray)"
)
# How long connecting to a cluster may take before the address counts as unreachable.
CONNECT_TIMEOUT_S = 5.0
# A Ray task sends its events at most this often (and its start and first step at once).
BATCH_S = 0.25
WORKER_DIED = (
    "the Ray worker training this run stopped unexpectedly ({how}); "
    "the sweep's other runs were not affected"
)


class ClusterError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do."""


def import_ray() -> Any:
    """The ray module, or ClusterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(RAY_MISSING) from None
    return ray


def check_reachable(address: str) -> None:
    """Fail fast, with one line, if nothing listens at a cluster address (Ray itself
    retries for minutes). "auto" (the cluster this machine is part of) is left to Ray."""
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host:
        host, port = target, "10001" if address.startswith("ray://") else "6379"
    try:
        port_number = int(port)
    except ValueError:
        raise ClusterError(f"the Ray address {address!r} is not HOST:PORT") from None
    try:
        socket.create_connection((host.strip("[]"), port_number), CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address} ({error.strerror or error}); "
            "is it running (ray start --head) and is the address right?"
        ) from None


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local Ray runtime (None), unless
    this process is connected already. Returns whether it connected now (and so
    should disconnect when done). Raises ClusterError."""
    ray = import_ray()
    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None:
        options.update(address="local", num_cpus=num_cpus, include_dashboard=False)
    else:
        options.update(address=address, runtime_env={"py_modules": [str(Path(__file__).parent)]})
    try:
        if address is None and threading.current_thread() is not threading.main_thread():
            _init_in_lasting_thread(ray, options)
        else:
            ray.init(**options)
    except Exception as error:
        where = "start a local Ray runtime" if address is None else f"join {address}"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ClusterError(f"cannot {where}: {type(error).__name__}: {first_line}") from None
    return True


def _init_in_lasting_thread(ray: Any, options: dict[str, Any]) -> None:
    """ray.init, from a thread that lasts as long as this process. Ray's local processes
    die when the thread that started them ends (Linux's parent-death signal follows the
    thread), and a Streamlit script's thread ends after every rerun."""
    started: queue.Queue[BaseException | None] = queue.Queue()

    def keep() -> None:
        try:
            ray.init(**options)
        except BaseException as error:
            started.put(error)
            return
        started.put(None)
        threading.Event().wait()

    threading.Thread(target=keep, name="rnnlab-ray-runtime", daemon=True).start()
    error = started.get()
    if error is not None:
        raise error


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to (at least 1)."""
    return max(1, int(import_ray().cluster_resources().get("CPU", 1)))


def _sweep_control() -> type:
    """The class of the Ray actor a sweep's tasks ask whether to stop (the driver cannot
    reach into them). Defined in here so that Ray ships the class itself: the actor's
    process then starts without importing rnnlab and PyTorch, in a fraction of the time."""

    class SweepControl:
        def __init__(self) -> None:
            self.stop = False

        def cancel(self) -> None:
            self.stop = True

        def cancelled(self) -> bool:
            return self.stop

    return SweepControl


def train_in_ray(config: dict[str, Any], task: Task | None, control: Any) -> Iterator[list[Event]]:
    """The Ray task of one run: train() it, yielding its events in batches (see BATCH_S).

    Between batches it asks the sweep's control actor, without waiting, whether the
    sweep was cancelled; if so the run stops at its next step and ends as usual.
    """
    import ray

    torch.set_num_threads(1)  # as a local pool worker, so the same seed gives the same run
    cancel = threading.Event()
    batch: list[Event] = []
    sent_at = time.monotonic()
    asked = None
    events = train(RunConfig(**config), cancel=cancel, task=task, snapshot_every_s=math.inf)
    for event in events:
        batch.append(event)
        first_step = event.kind == "step" and event.step == 1
        if event.kind == "step" and not first_step and time.monotonic() - sent_at < BATCH_S:
            continue
        yield batch
        batch, sent_at = [], time.monotonic()
        if asked is None:
            asked = control.cancelled.remote()
        elif ray.wait([asked], timeout=0)[0]:
            if ray.get(asked):
                cancel.set()
            asked = None
    if batch:
        yield batch


@dataclass
class _RemoteRun:
    """A run of the sweep in flight: its config, its recorder here, whether it started."""

    config: RunConfig
    recorder: Recorder
    started: bool = False


class RayExecutor:
    """Trains a sweep's runs as Ray tasks, one CPU each; see the module doc.

    As many runs are in flight as the cluster has CPUs; the rest wait here, unrecorded,
    so cancelling drops them. Ctrl-C while it waits cancels the sweep:
    the runs training stop at their next step and come back `stopped`, like the rest.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        store: RunStore | None = None,
    ):
        self.address = address  # None: this process's Ray runtime, or a new local one
        self.num_cpus = num_cpus  # CPUs of a new local runtime (None: every core)
        self._store = store
        self._connected = False
        self._cancelled = False

    @property
    def store(self) -> RunStore:
        if self._store is None:
            self._store = open_store()
        return self._store

    def connect(self) -> None:
        """Join the cluster or start the local runtime now (run() does it otherwise)."""
        self._connected = connect(self.address, num_cpus=self.num_cpus) or self._connected

    def close(self) -> None:
        """Leave the cluster (a local runtime stops) if this executor connected."""
        if self._connected:
            import_ray().shutdown()
            self._connected = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Takes no lock, so a signal handler may call it; run() acts within POLL_S."""
        self._cancelled = True

    def run(
        self, configs: Sequence[RunConfig], *, sweep_id: str, owner: str
    ) -> Iterator[RunResult]:
        self.connect()
        ray = import_ray()
        store = self.store
        remote_train = ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)(train_in_ray)
        control = ray.remote(num_cpus=0)(_sweep_control()).remote()
        capacity = cluster_cpus()
        pending = collections.deque(configs)
        active: dict[Any, _RemoteRun] = {}  # ObjectRefGenerator -> its run
        self._cancelled = cancelled = False
        try:
            while pending or active:
                if self._cancelled and not cancelled:
                    cancelled = True
                    pending.clear()
                    control.cancel.remote()
                    for stream, run in active.items():
                        if not run.started:
                            ray.cancel(stream)
                while pending and len(active) < capacity:
                    config = pending.popleft()
                    run_id = store.create_run(config, owner=owner, sweep_id=sweep_id)
                    task = make_task(config) if config.text_file else None  # the file is here
                    stream = remote_train.remote(config.to_dict(), task, control)
                    active[stream] = _RemoteRun(config, Recorder(store, run_id))
                try:
                    ready, _ = ray.wait(list(active), num_returns=1, timeout=POLL_S)
                    if ready:
                        rest = [stream for stream in active if stream not in ready]
                        ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
                except KeyboardInterrupt:
                    if self._cancelled:
                        raise  # a second Ctrl-C: quit at once
                    self.cancel()
                    continue
                for stream in ready:
                    result = self._take(ray, stream, active[stream], cancelled)
                    if result is not None:
                        del active[stream]
                        yield result
        finally:
            for stream, run in active.items():  # quit at once, or an error here
                ray.cancel(stream, force=True)
                store.finish(run.recorder.run_id, "interrupted", error="the sweep was quit")
            ray.kill(control)

    def _take(self, ray: Any, stream: Any, run: _RemoteRun, cancelled: bool) -> RunResult | None:
        """Record the next batch of a run's events; its result once it has ended."""
        recorder = run.recorder
        try:
            batch = ray.get(next(stream))
        except StopIteration:
            if recorder.outcome is None:  # cancelled before it started
                status = "stopped" if cancelled else "failed"
                error = None if cancelled else "the Ray task ended without finishing the run"
                recorder.store.finish(recorder.run_id, status, error=error)
                recorder.outcome = {"status": status, "summary": None, "error": error}
        except ray.exceptions.TaskCancelledError:
            recorder.store.finish(recorder.run_id, "stopped")
            recorder.outcome = {"status": "stopped", "summary": None, "error": None}
        except ray.exceptions.RayTaskError as error:  # train() raised in the task
            recorder.fail(error.cause if isinstance(error.cause, Exception) else str(error))
        except ray.exceptions.WorkerCrashedError:
            recorder.fail(WORKER_DIED.format(how="killed, or out of memory?"))
        except ray.exceptions.RayError as error:  # its node died, its results were lost, ...
            recorder.fail(WORKER_DIED.format(how=type(error).__name__))
        else:
            for event in batch:
                run.started = run.started or event.kind == "started"
                recorder.record(event)
            return None
        return RunResult(run_id=recorder.run_id, config=run.config, **recorder.outcome)


class ActorConnection:
    """A worker's connection inside a Ray actor: the commands the server sent, in the
    order it sent them (a threaded actor's calls may run out of order), and the messages
    the worker sends, collected by the actor's message stream."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._commands: dict[int, tuple] = {}
        self._next = 0  # the number of the next command to hand over
        self._outgoing: list[tuple] = []
        self._closed = False

    def deliver(self, number: int, command: tuple) -> None:
        with self._changed:
            self._commands[number] = command
            self._changed.notify_all()

    def poll(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._next in self._commands, timeout)

    def recv(self) -> tuple:
        with self._changed:
            self._next += 1
            return self._commands.pop(self._next - 1)

    def send(self, message: tuple) -> None:
        with self._changed:
            self._outgoing.append(message)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def collect(self, timeout: float) -> tuple[list[tuple], bool]:
        """The messages sent since the last call (waiting up to `timeout` for one), and
        whether the worker is done and every message collected."""
        with self._changed:
            self._changed.wait_for(lambda: self._outgoing or self._closed, timeout)
            batch, self._outgoing = self._outgoing, []
            return batch, self._closed and not batch


class PoolWorkerActor:
    """A Ray actor (two threads, one CPU unless there are more workers than CPUs) that
    runs one rnnlab.worker loop and records nothing: `command` takes the server's
    commands, `messages` streams the replies."""

    def __init__(self, torch_threads: int) -> None:
        torch.set_num_threads(torch_threads)
        warm_up()
        self.connection = ActorConnection()
        threading.Thread(target=self._serve, name="rnnlab-worker", daemon=True).start()

    def _serve(self) -> None:
        try:
            Worker(self.connection, None).serve()
        finally:
            self.connection.close()

    def command(self, number: int, command: tuple) -> None:
        self.connection.deliver(number, command)

    def messages(self) -> Iterator[list[tuple]]:
        while True:
            batch, done = self.connection.collect(timeout=1.0)
            if batch:
                yield batch
            if done:
                return


class _ActorProcess:
    """What the job manager asks of a worker's process, for a worker in a Ray actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.sentinel, self._alive = multiprocessing.Pipe(duplex=False)  # EOF once ended
        self.pid: int | None = None  # the actor's, once it is ready
        self.how = "it ended"
        self._ended = threading.Event()

    def ended(self, how: str) -> None:
        self.how = how
        self._ended.set()
        self._alive.close()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)

    def terminate(self) -> None:
        import_ray().kill(self.actor)


class RayWorker:
    """The job manager's handle on one worker in a Ray actor: the same `connection`,
    `process`, `send` and bookkeeping as rnnlab.jobs' handle on a worker process, and
    `server_records`: the manager records this worker's runs from its Updates."""

    server_records = True

    def __init__(self, torch_threads: int, number: int, *, cpus: float = 1.0):
        ray = import_ray()
        actor_class = ray.remote(num_cpus=cpus, max_concurrency=2)(PoolWorkerActor)
        actor = actor_class.remote(torch_threads)
        self.process = _ActorProcess(actor)
        self.connection, updates = multiprocessing.Pipe(duplex=False)
        self.send_lock = threading.Lock()
        self._commands_sent = 0
        self.jobs: dict[str, Any] = {}
        self.ready = False
        self.lost = False
        threading.Thread(
            target=self._forward, args=(updates,), name=f"rnnlab-ray-worker-{number}", daemon=True
        ).start()

    def send(self, command: tuple) -> None:
        """Send a command; a worker whose actor died is found by the manager's thread."""
        with self.send_lock:
            self.process.actor.command.remote(self._commands_sent, command)
            self._commands_sent += 1

    def how_it_ended(self) -> str:
        return self.process.how

    def _forward(self, updates: multiprocessing.connection.Connection) -> None:
        """Hand the actor's messages to the manager until the actor ends or dies."""
        ray = import_ray()
        how = "it closed"
        try:
            stream = self.process.actor.messages.options(num_returns="streaming").remote()
            for reference in stream:
                for message in ray.get(reference):
                    if message[0] == "ready":
                        self.process.pid = message[1]
                    updates.send(message)
        except Exception as error:  # the actor died: killed, out of memory, its node lost
            how = f"its Ray actor died: {type(error).__name__}"
        finally:
            updates.close()
            self.process.ended(how)
            with contextlib.suppress(Exception):  # Ray may be shut down already
                ray.kill(self.process.actor)
