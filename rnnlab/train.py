"""train(config) -> a stream of events; the caller decides what to do with them.

    for event in train(RunConfig(task="adding", cell="lstm")):
        print(event.to_dict())

The stream is Started, then Step after every optimisation step with an Evaluation on
held-out data every `eval_every` steps and a Snapshot of the network's insides every
`snapshot_every_s` seconds; at the end a last Evaluation on the whole held-out set, the
trained Weights, a last Snapshot, and Finished with the run's summary. A run ends
`completed`, `stopped` (cancelled from another thread) or `diverged` (the loss or the
gradient became NaN/inf — a result to show, not an error). A diverged run's Weights are
those from before the step that diverged (it is never applied), and there are none if
those are not finite either.

Evaluation costs at most about 5 % of a run, however short: the evaluations along the
way use the first batch_size sequences of the held-out set, no more often than every
MIN_EVAL_GAP steps, and the last evaluation, the one the summary reports, uses the whole
held-out set. The step a run is solved at is decided on the whole set: the first partial
evaluation that looks solved is repeated in full, and that evaluation is the one yielded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

from .config import ConfigError, RunConfig
from .events import Evaluation, Event, Finished, Snapshot, Started, Step, Weights
from .models import build_model
from .probe import SnapshotSchedule
from .tasks import Task, make_task
from .values import finite_or_none
from .weights import encode_weights

# The fewest steps between two evaluations along the way. Each looks at a training
# batch's worth of held-out sequences, and a forward pass costs about half a training
# step, so these take at most 2.5 % of a run, and the final whole-set one adds a little.
MIN_EVAL_GAP = 20

OPTIMIZERS = {
    "adam": lambda parameters, lr: torch.optim.Adam(parameters, lr=lr),
    "sgd": lambda parameters, lr: torch.optim.SGD(parameters, lr=lr),
}


def resolve_device(name: str) -> torch.device:
    """'auto' is cuda if present, then mps, then cpu; an absent device is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device={name!r} is not available on this machine; use auto", "device")
    return torch.device(name)


def available_devices() -> list[str]:
    """The devices this process's PyTorch can train on (rnnlab.devices tells the
    dashboard's server, which has no PyTorch, what the machine shows)."""
    return ["auto", "cpu"] + [
        name
        for name, present in (
            ("cuda", torch.cuda.is_available()),
            ("mps", torch.backends.mps.is_available()),
        )
        if present
    ]


class _BusyClock:
    """Seconds a generator has spent computing: the time inside next(), not at a yield."""

    def __init__(self) -> None:
        self.spent, self.resumed_at = 0.0, None

    def resume(self) -> None:
        self.resumed_at = time.perf_counter()

    def pause(self) -> None:
        self.spent += time.perf_counter() - self.resumed_at
        self.resumed_at = None

    def __call__(self) -> float:
        running = 0.0 if self.resumed_at is None else time.perf_counter() - self.resumed_at
        return self.spent + running


def train(
    config: RunConfig,
    *,
    cancel: threading.Event | None = None,
    task: Task | None = None,
    snapshot_every_s: float | None = 1.0,
) -> Iterator[Event]:
    """Train the model `config` describes; yield events as it goes (see module doc).

    snapshot_every_s: seconds between Snapshot events (stretched if snapshots would take
    more than about 4.5 % of the run's own computing time, however many runs share the
    core); 0 for one after every step, math.inf for only the final one, None for none.
    """
    busy = _BusyClock()
    events = _events(config, cancel, task, snapshot_every_s, busy)
    while True:
        busy.resume()
        try:
            event = next(events)
        except StopIteration:
            return
        finally:
            busy.pause()
        yield event


def _events(
    config: RunConfig,
    cancel: threading.Event | None,
    task: Task | None,
    snapshot_every_s: float | None,
    busy: _BusyClock,
) -> Iterator[Event]:
    """train()'s body; `busy` is the run's own computing time, for the snapshot budget."""
    start = time.perf_counter()
    device = resolve_device(config.device)
    task = task or make_task(config)
    model = build_model(config, task).to(device)
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), config.lr)
    data_generator = torch.Generator().manual_seed(config.seed)
    parameters = list(model.parameters())
    eval_every = config.eval_every or max(MIN_EVAL_GAP, config.steps // 100)
    partial = config.sequences_per_step()  # held-out sequences of an evaluation on the way

    yield Started(
        config=config.to_dict(),
        device=str(device),
        parameters=sum(p.numel() for p in parameters),
        input_shape=(config.sequences_per_step(), config.time_steps(), task.input_dim),
        metric_name=task.metric_name,
        baseline=task.baseline,
        baseline_label=task.baseline_label,
        metric_baseline=task.metric_baseline,
        solved_rule=task.solved_rule,
    )

    status, step = "completed", 0
    last_loss: float | None = None  # the latest step's training loss
    solved_at: int | None = None
    best_loss = math.inf
    last_whole: Evaluation | None = None  # the latest evaluation on the whole held-out set

    def evaluation(step: int, *, whole: bool) -> Evaluation:
        """Held-out loss and metric at `step`; see the module doc for `whole`."""
        nonlocal best_loss, solved_at, last_whole
        whole = whole or partial >= task.held_out_size
        loss, metric = task.evaluate(model, device, None if whole else partial)
        solved = math.isfinite(loss) and task.is_solved(loss, metric)
        if solved and not whole and solved_at is None:
            return evaluation(step, whole=True)  # "solved at" is decided on the whole set
        if solved and solved_at is None:
            solved_at = step
        if math.isfinite(loss):
            best_loss = min(best_loss, loss)
        result = Evaluation(step, loss, metric, solved, time.perf_counter() - start)
        if whole:
            last_whole = result
        return result

    schedule = None
    if snapshot_every_s is not None:
        schedule = SnapshotSchedule(task, device, snapshot_every_s, busy=busy)

    def snapshot(*, final: bool = False) -> Snapshot:
        taken = schedule.take(model, step, final=final)
        return Snapshot(step=step, elapsed_s=time.perf_counter() - start, **taken)

    loop_start = time.perf_counter()  # steps/s counts the training loop, not the set-up
    while step < config.steps:
        if cancel is not None and cancel.is_set():
            status = "stopped"
            break
        x, y = task.sample(config.batch_size, data_generator)
        x, y = x.to(device), y.to(device)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in parameters])
        loss_value, grad_norm_value = loss.item(), grad_norm.item()
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm_value)):
            status = "diverged"
            yield Step(step + 1, loss_value, grad_norm_value, time.perf_counter() - start)
            break
        optimizer.step()
        step += 1
        last_loss = loss_value
        yield Step(step, loss_value, grad_norm_value, time.perf_counter() - start)
        if step % eval_every == 0 or step == config.steps:
            checked = evaluation(step, whole=step == config.steps)
            yield checked
            if checked.solved and config.stop_when_solved:
                break
        if schedule is not None and schedule.due():
            yield snapshot()

    loop_s = time.perf_counter() - loop_start
    if last_whole is None or last_whole.step != step:
        yield evaluation(step, whole=True)
    final = last_whole
    if all(torch.isfinite(p).all() for p in parameters):
        yield Weights(step, encode_weights(model, config, task, step))
    if schedule is not None:
        yield snapshot(final=True)
    wall = time.perf_counter() - start
    yield Finished(
        summary={
            "status": status,
            "steps": step,
            "final_loss": finite_or_none(final.loss),
            "best_loss": finite_or_none(best_loss),
            "final_train_loss": finite_or_none(last_loss),
            "metric_name": task.metric_name,
            "metric": finite_or_none(final.metric),
            "baseline": task.baseline,
            "metric_baseline": task.metric_baseline,
            "solved": final.solved,
            "solved_at_step": solved_at,
            "wall_s": round(wall, 3),
            "steps_per_s": round(step / loop_s, 2) if step and loop_s > 0 else None,
            "seed": config.seed,
            "device": str(device),
            "config": config.to_dict(),
        }
    )


def run(config: RunConfig, **options: Any) -> dict[str, Any]:
    """Train to the end and return the summary (for notebooks and scripts)."""
    summary: dict[str, Any] = {}
    for event in train(config, **options):
        if isinstance(event, Finished):
            summary = event.summary
    return summary
