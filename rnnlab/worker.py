"""A training worker process: it trains many runs at once, each for a short slice in turn.

The job manager (rnnlab.jobs) starts a few of these and hands each run to one of them.
A run is a train() generator; the worker advances its active runs for a slice of time
each (see ROUND_S), so thirty runs on two cores all start at once instead of
twenty-eight waiting behind two. The time is shared by owner, not by run: the next
slice goes to the owner that has had the least of this worker's time (counted as many
times over as the owner has workers), to its runs in turn, so a session racing thirty
runs gets no more of the processors than one training one, and a run whose steps are
long pays for them in turns it waits. It records
every event in the run store itself and sends the server one compact Update per slice:
the new steps and evaluations, and the latest snapshot (no two closer than
SNAPSHOT_SEND_S) as the JSON the engine encoded once, with each layer's view and any new
gradient history beside it, so the server copies bytes instead of decoding them.

Commands, server to worker:   ("start", run_id, config_dict, snapshot_every_s, owner)
                              ("cancel", run_id, reason or None, status)
                              ("spread", owner, workers the owner trains on; 0: none)
                              ("export", request_id, weights bytes, run_id, summary)
                              ("close",)
Replies, worker to server:    ("ready", pid, calibration or None)
                              ("exported", request_id, file bytes or None, error or None)
                              ("update", Update)

A worker exits when told to close or when its connection to the server breaks (the
server died), so workers never outlive the server that started them.

A worker on a machine that shares no disk with the server (a Ray actor, see
rnnlab.cluster) records nothing: the update that ends a run then also carries its last
snapshot, and the server records the runs from the updates (`recorded_events`).
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
import json
import math
import os
import signal
import time
from multiprocessing.connection import Connection

import torch

from .config import RunConfig
from .events import (
    MAX_INFLUENCE_HISTORY,
    MAX_TRAJECTORY_HISTORY,
    influence_view,
    layer_view,
    thinned_append,
    trajectory_point,
    trajectory_view,
)
from .jobs.sizing import MAX_STEP_S, Calibration, step_terms
from .recording import RecordedRun, record_failure
from .store import RunStore
from .train import Event, Snapshot, train
from .updates import Update
from .weights import WeightsError, exported_weights

# How long one run trains before the next one's turn: a round over every run takes about
# ROUND_S (each run's chart then moves a few times a second), but a slice is never
# shorter than MIN_SLICE_S nor longer than MAX_SLICE_S (and always at least one step).
ROUND_S = 0.25
MIN_SLICE_S, MAX_SLICE_S = 0.01, 0.05
# A live run's snapshots go to the server no closer together than this; one that comes
# sooner waits (a newer one replaces it), so every snapshot taken at the pool's cadence
# (rnnlab.jobs SNAPSHOT_EVERY_S, 0.8 s) is sent.
SNAPSHOT_SEND_S = 0.7
# A run whose steps take longer than this (after its first) is stopped, failed, saying
# why: admission estimates a step before a run starts (rnnlab.jobs.sizing), this is the
# measured guarantee.
STEP_LIMIT_S = 2 * MAX_STEP_S


class _ActiveRun(RecordedRun):
    """A run this worker trains: its recorded event stream, and what of its snapshots
    was sent when."""

    def __init__(
        self, store: RunStore, run_id: str, config: RunConfig, snapshot_every_s, owner: str
    ):
        super().__init__(store, run_id, config, snapshot_every_s=snapshot_every_s)
        self.owner = owner
        self.stepped = False
        self.snapshot_sent_at = -math.inf
        self.waiting_snapshot: Snapshot | None = None  # taken too soon after the last sent
        self.gradient_step_sent: int | None = None
        # [step, sequence 0's influence on the last prediction] per snapshot with
        # influence; per layer, the paths of the snapshots on its latest axes.
        self.influence_history: list[list] = []
        self.trajectory_history: list[list[dict]] = []


class _NotRecorded:
    """The run store of a worker whose server records its runs: it keeps nothing."""

    def add(self, run_id: str, event: Event) -> None:
        pass

    def finish(self, run_id: str, status: str, summary=None, *, error=None) -> None:
        pass

    def fail(self, run_id: str, error: str) -> None:
        pass

    def close(self) -> None:
        pass


class Worker:
    """The loop of one worker process; see the module docstring. Without a store, the
    server records the runs from the updates."""

    def __init__(self, connection: Connection, store: RunStore | None):
        self.connection = connection
        self.server_records = store is None
        self.store = store if store is not None else _NotRecorded()
        self.runs: dict[str, _ActiveRun] = {}
        # owner -> its runs here, the next to train first; and the worker's seconds each
        # owner has had (a newcomer starts level with the least served, not at zero).
        self.turns: dict[str, collections.deque[str]] = {}
        self.served: dict[str, float] = {}
        self.spread: dict[str, int] = {}  # owners on several workers pay for each of them
        self.open = True  # False once told to close: finish the runs held, then exit
        self.connected = True

    def serve(self) -> None:
        self.send_message(("ready", os.getpid(), CALIBRATION))
        while self.open or self.runs:
            if self.connected:
                self.read_commands(wait=None if not self.runs else 0)
            if self.turns:
                self.turn()
        self.store.close()

    def read_commands(self, wait: float | None) -> None:
        """Handle every waiting command; with nothing to train, block until one comes."""
        try:
            while self.connection.poll(wait):
                self.handle(self.connection.recv())
                wait = 0
        except (EOFError, OSError):  # the server is gone: stop what runs, then exit
            self.connected = self.open = False
            for run in self.runs.values():
                run.stop("the server shut down", "interrupted")

    def handle(self, command: tuple) -> None:
        kind = command[0]
        if kind == "start":
            _, run_id, config, snapshot_every_s, owner = command
            try:
                config = RunConfig(**config)
                run = _ActiveRun(self.store, run_id, config, snapshot_every_s, owner)
            except Exception as error:
                message = record_failure(self.store, run_id, error)
                self.send(
                    Update(run_id, finished={"status": "failed", "summary": None, "error": message})
                )
                return
            self.runs[run_id] = run
            if owner not in self.turns:
                self.served[owner] = min(self.served.values(), default=0.0)
                self.turns[owner] = collections.deque()
            self.turns[owner].append(run_id)
        elif kind == "cancel":
            _, run_id, reason, status = command
            run = self.runs.get(run_id)
            if run is not None:
                run.stop(reason, status)
        elif kind == "spread":
            _, owner, workers = command
            if workers:
                self.spread[owner] = workers
            else:
                self.spread.pop(owner, None)
        elif kind == "export":  # a download: PyTorch's work, which the server never does
            _, request, data, run_id, summary = command
            try:
                self.send_message(
                    ("exported", request, exported_weights(data, run_id, summary), None)
                )
            except WeightsError as error:
                self.send_message(("exported", request, None, str(error)))
        elif kind == "close":
            self.open = False
            if not self.runs:
                self.connected = False

    def turn(self) -> None:
        """Train the next run of the least served owner for one slice (or until its
        first step), charge the owner the time it took, and report it."""
        owner = min(self.turns, key=self.served.__getitem__)
        runs = self.turns[owner]
        run = self.runs[runs[0]]
        runs.rotate(-1)
        update = Update(run.run_id)
        self.send_waiting_snapshot(run, update)
        share = min(MAX_SLICE_S, max(MIN_SLICE_S, ROUND_S / len(self.runs)))
        began, cpu_began = time.perf_counter(), time.process_time()
        deadline, since = began + share, began
        try:
            for event in run:
                now = time.perf_counter()
                if event.kind == "step" and run.stepped and now - since > STEP_LIMIT_S:
                    run.stop(_too_slow(now - since), "failed")
                since = now
                if self.record(run, event, update) or now >= deadline:
                    break
        except Exception:  # recorded as failed by the run itself
            self.forget(run.run_id)
            update.finished = run.outcome
        if owner in self.served:
            self.served[owner] += (time.perf_counter() - began) * self.spread.get(owner, 1)
        update.cpu_s = time.process_time() - cpu_began
        self.send(update)

    def record(self, run: _ActiveRun, event: Event, update: Update) -> bool:
        """Add one (recorded) event to the update; True when the slice should end."""
        kind = event.kind
        if kind == "finished":
            self.forget(run.run_id)
            if run.waiting_snapshot is not None:  # the last one: to show, and to record
                self.attach_snapshot(run, update)
            update.finished = run.outcome
            return True
        if kind == "step":
            update.steps.append((event.step, event.loss, event.grad_norm, event.elapsed_s))
            if not run.stepped:
                run.stepped = True
                return True  # the page's first point should not wait for a whole slice
        elif kind == "eval":
            update.evaluations.append(
                (event.step, event.loss, event.metric, bool(event.solved), event.elapsed_s)
            )
        elif kind == "started":
            update.started = {k: v for k, v in event.to_dict().items() if k != "config"}
        elif kind == "snapshot":
            run.waiting_snapshot = event
            self.send_waiting_snapshot(run, update)
        elif self.server_records:
            update.events.append(event)
        return False

    def send_waiting_snapshot(self, run: _ActiveRun, update: Update) -> None:
        """Attach the run's waiting snapshot if SNAPSHOT_SEND_S has passed since the last."""
        waited = time.monotonic() - run.snapshot_sent_at
        if run.waiting_snapshot is not None and waited >= SNAPSHOT_SEND_S:
            self.attach_snapshot(run, update)

    def attach_snapshot(self, run: _ActiveRun, update: Update) -> None:
        """Put the run's waiting snapshot in the update: its JSON, encoded once by the
        event, each layer's view, and the gradient history when it is new."""
        event, run.waiting_snapshot = run.waiting_snapshot, None
        run.snapshot_sent_at = time.monotonic()
        snapshot = event.to_dict()
        update.snapshot_step = event.step
        update.snapshot_json = event.to_json()
        update.views_json = [
            json.dumps(layer_view(snapshot, layer), separators=(",", ":")).encode()
            for layer in range(len(event.layers))
        ]
        if run.gradient_step_sent is None or event.gradient_step > run.gradient_step_sent:
            run.gradient_step_sent = event.gradient_step
            gradients = {
                "gradient_step": event.gradient_step,
                "steps": event.kept["steps"],
                "history": event.gradient_history,
            }
            update.gradients_json = json.dumps(gradients, separators=(",", ":")).encode()
            update.gradient_step = event.gradient_step
        self.attach_influence(run, snapshot, update)
        self.attach_trajectories(run, snapshot, update)

    def attach_influence(self, run: _ActiveRun, snapshot: dict, update: Update) -> None:
        """The snapshot's influence and the run's history of it, if newer than the last sent."""
        influence = snapshot.get("influence")
        history = run.influence_history
        if influence is None or (history and influence["step"] <= history[-1][0]):
            return
        entry = [influence["step"], influence["last"][0] if influence["last"] else []]
        run.influence_history = thinned_append(history, entry, MAX_INFLUENCE_HISTORY)
        view = influence_view(snapshot, run.influence_history)
        update.influence_json = json.dumps(view, separators=(",", ":")).encode()
        update.influence_step = influence["step"]

    def attach_trajectories(self, run: _ActiveRun, snapshot: dict, update: Update) -> None:
        """Each layer's path on its axes and the run's earlier paths on the same axes (a
        refit starts them again), if the snapshot's paths are newer than the last sent."""
        entries = snapshot.get("trajectory") or []
        while len(run.trajectory_history) < len(entries):
            run.trajectory_history.append([])
        fresh = False
        for layer, entry in enumerate(entries):
            history = run.trajectory_history[layer]
            if entry is None or (history and entry["step"] <= history[-1]["step"]):
                continue
            if history and history[-1]["reference_step"] != entry["reference_step"]:
                history = []
            point = trajectory_point(entry)
            run.trajectory_history[layer] = thinned_append(history, point, MAX_TRAJECTORY_HISTORY)
            fresh = True
        if not fresh:
            return
        views = [
            trajectory_view(snapshot, layer, run.trajectory_history[layer])
            for layer in range(len(entries))
        ]
        update.trajectories_json = [
            None if view is None else json.dumps(view, separators=(",", ":")).encode()
            for view in views
        ]
        update.trajectory_step = max(entry["step"] for entry in entries if entry is not None)

    def forget(self, run_id: str) -> None:
        """Drop a run that ended, and give its memory back to the system."""
        run = self.runs.pop(run_id, None)
        if run is None:
            return
        runs = self.turns[run.owner]
        runs.remove(run_id)
        if not runs:
            del self.turns[run.owner], self.served[run.owner]
        del run
        gc.collect()
        _release_free_memory()

    def send(self, update: Update) -> None:
        self.send_message(("update", update))

    def send_message(self, message: tuple) -> None:
        if not self.connected:
            return
        try:
            self.connection.send(message)
        except (BrokenPipeError, EOFError, OSError):
            self.connected = self.open = False
            for run in self.runs.values():
                run.stop("the server shut down", "interrupted")


def _too_slow(seconds: float) -> str:
    return (
        f"one training step took {seconds:.1f} s on this server, more than the "
        f"{MAX_STEP_S:g} s a shared worker allows (the other runs wait for every step); "
        "lower hidden_size, batch_size, seq_len or num_layers"
    )


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return library if library is not None and hasattr(library, "malloc_trim") else None


_LIBC = _glibc()


def _release_free_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise): a worker that
    trained a large run then holds only what its remaining runs use."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def warm_up() -> None:
    """Run each fused cell once, forward and backward, so a user's first step is not slow."""
    for module in (torch.nn.RNN(2, 2), torch.nn.LSTM(2, 2), torch.nn.GRU(2, 2)):
        optimizer = torch.optim.Adam(module.parameters())
        output, _ = module(torch.zeros(1, 3, 2))
        output.sum().backward()
        optimizer.step()


def main(connection: Connection, store_path: str, torch_threads: int = 1) -> None:
    """A worker process's entry point (see rnnlab.jobs).

    Ctrl-C in a terminal reaches every process of the group; a worker leaves it to the
    server, which stops the runs (and so the worker) in order.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(torch_threads)
    warm_up()
    Worker(connection, RunStore(store_path)).serve()


def _step_seconds(config: RunConfig) -> float:
    """The fastest of a few real training steps of `config`, after the first."""
    times, last = [], None
    for event in train(config, snapshot_every_s=None):
        if event.kind == "step":
            now = time.perf_counter()
            if last is not None:
                times.append(now - last)
            last = now
    return min(times)


# Runs whose steps each weigh on one term of the step-time model (rnnlab.jobs.sizing):
# time steps, matrix products, parameters, elementwise gate work; then mixtures of them,
# with each cell and a task that answers at every step.
CALIBRATION_RUNS = (
    dict(task="adding", hidden_size=4, seq_len=200, batch_size=1),
    dict(task="adding", hidden_size=128, seq_len=25, batch_size=64),
    dict(task="adding", hidden_size=512, num_layers=2, seq_len=2, batch_size=1),
    dict(task="adding", hidden_size=32, seq_len=100, batch_size=256),
    dict(task="adding", hidden_size=256, num_layers=2, seq_len=50, batch_size=32),
    dict(task="copy", cell="gru", hidden_size=64, seq_len=30, batch_size=64),
    dict(task="adding", cell="rnn", hidden_size=128, seq_len=100, batch_size=64),
    dict(task="copy", cell="lstm", hidden_size=96, num_layers=2, seq_len=40, batch_size=48),
)


def calibrate() -> Calibration:
    """This machine's step-time model, fitted to real steps of CALIBRATION_RUNS (each
    run's relative error weighs the same; a term that fits below zero is left out)."""
    configs = [RunConfig(steps=3, **run) for run in CALIBRATION_RUNS]
    seconds = torch.tensor([_step_seconds(config) for config in configs], dtype=torch.float64)
    terms = torch.tensor([step_terms(config) for config in configs], dtype=torch.float64)
    used = list(range(terms.shape[1]))
    while True:
        scaled = terms[:, used] / seconds[:, None]  # rows in relative error
        fitted = torch.linalg.lstsq(scaled, torch.ones_like(seconds)).solution
        if (fitted >= 0).all():
            break
        used.pop(int(fitted.argmin()))
    coefficients = [0.0] * terms.shape[1]
    for term, value in zip(used, fitted.tolist(), strict=True):
        coefficients[term] = value
    return Calibration(*coefficients)


# This machine's calibration: measured once, by the fork server that every local worker
# is forked from (preload), and reported by each worker when it is ready.
CALIBRATION: Calibration | None = None


def preload() -> None:
    """Import what the first optimizer pulls in lazily (seconds), and time this machine.

    The job manager's fork server imports this module once; each worker forked from it
    starts with these modules loaded, in tens of milliseconds instead of seconds, and
    with the machine's calibration.
    """
    global CALIBRATION
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    torch.set_num_threads(1)
    CALIBRATION = calibrate()
    gc.collect()
    _release_free_memory()  # what the calibration's runs held, before workers fork
