"""What a worker sends of each snapshot: every one, encoded once, at most about one a second."""

import dataclasses
import json
import math
import types

import pytest

from rnnlab import worker as worker_module
from rnnlab.config import RunConfig
from rnnlab.events import influence_view, layer_view, trajectory_point
from rnnlab.train import Snapshot, train
from rnnlab.updates import Update, recorded_events
from rnnlab.worker import SNAPSHOT_SEND_S, Worker


@pytest.fixture(scope="module")
def taken() -> list[Snapshot]:
    config = RunConfig(task="adding", cell="lstm", hidden_size=8, seq_len=12, steps=4, num_layers=2)
    return [e for e in train(config, snapshot_every_s=0) if e.kind == "snapshot"]


@pytest.fixture
def clock(monkeypatch):
    """The worker's monotonic clock, moved by hand."""
    now = [100.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: now[0])
    return now


def a_run():
    return types.SimpleNamespace(
        run_id="r",
        snapshot_sent_at=-math.inf,
        waiting_snapshot=None,
        gradient_step_sent=None,
        influence_history=[],
        trajectory_history=[],
    )


def received(worker: Worker, run, event: Snapshot) -> Update:
    update = Update(run.run_id)
    worker.record(run, event, update)
    return update


def test_every_snapshot_goes_out_as_the_events_own_json_with_each_layers_view(taken, clock):
    worker, run = Worker(connection=None, store=None), a_run()
    for event in taken:
        clock[0] += 1.0  # the engine's default cadence
        update = received(worker, run, event)
        assert update.snapshot_step == event.step
        assert update.snapshot_json is event.to_json()
        views = [json.loads(view) for view in update.views_json]
        assert views == [layer_view(json.loads(event.to_json()), layer) for layer in (0, 1)]
        (rebuilt,) = recorded_events(update, RunConfig())
        assert rebuilt == event


def test_snapshots_closer_than_the_interval_wait_and_the_newest_is_sent(taken, clock):
    worker, run = Worker(connection=None, store=None), a_run()
    first, second, third, *_ = taken
    assert received(worker, run, first).snapshot_step == first.step
    clock[0] += SNAPSHOT_SEND_S / 3
    assert received(worker, run, second).snapshot_json is None
    clock[0] += SNAPSHOT_SEND_S / 3
    assert received(worker, run, third).snapshot_json is None  # replaces the second
    clock[0] += SNAPSHOT_SEND_S / 2
    update = Update(run.run_id)
    worker.send_waiting_snapshot(run, update)  # at the start of the run's next turn
    assert update.snapshot_step == third.step and run.waiting_snapshot is None
    worker.send_waiting_snapshot(run, later := Update(run.run_id))
    assert later.snapshot_json is None


def test_gradient_history_is_sent_only_when_it_is_new(taken, clock):
    worker, run = Worker(connection=None, store=None), a_run()
    event = taken[0]
    stale = dataclasses.replace(event, step=event.step + 1)  # same gradient_step
    fresh = dataclasses.replace(event, step=event.step + 2, gradient_step=event.step + 2)
    sent = []
    for snapshot in (event, stale, fresh):
        clock[0] += 1.0
        sent.append(received(worker, run, snapshot).gradients_json)
    assert sent[1] is None and sent[0] is not None and sent[2] is not None
    assert json.loads(sent[2]) == {
        "gradient_step": fresh.gradient_step,
        "steps": event.kept["steps"],
        "history": event.gradient_history,
    }


def test_influence_and_paths_are_sent_when_new_with_the_runs_history_of_them(taken, clock):
    worker, run = Worker(connection=None, store=None), a_run()
    event = taken[0]
    influence, (path, _second) = event.influence, event.trajectory
    later = {**influence, "step": influence["step"] + 5}
    moved = [{**entry, "step": entry["step"] + 5} for entry in event.trajectory]
    refit = [{**entry, "step": entry["step"] + 9, "reference_step": entry["step"] + 9}
             for entry in event.trajectory]  # fmt: skip
    shots = [
        event,
        dataclasses.replace(event, step=event.step + 1),  # carries the same: nothing new
        dataclasses.replace(event, step=event.step + 5, influence=later, trajectory=moved),
        dataclasses.replace(event, step=event.step + 9, influence=later, trajectory=refit),
    ]
    sent = []
    for snapshot in shots:
        clock[0] += 1.0
        sent.append(received(worker, run, snapshot))
    assert sent[1].influence_json is None and sent[1].trajectories_json is None
    assert json.loads(sent[0].influence_json) == influence_view(json.loads(event.to_json()))
    grown = json.loads(sent[2].influence_json)
    assert grown["history"] == [
        [influence["step"], influence["last"][0]],
        [later["step"], later["last"][0]],
    ]
    assert sent[2].influence_step == later["step"] and sent[3].influence_json is None

    first, second = (json.loads(view) for view in sent[2].trajectories_json)
    assert first["snapshots"] == [trajectory_point(path), trajectory_point(moved[0])]
    assert second["layer"] == 1 and len(second["snapshots"]) == 2
    assert sent[2].trajectory_step == moved[0]["step"]
    refitted = json.loads(sent[3].trajectories_json[0])  # new axes: the slider starts again
    assert refitted["snapshots"] == [trajectory_point(refit[0])]
    assert refitted["reference_step"] == refit[0]["step"]
