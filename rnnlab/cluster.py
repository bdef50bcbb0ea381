"""Training on Ray: the job manager's workers as Ray actors.

    JobManager(executor="ray", ray_address="head-node:6379")   # RNNLAB_EXECUTOR=ray
    run_sweep(grid, executor=RayExecutor(address="head-node:6379"))   # rnnlab.sweep

There is one way onto Ray: a job manager (rnnlab.jobs) hosts each of its workers in a
Ray actor that runs the same rnnlab.worker loop as a local worker process. Commands go
to the actor as calls, its Updates come back as a stream, and a thread here hands them
to the manager through a pipe, so the manager waits on them as on a local worker's. The
dashboard's pool and sweeps (rnnlab.sweep.RayExecutor) both train this way.

Ray is optional (`pip install -e .[ray]`) and imported only when something connects.
The rnnlab package travels to a cluster with the job (Ray's `py_modules`); the cluster
needs PyTorch. The process that asked records the runs in its own run store from the
Updates, so the Ray workers need no disk in common with it and the pages show the runs
live. A worker whose actor dies fails only its own runs, saying so, and is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RAY_MISSING = (
    "Ray is not installed; install it with: pip install 'rnnlab[ray]' (or pip install ray)"
)
# How long connecting to a cluster may take before the address counts as unreachable.
CONNECT_TIMEOUT_S = 5.0


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
        import torch  # in the actor's process; the server that starts it has no torch

        from .worker import warm_up

        torch.set_num_threads(torch_threads)
        warm_up()
        self.connection = ActorConnection()
        threading.Thread(target=self._serve, name="rnnlab-worker", daemon=True).start()

    def _serve(self) -> None:
        from .worker import Worker

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
