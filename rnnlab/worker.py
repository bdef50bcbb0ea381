"""A training worker process: it trains many runs at once, each for a short slice in turn.

The job manager (rnnlab.jobs) starts a few of these and hands each run to one of them.
A run is a train() generator; the worker advances each of its active runs for a slice
of time in turn (round robin, see ROUND_S), so thirty runs on two cores all start at
once and share the CPU evenly instead of twenty-eight waiting behind two. It records
every event in the run store itself and sends the server one compact Update per slice:
the new steps and evaluations, and the latest snapshot (no two closer than
SNAPSHOT_SEND_S) as the JSON the engine encoded once, with each layer's view and any new
gradient history beside it, so the server copies bytes instead of decoding them.

Commands, server to worker:   ("start", run_id, config_dict, snapshot_every_s)
                              ("cancel", run_id, reason or None, status)
                              ("close",)
Replies, worker to server:    ("ready", pid)
                              ("update", Update)

A worker exits when told to close or when its connection to the server breaks (the
server died), so workers never outlive the server that started them.

A worker on a machine that shares no disk with the server (a Ray actor, see
rnnlab.cluster) records nothing: the update that ends a run then also carries its last
snapshot, and the server records the runs from the updates (`recorded_events`).
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import torch

from .config import RunConfig
from .probe import layer_view
from .recording import RecordedRun, record_failure
from .store import RunStore
from .train import Evaluation, Event, Snapshot, Started, Step

# How long one run trains before the next one's turn: a round over every run takes about
# ROUND_S (each run's chart then moves a few times a second), but a slice is never
# shorter than MIN_SLICE_S nor longer than MAX_SLICE_S (and always at least one step).
ROUND_S = 0.25
MIN_SLICE_S, MAX_SLICE_S = 0.01, 0.05
# A live run's snapshots go to the server no closer together than this; one that comes
# sooner waits (a newer one replaces it), so every snapshot taken at the pool's cadence
# (rnnlab.jobs SNAPSHOT_EVERY_S, 0.8 s) is sent.
SNAPSHOT_SEND_S = 0.7


@dataclass
class Update:
    """What one slice of one run produced, as the server needs it (plain values only)."""

    run_id: str
    started: dict[str, Any] | None = None  # the Started event, without its config
    steps: list[tuple[int, float, float, float]] = field(default_factory=list)
    evaluations: list[tuple[int, float, float, bool, float]] = field(default_factory=list)
    snapshot_step: int | None = None
    snapshot_json: bytes | None = None  # the whole Snapshot event: its to_json()
    views_json: list[bytes] | None = None  # per layer: JSON of probe.layer_view
    # JSON of {"gradient_step", "steps", "history"} when the snapshot's gradients are
    # newer than the last ones sent for the run, and that gradient_step.
    gradients_json: bytes | None = None
    gradient_step: int | None = None
    finished: dict[str, Any] | None = None  # {"status", "summary", "error"}
    # Only from a worker that records nothing: events of kinds the fields above do not
    # carry (a run's trained weights, say), for the server to record as they are.
    events: list[Event] = field(default_factory=list)


def recorded_events(
    update: Update, config: RunConfig, *, with_snapshot: bool = True
) -> Iterator[Event]:
    """The events an update reports, as a run store takes them, for a server that records
    the runs of a worker that does not (its end is `update.finished`). The snapshot, whose
    decoding costs milliseconds, only `with_snapshot`."""
    if update.started is not None:
        info = {k: v for k, v in update.started.items() if k != "kind"}
        yield Started(config=config.to_dict(), **info)
    for step in update.steps:
        yield Step(*step)
    for evaluation in update.evaluations:
        yield Evaluation(*evaluation)
    if with_snapshot and update.snapshot_json is not None:
        snapshot = json.loads(update.snapshot_json)
        snapshot.pop("kind", None)
        yield Snapshot(**snapshot)
    yield from update.events


class _ActiveRun(RecordedRun):
    """A run this worker trains: its recorded event stream, and what of its snapshots
    was sent when."""

    def __init__(self, store: RunStore, run_id: str, config: RunConfig, snapshot_every_s):
        super().__init__(store, run_id, config, snapshot_every_s=snapshot_every_s)
        self.stepped = False
        self.snapshot_sent_at = -math.inf
        self.waiting_snapshot: Snapshot | None = None  # taken too soon after the last sent
        self.gradient_step_sent: int | None = None


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
        self.turns: collections.deque[str] = collections.deque()
        self.open = True  # False once told to close: finish the runs held, then exit
        self.connected = True

    def serve(self) -> None:
        self.send_message(("ready", os.getpid()))
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
            _, run_id, config, snapshot_every_s = command
            try:
                run = _ActiveRun(self.store, run_id, RunConfig(**config), snapshot_every_s)
            except Exception as error:
                message = record_failure(self.store, run_id, error)
                self.send(
                    Update(run_id, finished={"status": "failed", "summary": None, "error": message})
                )
                return
            self.runs[run_id] = run
            self.turns.append(run_id)
        elif kind == "cancel":
            _, run_id, reason, status = command
            run = self.runs.get(run_id)
            if run is not None:
                run.stop(reason, status)
        elif kind == "close":
            self.open = False
            if not self.runs:
                self.connected = False

    def turn(self) -> None:
        """Train the next run for one slice (or until its first step) and report it."""
        run = self.runs[self.turns[0]]
        self.turns.rotate(-1)
        update = Update(run.run_id)
        self.send_waiting_snapshot(run, update)
        share = min(MAX_SLICE_S, max(MIN_SLICE_S, ROUND_S / len(self.turns)))
        deadline = time.perf_counter() + share
        try:
            for event in run:
                if self.record(run, event, update) or time.perf_counter() >= deadline:
                    break
        except Exception:  # recorded as failed by the run itself
            self.forget(run.run_id)
            update.finished = run.outcome
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

    def forget(self, run_id: str) -> None:
        if self.runs.pop(run_id, None) is not None:
            self.turns.remove(run_id)

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


def preload() -> None:
    """Import what the first optimizer pulls in lazily (seconds), without computing.

    The job manager's fork server imports this module once; each worker forked from it
    starts with these modules loaded, in tens of milliseconds instead of seconds.
    """
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
