"""The store's retention policy: which runs keep their weights and whole history, the disk
budget and each owner's share of it, and a file that shrinks and a log that is truncated."""

import io
import json
import multiprocessing
import sqlite3
import time

import pandas as pd
import pytest
from helpers import tiny

from rnnlab import store as store_module
from rnnlab.events import Evaluation, Finished, Step, Weights
from rnnlab.store import RetentionPolicy, RunNotFound, RunStore, retention
from rnnlab.train import train

MiB = 2**20
# Rules that keep everything, for a test to tighten one at a time.
KEEP_ALL = dict(
    disk_budget_mb=10_000, weights_per_owner=1000, history_per_owner=1000, owner_share=1.0
)


@pytest.fixture(scope="module")
def snapshot_event():
    """A real Snapshot event of a tiny run, for runs recorded by hand."""
    return next(event for event in train(tiny()) if event.kind == "snapshot")


def finish(
    store: RunStore,
    owner: str = "ana",
    *,
    weights: int = 1000,
    steps: int = 50,
    evaluations: int = 5,
    solved_from: int | None = None,
    snapshot=None,
) -> str:
    """A finished run recorded through the store's API, with `weights` bytes of weights."""
    run_id = store.create_run(tiny(steps=steps), owner=owner, status="running")
    for step in range(1, steps + 1):
        store.add(run_id, Step(step, 1.0 / step, 0.5, step / 100))
    every = max(1, steps // max(evaluations, 1))
    for step in range(every, steps + 1, every) if evaluations else ():
        solved = solved_from is not None and step >= solved_from
        store.add(run_id, Evaluation(step, 1.0 / step, step / steps, solved, step / 100))
    if snapshot is not None:
        store.add(run_id, snapshot)
    if weights:
        store.add(run_id, Weights(steps, bytes(weights)))
    store.add(run_id, Finished(summary={"status": "completed", "steps": steps}))
    return run_id


def policy(**changes) -> RetentionPolicy:
    return RetentionPolicy(**{**KEEP_ALL, **changes})


def kept_weights(store: RunStore, run_ids: list[str]) -> list[str]:
    return [run_id for run_id in run_ids if store.weights_size(run_id) is not None]


def test_the_newest_runs_of_each_owner_keep_their_weights(store):
    ana = [finish(store, "ana") for _ in range(5)]  # oldest first
    ben = [finish(store, "ben") for _ in range(2)]
    report = store.prune(policy(weights_per_owner=2))
    assert set(report.weights_dropped) == set(ana[:3])
    assert kept_weights(store, ana + ben) == ana[3:] + ben
    assert all(len(store.history(run_id)) == 50 for run_id in ana)  # history is another rule
    assert not store.prune(policy(weights_per_owner=2)).changed


def test_pinned_runs_keep_their_weights_and_history(store, snapshot_event):
    runs = [finish(store, steps=400, snapshot=snapshot_event) for _ in range(4)]
    store.pin(runs[0])
    assert store.get_run(runs[0]).pinned and not store.get_run(runs[1]).pinned
    rules = policy(weights_per_owner=1, history_per_owner=1, history_points=20)
    report = store.prune(rules)
    assert set(report.weights_dropped) == {runs[1], runs[2]}
    assert set(report.histories_thinned) == {runs[1], runs[2]}
    assert kept_weights(store, runs) == [runs[0], runs[3]]
    assert len(store.history(runs[0])) == 400 and len(store.history(runs[3])) == 400
    assert len(store.history(runs[1])) == 20
    assert store.snapshot(runs[1]) is not None  # the count rule keeps the snapshot

    store.pin(runs[0], False)
    assert set(store.prune(rules).weights_dropped) == {runs[0]}
    assert len(store.history(runs[0])) == 20
    with pytest.raises(RunNotFound):
        store.pin("abcdef123456")


def test_queued_and_running_runs_are_never_touched(store):
    old = finish(store, weights=MiB)
    queued = store.create_run(tiny(), owner="ana")
    running = store.create_run(tiny(steps=3000), owner="ana", status="running")
    for step in range(1, 3001):
        store.add(running, Step(step, 1.0, 0.5, 0.0))
    store.add(running, Weights(3000, bytes(MiB)))  # held until it finishes
    store.flush(running)
    report = store.prune(
        policy(disk_budget_mb=1, weights_per_owner=0, history_per_owner=0, history_points=10)
    )
    assert report.weights_dropped == (old,) and old in report.histories_thinned
    assert store.get_run(queued).status == "queued"
    assert store.get_run(running).status == "running"
    assert len(store.history(running)) == 3000
    store.add(running, Finished(summary={"status": "completed", "steps": 3000}))
    assert store.weights_size(running) == MiB  # what it held is written whole


def test_the_oldest_unpinned_weights_go_first_to_stay_within_the_budget(store):
    owners = [f"owner{i}" for i in range(8)]
    runs = [finish(store, owner, weights=MiB) for owner in owners]  # one run each, oldest first
    store.pin(runs[0])
    rules = policy(disk_budget_mb=5, headroom=0.1)
    report = store.prune(rules)
    dropped = set(report.weights_dropped)
    assert runs[0] not in dropped, "a pinned run went before unpinned ones"
    assert dropped == set(runs[1 : 1 + len(dropped)]), "not the oldest first"
    assert 3 <= len(dropped) <= 5
    assert store.disk_usage().used_bytes <= rules.content_bytes
    assert report.after.total_bytes <= rules.budget_bytes < report.before.total_bytes
    assert not report.over_budget


def test_one_owner_cannot_hold_more_than_their_share(store):
    greedy = [finish(store, "greedy", weights=MiB) for _ in range(5)]
    modest = finish(store, "modest", weights=MiB)
    rules = policy(disk_budget_mb=40, headroom=0.0, owner_share=0.1)  # 4 MiB an owner
    report = store.prune(rules)
    assert set(report.weights_dropped) == set(greedy[:2]), "their oldest go first"
    assert kept_weights(store, [*greedy, modest]) == [*greedy[2:], modest]
    assert store.disk_usage().used_bytes < rules.content_bytes / 2  # not the budget's doing


def test_under_the_budget_old_histories_are_thinned_once_weights_are_gone(store):
    runs = [finish(store, f"owner{i}", weights=0, steps=6000) for i in range(6)]
    rules = policy(disk_budget_mb=1.5, headroom=0.0, history_points=50)
    report = store.prune(rules)
    thinned = set(report.histories_thinned)
    assert thinned and thinned == set(runs[: len(thinned)]), "not the oldest first"
    assert len(store.history(runs[-1])) == 6000
    assert store.disk_usage().used_bytes <= rules.content_bytes


def test_a_thinned_history_is_still_read_by_the_store_readers(store, snapshot_event):
    run_id = finish(store, steps=5000, evaluations=250, solved_from=3041, snapshot=snapshot_event)
    full = store.evaluations(run_id)
    first_solved = int(full.loc[full["solved"], "step"].min())
    report = store.prune(policy(history_per_owner=0, history_points=100))
    assert report.histories_thinned == (run_id,) and not report.snapshots_dropped

    history = store.history(run_id)
    assert 90 <= len(history) <= 100
    assert history["step"].iloc[0] == 1 and history["step"].iloc[-1] == 5000
    assert history["step"].is_monotonic_increasing
    assert history["loss"].tolist() == pytest.approx([1.0 / s for s in history["step"]])
    evaluations = store.evaluations(run_id)
    assert len(evaluations) <= 100 and evaluations["step"].iloc[-1] == full["step"].iloc[-1]
    assert first_solved in evaluations["step"].tolist()
    assert store.snapshot(run_id)["step"] == snapshot_event.step

    document = json.loads(store.export_run(run_id, "json"))
    assert document["steps"]["step"] == history["step"].tolist()
    table = pd.read_csv(io.StringIO(store.export_run(run_id, "csv")))
    assert set(history["step"]) <= set(table["step"])
    assert store.list_runs()[0].step == 5000

    from rnnlab.jobs.stored import StoredRuns

    live = StoredRuns(store).live(run_id)
    assert live["points"]["step"] == history["step"].tolist()
    assert live["evaluations"][-1][0] == evaluations["step"].iloc[-1]


def test_a_new_store_is_incremental_and_its_file_shrinks_after_a_prune(store):
    assert store._reader().execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    runs = [finish(store, weights=2 * MiB) for _ in range(4)]
    store.checkpoint()
    assert store.disk_usage().file_bytes > 8 * MiB
    report = store.prune(policy(weights_per_owner=1))
    assert set(report.weights_dropped) == set(runs[:3])
    assert report.after.file_bytes < 3 * MiB < report.before.file_bytes


def test_a_prune_truncates_the_write_ahead_log(store):
    assert store._writer.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 * MiB
    finish(store, weights=4 * MiB)
    finish(store, weights=4 * MiB)
    assert store.disk_usage().wal_bytes > 4 * MiB
    report = store.prune(policy(weights_per_owner=1))
    assert report.checkpointed and report.after.wal_bytes == 0


def record_back_to_back(path, runs: int) -> None:
    """A worker process: its own connection, recording runs with 8 MiB weights."""
    with RunStore(path) as own:
        for _ in range(runs):
            finish(own, weights=8 * MiB, steps=600)


def test_writers_that_never_pause_keep_the_log_short(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module.database, "CHECKPOINT_WAL_BYTES", 4 * MiB)
    monkeypatch.setattr(store_module.writing, "LARGE_WRITE_BYTES", MiB)
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    wal = path.with_name("runs.sqlite-wal")
    context = multiprocessing.get_context("fork")  # the workers inherit the settings above
    workers = [context.Process(target=record_back_to_back, args=(path, 6)) for _ in range(3)]
    for worker in workers:
        worker.start()
    largest = 0
    while any(worker.is_alive() for worker in workers):
        largest = max(largest, wal.stat().st_size if wal.exists() else 0)
        time.sleep(0.001)
    assert all(worker.exitcode == 0 for worker in workers)
    # The threshold, one run's weights at a time, and a few batches of steps.
    assert 8 * MiB < largest <= 4 * MiB + 8 * MiB + MiB, largest / MiB


def test_large_weights_past_the_budget_are_not_kept_when_pruning_lags(store, monkeypatch):
    monkeypatch.setattr(store_module.writing, "LARGE_WRITE_BYTES", MiB)
    monkeypatch.setenv("RNNLAB_DISK_BUDGET_MB", "72")  # 8 MiB beside 64 MiB for the log
    runs = [finish(store, weights=3 * MiB) for _ in range(3)]
    assert [store.weights_size(run_id) for run_id in runs] == [3 * MiB, 3 * MiB, None]
    assert store.get_run(runs[2]).status == "completed" and len(store.history(runs[2])) == 50
    assert store.used_bytes() <= 8 * MiB
    store.prune(policy(weights_per_owner=0))
    assert store.weights_size(finish(store, weights=3 * MiB)) == 3 * MiB  # room again


def test_a_prune_with_nothing_to_drop_still_truncates_a_long_log(store, monkeypatch):
    monkeypatch.setattr(retention, "IDLE_CHECKPOINT_WAL_BYTES", MiB)
    finish(store, weights=2 * MiB)
    report = store.prune(policy())
    assert not report.changed and report.checkpointed and report.after.wal_bytes == 0
    report = store.prune(policy())
    assert not report.checkpointed, "an empty log is left alone"


def test_an_old_file_is_made_incremental_by_its_first_prune(tmp_path):
    path = tmp_path / "old.sqlite"
    with RunStore(path) as store:
        run_id = finish(store, weights=MiB)
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA auto_vacuum = NONE")
        db.execute("VACUUM")
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    with RunStore(path) as store:
        report = store.prune(policy(weights_per_owner=0))
        assert report.converted and report.weights_dropped == (run_id,)
        assert store._reader().execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert report.after.file_bytes < MiB / 2
        assert not store.prune(policy()).converted
        assert len(store.history(run_id)) == 50


def test_a_prune_writes_in_short_transactions(store, monkeypatch):
    runs = [finish(store, weights=MiB) for _ in range(6)]
    monkeypatch.setattr(retention, "BATCH_SECONDS", 0.0)
    transactions = []
    begin = store._transaction

    def counted():
        transactions.append(1)
        return begin()

    monkeypatch.setattr(store, "_transaction", counted)
    report = store.prune(policy(weights_per_owner=0))
    assert set(report.weights_dropped) == set(runs)
    assert len(transactions) >= 6 + 6  # one per run measured, one per run's weights


def test_the_policy_comes_from_the_environment_and_is_checked():
    assert RetentionPolicy().budget_bytes == 1024 * MiB
    environment = {"RNNLAB_DISK_BUDGET_MB": "256", "RNNLAB_KEEP_WEIGHTS": "3"}
    rules = RetentionPolicy.from_environment(environment, owner_share=0.5)
    assert rules.budget_bytes == 256 * MiB and rules.weights_per_owner == 3
    assert rules.owner_share == 0.5
    assert rules.owner_bytes == int(256 * MiB * (1 - rules.headroom) * 0.5)
    with pytest.raises(ValueError, match="RNNLAB_DISK_BUDGET_MB must be a number"):
        RetentionPolicy.from_environment({"RNNLAB_DISK_BUDGET_MB": "lots"})
    with pytest.raises(ValueError, match="RNNLAB_KEEP_WEIGHTS must be a whole number"):
        RetentionPolicy.from_environment({"RNNLAB_KEEP_WEIGHTS": "2.5"})
    with pytest.raises(ValueError, match="owner_share is 2, out of range"):
        RetentionPolicy(owner_share=2)
    with pytest.raises(AttributeError):
        rules.disk_budget_mb = 1  # frozen
