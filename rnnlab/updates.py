"""What a training worker tells the server about a run, slice by slice (rnnlab.worker),
as plain values: the server reads these without importing torch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig
from .events import Evaluation, Event, Snapshot, Started, Step


@dataclass
class Update:
    """What one slice of one run produced, as the server needs it (plain values only)."""

    run_id: str
    started: dict[str, Any] | None = None  # the Started event, without its config
    steps: list[tuple[int, float, float, float]] = field(default_factory=list)
    evaluations: list[tuple[int, float, float, bool, float]] = field(default_factory=list)
    snapshot_step: int | None = None
    snapshot_json: bytes | None = None  # the whole Snapshot event: its to_json()
    views_json: list[bytes] | None = None  # per layer: JSON of events.layer_view
    # JSON of {"gradient_step", "steps", "history"} when the snapshot's gradients are
    # newer than the last ones sent for the run, and that gradient_step.
    gradients_json: bytes | None = None
    gradient_step: int | None = None
    # JSON of events.influence_view (with the run's influence history so far) when the
    # snapshot's influence is newer than the last sent, and its step; the same of each
    # layer's events.trajectory_view (None for a layer without one) and their step.
    influence_json: bytes | None = None
    influence_step: int | None = None
    trajectories_json: list[bytes | None] | None = None
    trajectory_step: int | None = None
    finished: dict[str, Any] | None = None  # {"status", "summary", "error"}
    cpu_s: float = 0.0  # processor time the slice took
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
