"""The live feed: what the server knows of each run while it trains, in memory.

Every page and route reads a run's progress in one JSON shape (`Progress.state()`):
the live route adds the new points of its curve (`LiveRun.live`), the room and a race add
its settings (`LiveRun.row`), and a run no longer in memory is answered in the same
shapes from the store, read once (rnnlab.jobs.stored). Gate pictures arrive already encoded
from the workers (rnnlab.worker) and are handed on as the bytes they came in.

What a run learns from is its owner's when the owner gave it (a typed word, an uploaded
text): everyone else is answered the public shapes, which keep settings, curves and gate
pictures but withhold that text (`public_config`, `public_error`, and gate pictures without
the predictions on the probe, made once per snapshot when it arrives).
"""

from __future__ import annotations

import array
import bisect
import functools
import json
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import RunConfig
from ..store import ACTIVE_STATUSES, RunNotFound, RunStore
from ..updates import Update
from ..values import finite_or_none

# steps/s is measured over windows of at least this length.
RATE_WINDOW_S = 0.5
# A curve in the room's or a race's rows: the steps that are multiples of steps / this.
ROW_POINTS = 400
# A live answer's curve keeps at most this many points after its `since` (every k-th,
# and the last): a page that asks a 200,000-step run from step 0 gets a bounded answer,
# as many points as live.js draws.
LIVE_POINTS = 3000
# What a public answer shows in place of what a run's owner typed or uploaded.
WITHHELD = "(private)"


# Whether the one asking is the owner it is given: a page's answers show a run's private
# inputs only to its owner (ui/answers.py tells by a key each session holds).
AskerIs = Callable[[str], bool]


def nobody(owner: str) -> bool:
    """The AskerIs of an answer for anyone: no run's owner."""
    return False


def private_inputs(task: str, text_file: str) -> bool:
    """Whether a run learns from what its owner gave: the hello task's typed word, or an
    uploaded text. Its predictions on the probe then show that text."""
    return task == "hello" or (task == "text" and bool(text_file))


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as anyone may see them: the word and the uploaded file's path
    withheld (the word is withheld whatever the task: it stays in the settings)."""
    return {
        **config,
        "word": WITHHELD,
        "text_file": WITHHELD if config.get("text_file") else "",
    }


def public_error(error: str | None, config: dict[str, Any]) -> str | None:
    """A run's error message without its uploaded file's path (a text file that cannot be
    read says where it is; no error quotes the word, which is checked before a run starts)."""
    path = config.get("text_file")
    return error.replace(path, WITHHELD) if error and path else error


def without_inputs(view: dict[str, Any]) -> dict[str, Any]:
    """A layer view (rnnlab.events.layer_view) without the probe's inputs: its predictions
    list the characters of the probe sequence (the word, the uploaded text). The pictures
    and statistics stay; `private` tells the page why there are no predictions."""
    return {**view, "predictions": None, "private": True}


def _rewritten(payload: bytes, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    """An encoded view, decoded, changed and encoded again."""
    return json.dumps(change(json.loads(payload)), separators=(",", ":")).encode()


def public_view(payload: bytes) -> bytes:
    """A layer view's JSON without the probe's inputs (without_inputs)."""
    return _rewritten(payload, without_inputs)


def without_symbols(view: dict[str, Any]) -> dict[str, Any]:
    """An influence view (rnnlab.events.influence_view) without the probe's symbols (the
    characters of the word or the uploaded text): its axes then say t only."""
    return {**view, "symbols": None, "private": True}


def public_influence(payload: bytes) -> bytes:
    """An influence view's JSON without the probe's symbols (without_symbols)."""
    return _rewritten(payload, without_symbols)


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
    baseline: float | None = None  # the task's chance-level loss, as the run measured it
    solved: bool = False
    solved_at: int | None = None  # the first step an evaluation found it solved
    steps_per_s: float | None = None
    eta_s: float | None = None
    queue_position: int | None = None  # 1 = next to start; None unless queued
    snapshot: dict[str, Any] | None = None  # latest Snapshot event, as its to_dict()
    summary: dict[str, Any] | None = None  # once finished
    error: str | None = None
    sweep_id: str | None = None
    label: str | None = None  # the name its owner goes by in the room, if it gave one
    cpu_s: float = 0.0  # processor time its training took so far (0 for a stored run)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def state(self, *, public: bool = False) -> dict[str, Any]:
        """The one JSON shape of a run's progress that every route and page reads; `public`:
        as anyone but its owner may see it."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "step": self.step,
            "steps": self.steps,
            "loss": self.loss,
            "held_out_loss": self.held_out_loss,
            "metric": self.metric,
            "metric_name": self.metric_name,
            "solved": self.solved,
            "solved_at": self.solved_at,
            "steps_per_s": self.steps_per_s,
            "eta_s": self.eta_s,
            "queue_position": self.queue_position,
            "error": public_error(self.error, self.config) if public else self.error,
        }

    @classmethod
    def stored(cls, store: RunStore, run_id: str) -> Progress | None:
        """A run's progress as the store has it; None if there is no such run."""
        try:
            record = store.get_run(run_id)
        except RunNotFound:
            return None
        summary = record.summary or {}
        return cls(
            run_id=record.id,
            owner=record.owner,
            status=record.status,
            config=record.config,
            step=record.step,
            steps=record.config.get("steps", 0),
            loss=summary.get("final_train_loss"),
            held_out_loss=summary.get("final_loss"),
            metric=summary.get("metric"),
            metric_name=summary.get("metric_name"),
            baseline=(record.info or {}).get("baseline"),
            solved=bool(summary.get("solved")),
            solved_at=summary.get("solved_at_step"),
            steps_per_s=summary.get("steps_per_s"),
            summary=record.summary,
            error=record.error,
            sweep_id=record.sweep_id,
        )


def time_steps(config: dict[str, Any]) -> int:
    """The time steps a run's sequences have (hello: set by its word)."""
    return len(config["word"]) - 1 if config["task"] == "hello" else config["seq_len"]


def row_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings a room's or a race's row shows of a run."""
    return {
        "task": config["task"],
        "cell": config["cell"],
        "activation": config["activation"],
        "hidden_size": config["hidden_size"],
        "num_layers": config["num_layers"],
        "seq_len": time_steps(config),
        "lr": config["lr"],
        "seed": config["seed"],
    }


def row(
    progress: Progress,
    steps: list[int],
    losses: list[float | None],
    since: int,
    name: str | None,
    *,
    with_config: bool,
    public: bool,
    stride: int = 1,
) -> dict[str, Any]:
    """A run as a row of the room or a race: progress, settings, name, and the points of
    its curve after step `since` whose steps are multiples of `stride` (and an ended
    run's last one), so that a run drawn from several answers is the same as one drawn
    from one; `seen` is the step to ask from next. `public`: as anyone but its owner may
    see it."""
    kept = [i for i, step in enumerate(steps) if step > since and step % stride == 0]
    last = len(steps) - 1
    if not progress.active and steps and steps[last] > since and (not kept or kept[-1] != last):
        kept.append(last)
    config = progress.config
    return {
        **progress.state(public=public),
        **row_settings(config),
        **({"config": public_config(config) if public else config} if with_config else {}),
        "name": name,
        "final_loss": (progress.summary or {}).get("final_loss"),
        "points": {"step": [steps[i] for i in kept], "loss": [losses[i] for i in kept]},
        "seen": steps[kept[-1]] if kept else since,
    }


@dataclass(eq=False)
class LiveRun:
    """A job's live state, written by the manager's update thread, read by everyone."""

    run_id: str
    owner: str
    config: RunConfig
    sweep_id: str | None
    snapshot_every_s: float | None = None
    label: str | None = None
    study: str | None = None  # the study it is a trial of (rnnlab.tune), and which trial
    trial: int | None = None
    status: str = "queued"
    worker: Any = None  # the handle of the worker training it (rnnlab.jobs.pool)
    step: int = 0
    loss: float | None = None
    held_out_loss: float | None = None
    metric: float | None = None
    metric_name: str | None = None
    baseline: float | None = None  # the task's chance-level loss, as the run measured it
    solved: bool = False
    solved_at: int | None = None
    steps_per_s: float | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    cpu_s: float = 0.0  # processor time its slices took, as the worker measured them
    # The curve so far: one entry per training step, NaN where the loss was not finite.
    curve_steps: array.array = field(default_factory=lambda: array.array("l"))
    curve_losses: array.array = field(default_factory=lambda: array.array("d"))
    evaluations: list[tuple[int, float | None, float | None, bool]] = field(default_factory=list)
    # The latest snapshot as the worker encoded it: whole, per layer, and the gradient
    # history; decoded only when someone asks for the snapshot as a dict. The views as
    # anyone but the owner may see them: the same bytes unless the run has private inputs.
    snapshot_step: int | None = None
    snapshot_json: bytes | None = None
    views_json: list[bytes] | None = None
    public_views_json: list[bytes] | None = None
    gradient_step: int | None = None
    gradients_json: bytes | None = None
    # The influence view with its history (as anyone but the owner may see it: without
    # the probe's symbols if the run is private), and each layer's trajectory view.
    influence_step: int | None = None
    influence_json: bytes | None = None
    public_influence_json: bytes | None = None
    trajectory_step: int | None = None
    trajectories_json: list[bytes | None] | None = None
    _snapshot: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Set when the job is stopped for a reason other than its owner asking.
    stop_reason: str | None = None
    stop_status: str = "stopped"  # "interrupted" when the pool shuts down, "pruned", ...
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

    @functools.cached_property
    def private(self) -> bool:
        """Whether the run learns from what its owner typed or uploaded (private_inputs)."""
        return private_inputs(self.config.task, self.config.text_file)

    def forget_snapshot(self) -> None:
        self.snapshot_json = self.views_json = self.public_views_json = self._snapshot = None
        self.influence_json = self.public_influence_json = self.trajectories_json = None

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
            baseline=self.baseline,
            solved=self.solved,
            solved_at=self.solved_at,
            steps_per_s=self.steps_per_s,
            eta_s=self.eta_s(),
            queue_position=queue_position,
            snapshot=self.snapshot() if with_snapshot else None,
            summary=self.summary,
            error=self.error,
            sweep_id=self.sweep_id,
            label=self.label,
            cpu_s=self.cpu_s,
        )

    def apply(self, update: Update) -> None:
        """Take in what the worker reports of one slice of training."""
        self.cpu_s += update.cpu_s
        if update.started is not None:
            self.metric_name = update.started.get("metric_name")
            self.baseline = update.started.get("baseline")
        for step, loss, _grad_norm, elapsed_s in update.steps:
            self.curve_steps.append(step)
            self.curve_losses.append(loss if math.isfinite(loss) else math.nan)
            self.step, self.loss = step, finite_or_none(loss)
            if self.rate_elapsed is None:
                self.rate_step, self.rate_elapsed = step, elapsed_s
            elif elapsed_s - self.rate_elapsed >= RATE_WINDOW_S:
                self.steps_per_s = (step - self.rate_step) / (elapsed_s - self.rate_elapsed)
                self.rate_step, self.rate_elapsed = step, elapsed_s
        for step, loss, metric, solved, _elapsed_s in update.evaluations:
            self.held_out_loss, self.metric = finite_or_none(loss), finite_or_none(metric)
            self.solved = solved
            if solved and self.solved_at is None:
                self.solved_at = step
            self.evaluations.append((step, self.held_out_loss, self.metric, solved))
        if update.snapshot_json is not None:
            views = update.views_json
            self.public_views_json = [public_view(v) for v in views] if self.private else views
            self.snapshot_json, self.views_json = update.snapshot_json, views
            self.snapshot_step = update.snapshot_step
        if update.gradients_json is not None:
            self.gradients_json = update.gradients_json
            self.gradient_step = update.gradient_step
        if update.influence_json is not None:
            payload = update.influence_json
            self.public_influence_json = public_influence(payload) if self.private else payload
            self.influence_json, self.influence_step = payload, update.influence_step
        if update.trajectories_json is not None:
            self.trajectories_json = update.trajectories_json
            self.trajectory_step = update.trajectory_step

    def points(self, since: int, limit: int | None = None) -> tuple[list[int], list[float | None]]:
        """The curve's points after step `since`: steps, and losses (None where not finite);
        at most `limit` of them (every k-th, and the last)."""
        steps, count = self.curve_steps, len(self.curve_steps)
        start = bisect.bisect_right(steps, since, 0, count)
        stride = max(1, math.ceil((count - start) / limit)) if limit else 1
        kept = slice(start, count, stride)
        chosen, losses = steps[kept].tolist(), self.curve_losses[kept].tolist()
        if chosen and chosen[-1] != steps[count - 1]:
            chosen.append(steps[count - 1])
            losses.append(self.curve_losses[count - 1])
        return chosen, [None if math.isnan(v) else v for v in losses]

    def live(
        self, since: int, queue_position: int | None, *, public: bool = False
    ) -> dict[str, Any]:
        """Progress, the new points after step `since` (at most LIVE_POINTS) and the
        evaluations up to the last of them (the next poll asks from there): what a live
        loss chart needs. `public`: as anyone but its owner may see it."""
        steps, losses = self.points(since, LIVE_POINTS)
        last = steps[-1] if steps else since
        evaluations = [list(e) for e in self.evaluations if since < e[0] <= last]
        return {
            **self.progress(queue_position, with_snapshot=False).state(public=public),
            "snapshot_step": self.snapshot_step,
            "points": {"step": steps, "loss": losses},
            "evaluations": evaluations[-LIVE_POINTS:],
        }

    def row(
        self,
        since: int,
        queue_position: int | None,
        name: str | None,
        *,
        with_config: bool,
        public: bool,
    ) -> dict[str, Any]:
        """The run as a row of the room or a race (see row()), its curve on a grid of
        about ROW_POINTS steps; a study's trial says which study and trial it is."""
        stride = max(1, math.ceil(self.config.steps / ROW_POINTS))
        steps, losses = self.grid_points(since, stride)
        trial = {"study": self.study, "trial": self.trial} if self.study is not None else {}
        return trial | row(
            self.progress(queue_position, with_snapshot=False),
            steps,
            losses,
            since,
            self.label or name,
            with_config=with_config,
            public=public,
            stride=stride,
        )

    def grid_points(self, since: int, stride: int) -> tuple[list[int], list[float | None]]:
        """The points after step `since` whose steps are multiples of `stride`, and the
        last point: what row() keeps of points(since), read without going through every
        step (the curve has one entry per step, so the grid is a slice of it)."""
        steps, count = self.curve_steps, len(self.curve_steps)
        if not count or steps[count - 1] - steps[0] != count - 1:
            return self.points(since)  # not one entry per step: let row() pick
        first = max(since // stride + 1, -(-steps[0] // stride)) * stride  # a grid step
        kept = slice(first - steps[0], count, stride)
        chosen, losses = steps[kept].tolist(), self.curve_losses[kept].tolist()
        if steps[count - 1] > since and (not chosen or chosen[-1] != steps[count - 1]):
            chosen.append(steps[count - 1])
            losses.append(self.curve_losses[count - 1])
        return chosen, [None if math.isnan(v) else v for v in losses]
