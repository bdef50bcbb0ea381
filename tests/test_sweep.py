import json
import math
import threading
import time

import pytest

from rnnlab.config import ConfigError, RunConfig
from rnnlab.store import RunStore
from rnnlab.sweep import Grid, LocalExecutor, RunResult, run_sweep, sweep_table
from rnnlab.train import train

BASE = RunConfig(task="hello", cell="rnn", hidden_size=4, steps=12)


def test_a_grid_is_every_combination_times_seeds():
    grid = Grid(BASE, {"cell": ["rnn", "gru"], "seq_len": ["10", "50"]}, seeds=["0", 1])
    points = [grid.point(c) for c in grid.configs()]
    assert points == [
        {"cell": cell, "seq_len": seq_len, "seed": seed}
        for cell in ("rnn", "gru")
        for seq_len in (10, 50)
        for seed in (0, 1)
    ]
    assert grid.axes == {"cell": ("rnn", "gru"), "seq_len": (10, 50)}  # typed
    assert all(c.hidden_size == 4 and c.steps == 12 for c in grid.configs())
    assert Grid(BASE.replace(seed=7), {}).configs() == [BASE.replace(seed=7)]
    assert json.loads(json.dumps(grid.to_dict()))["seeds"] == [0, 1]


@pytest.mark.parametrize(
    ("axes", "seeds", "message"),
    [
        ({"cell": ["rnn"], "seq_len": [5], "hidden_size": [4]}, (), "at most 2 settings"),
        ({"word": ["hi", "ho"]}, (), "cannot vary 'word'"),
        ({"seed": [0, 1]}, (), "it can vary seeds"),
        ({"cell": []}, (), "at least one value of cell"),
        ({"cell": ["rnn", "elman"]}, (), "cell='elman' is not one of"),
        ({"seq_len": ["10", "10.0"]}, (), "values of seq_len repeat"),
        ({}, (1, 1), "values of seed repeat"),
        ({"hidden_size": ["4", "x"]}, (), "hidden_size must be a whole number"),
        ({"seq_len": list(range(1, 101)), "hidden_size": [1, 2, 3]}, (), "more than the 256"),
        ({"init": ["default", "identity"]}, (), "init='identity' is for rnn cells"),
    ],
)
def test_a_bad_grid_says_what_is_wrong(axes, seeds, message):
    base = BASE.replace(cell="lstm") if "init" in axes else BASE
    with pytest.raises(ConfigError, match=message):
        Grid(base, axes, seeds)


def test_a_combination_error_names_the_grid_point():
    with pytest.raises(ConfigError, match="with cell=gru: init='identity' is for rnn"):
        Grid(BASE.replace(init="identity"), {"cell": ["rnn", "gru"]})


def test_a_sweep_runs_on_the_pool_and_tables_its_results(make_manager, store):
    grid = Grid(BASE, {"cell": ["rnn", "gru"], "hidden_size": [4, 8]}, seeds=[0, 1])
    seen: list[str] = []
    sweep = run_sweep(
        grid,
        executor=LocalExecutor(make_manager(workers=2)),
        owner="ana",
        on_result=lambda result, so_far: seen.append(result.run_id),
    )
    assert len(seen) == len(sweep.results) == 8

    table = sweep.table()
    columns = "run_id sweep_id cell hidden_size seed status metric_name metric final_loss"
    columns += " solved steps_to_solve steps wall_s error"
    assert list(table.columns) == columns.split()
    assert table[["cell", "hidden_size", "seed"]].values.tolist() == [
        [p["cell"], p["hidden_size"], p["seed"]] for p in map(grid.point, grid.configs())
    ]
    assert (table["status"] == "completed").all() and (table["steps"] == 12).all()
    assert table["metric"].between(0, 1).all() and (table["wall_s"] > 0).all()
    solved = table[table["solved"]]
    assert solved["steps_to_solve"].between(1, 12).all()

    cells = sweep.summary()
    expected = [["rnn", 4], ["rnn", 8], ["gru", 4], ["gru", 8]]
    assert cells[["cell", "hidden_size"]].values.tolist() == expected
    assert (cells["runs"] == 2).all() and (cells["completed"] == 2).all()
    first = table[(table["cell"] == "rnn") & (table["hidden_size"] == 4)]
    assert cells["metric"].iloc[0] == pytest.approx(first["metric"].mean())

    document = json.loads(json.dumps(sweep.to_dict()))
    assert document["runs"] == document["finished"] == 8
    assert document["statuses"] == {"completed": 8} and document["metric_name"] == "accuracy"
    assert document["axes"] == {"cell": ["rnn", "gru"], "hidden_size": [4, 8]}
    assert len(document["cells"]) == 4

    runs = store.list_runs(sweep_id=sweep.sweep_id)
    assert len(runs) == 8 and {r.owner for r in runs} == {"ana"}
    assert all(store.snapshot(r.id) is not None for r in runs)  # the final one
    again = sweep_table(sweep.sweep_id, store)
    assert sorted(again["run_id"]) == sorted(table["run_id"])
    assert {"cell", "hidden_size", "seed", "metric", "solved", "steps_to_solve"} <= set(again)


def test_a_sweep_takes_turns_within_the_owner_cap(make_manager):
    manager = make_manager(workers=1, max_queued_per_owner=1)
    sweep = run_sweep(
        Grid(BASE, {"hidden_size": [2, 3, 4, 5]}), executor=LocalExecutor(manager), owner="ana"
    )
    assert [r.status for r in sweep.results] == ["completed"] * 4


def test_cancelling_a_sweep_stops_what_runs_and_drops_the_rest(make_manager, store):
    manager = make_manager(workers=1, max_queued_per_owner=2, max_running=1)
    executor = LocalExecutor(manager)
    grid = Grid(BASE.replace(steps=200_000), {"hidden_size": [2, 3, 4, 5, 6]})

    def cancel_once_training():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(p.status == "running" and p.step > 0 for p in manager.queue()):
                break
            time.sleep(0.02)
        executor.cancel()

    canceller = threading.Thread(target=cancel_once_training)
    canceller.start()
    finished = list(executor.run(grid.configs(), sweep_id="s1", owner="ana"))
    canceller.join()
    assert 1 <= len(finished) <= 3  # the running one and the ones already waiting
    assert {r.status for r in finished} == {"stopped"}
    assert len(store.list_runs(sweep_id="s1")) == len(finished)


class InlineExecutor:
    """Another executor: trains each config right here, one after another."""

    def __init__(self, store: RunStore):
        self.store = store
        self.cancelled = False

    def run(self, configs, *, sweep_id, owner):
        for config in configs:
            if self.cancelled:
                return
            run_id = self.store.create_run(config, owner=owner, sweep_id=sweep_id)
            summary = {}
            for event in train(config, snapshot_every_s=None):
                self.store.add(run_id, event)
                summary = getattr(event, "summary", summary)
            yield RunResult(run_id, config, summary["status"], summary)

    def cancel(self):
        self.cancelled = True


def test_any_executor_with_run_and_cancel_serves_a_sweep(store):
    grid = Grid(BASE, {"cell": ["rnn", "lstm"]}, seeds=[3])
    sweep = run_sweep(grid, executor=InlineExecutor(store), owner="ray-someday")
    assert sweep.table()["status"].tolist() == ["completed", "completed"]
    assert len(store.list_runs(sweep_id=sweep.sweep_id)) == 2
    assert sweep.to_dict()["seeds"] == [3]
    assert not math.isnan(sweep.summary()["metric"].iloc[0])
