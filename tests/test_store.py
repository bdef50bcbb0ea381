import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from helpers import tiny, until

from rnnlab import store as store_module
from rnnlab.config import RunConfig
from rnnlab.store import (
    SCHEMA_VERSION,
    RunNotFound,
    RunStore,
    StoreError,
    default_store_path,
)
from rnnlab.train import Evaluation, Finished, Step, train


def record(store: RunStore, config: RunConfig, **options) -> str:
    run_id = store.create_run(config, status="running", **options)
    for event in train(config):
        store.add(run_id, event)
    return run_id


def count(path, table: str, run_id: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]


def test_the_store_lives_in_rnnlab_home(store, tmp_path):
    assert default_store_path() == tmp_path / "runs.sqlite"
    assert store.path == tmp_path / "runs.sqlite" and store.path.exists()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_run_is_recorded_with_its_full_history(store):
    config = tiny(steps=20, eval_every=5)
    run_id = record(store, config, owner="ana")
    run = store.get_run(run_id)
    assert run.status == "completed" and run.owner == "ana" and not run.active
    assert run.config == config.to_dict() and run.step == 20
    assert run.summary["steps"] == 20 and run.summary["status"] == "completed"
    assert run.info["metric_name"] == "accuracy" and run.info["input_shape"] == [1, 4, 4]
    assert run.created_at <= run.started_at <= run.finished_at

    history = store.history(run_id)
    assert history["step"].tolist() == list(range(1, 21))
    assert list(history.columns) == ["step", "loss", "grad_norm", "elapsed_s"]
    assert history["loss"].notna().all() and (history["elapsed_s"].diff().dropna() >= 0).all()
    evaluations = store.evaluations(run_id)
    assert evaluations["step"].tolist() == [5, 10, 15, 20]
    assert evaluations["solved"].dtype == bool
    assert evaluations["loss"].iloc[-1] == pytest.approx(run.summary["final_loss"])

    snapshot = store.snapshot(run_id)
    assert snapshot["kind"] == "snapshot" and snapshot["step"] == 20  # the latest one only
    assert count(store.path, "snapshots", run_id) == 1


def test_step_rows_are_written_in_batches(store, monkeypatch):
    monkeypatch.setattr(store_module.writing, "FLUSH_SECONDS", 3600.0)
    run_id = store.create_run(tiny(steps=1000), status="running")
    for step in range(1, 1001):
        store.add(run_id, Step(step, 1.0 / step, 0.5, step / 1000))
    assert count(store.path, "steps", run_id) == 512  # one batch of FLUSH_ROWS so far
    store.add(run_id, Evaluation(1000, 0.1, 0.9, False, 1.0))
    store.add(run_id, Finished(summary={"status": "completed", "steps": 1000}))
    assert count(store.path, "steps", run_id) == 1000
    assert count(store.path, "evaluations", run_id) == 1
    assert store.get_run(run_id).step == 1000


def test_non_finite_values_are_kept_and_exported_as_null(store):
    run_id = store.create_run(tiny(), status="running")
    store.add(run_id, Step(1, 0.7, 1.0, 0.1))
    store.add(run_id, Step(2, float("nan"), float("inf"), 0.2))
    store.add(run_id, Evaluation(2, float("nan"), float("nan"), False, 0.2))
    store.add(run_id, Finished(summary={"status": "diverged", "steps": 1, "final_loss": None}))
    assert store.get_run(run_id).status == "diverged"
    history = store.history(run_id)
    assert math.isnan(history["loss"].iloc[1]) and history["grad_norm"].iloc[1] == math.inf
    document = json.loads(store.export_run(run_id, "json"))  # strict JSON: no NaN tokens
    assert document["steps"]["loss"] == [0.7, None]
    assert document["evaluations"]["metric"] == [None]


def test_json_export_round_trips_through_import(store, tmp_path):
    run_id = record(store, tiny(steps=10, eval_every=3), owner="ben")
    exported = store.export_run(run_id, "json")
    document = json.loads(exported)
    assert document["run"]["id"] == run_id and document["run"]["owner"] == "ben"
    assert document["steps"]["step"] == list(range(1, 11))
    assert document["evaluations"]["step"] == [3, 6, 9, 10]
    assert document["snapshot"]["step"] == 10

    with RunStore(tmp_path / "elsewhere" / "runs.sqlite") as other:
        assert other.import_run(exported) == run_id
        assert other.export_run(run_id, "json") == exported
        pd.testing.assert_frame_equal(other.history(run_id), store.history(run_id))
        pd.testing.assert_frame_equal(other.evaluations(run_id), store.evaluations(run_id))
    assert store.import_run(exported) != run_id  # the id is taken here: a new one


def test_csv_export_is_the_history_with_evaluations(store):
    run_id = record(store, tiny(steps=9, eval_every=4))
    table = pd.read_csv(io.StringIO(store.export_run(run_id, "csv")))
    columns = "step loss grad_norm elapsed_s eval_loss eval_metric eval_solved"
    assert list(table.columns) == columns.split()
    history, evaluations = store.history(run_id), store.evaluations(run_id)
    pd.testing.assert_series_equal(table["loss"], history["loss"])
    evaluated = table.dropna(subset=["eval_loss"])
    assert evaluated["step"].tolist() == evaluations["step"].tolist() == [4, 8, 9]
    assert evaluated["eval_metric"].tolist() == pytest.approx(evaluations["metric"].tolist())
    with pytest.raises(ValueError, match="format"):
        store.export_run(run_id, "xml")


def test_delete_removes_the_run_and_everything_it_recorded(store):
    keep, gone = record(store, tiny()), record(store, tiny(seed=1))
    store.delete_run(gone)
    with pytest.raises(RunNotFound):
        store.get_run(gone)
    for table in ("steps", "evaluations", "snapshots"):
        assert count(store.path, table, gone) == 0
        assert count(store.path, table, keep) > 0
    with pytest.raises(RunNotFound):
        store.delete_run(gone)
    active = store.create_run(tiny())
    with pytest.raises(StoreError, match="queued; stop it"):
        store.delete_run(active)
    assert store.get_run(active).status == "queued"


def test_list_filters_and_runs_frame(store):
    first = record(store, tiny(), owner="ana")
    second = record(store, tiny(cell="gru"), owner="ben", sweep_id="s1")
    queued = store.create_run(tiny(task="adding", batch_size=4, seq_len=5), owner="ana")
    assert [r.id for r in store.list_runs()] == [queued, second, first]  # newest first
    assert [r.id for r in store.list_runs(owner="ana")] == [queued, first]
    assert [r.id for r in store.list_runs(status="completed")] == [second, first]
    assert [r.id for r in store.list_runs(status=["queued", "failed"])] == [queued]
    assert [r.id for r in store.list_runs(sweep_id="s1")] == [second]
    assert [r.id for r in store.list_runs(config={"cell": "gru"})] == [second]
    assert [r.id for r in store.list_runs(config={"task": "adding", "seq_len": 5})] == [queued]
    assert len(store.list_runs(limit=2)) == 2
    with pytest.raises(ValueError, match="unknown setting"):
        store.list_runs(config={"colour": "red"})

    frame = store.runs_frame(owner="ana")
    assert frame["id"].tolist() == [queued, first]
    assert {"cell", "seq_len", "metric", "solved", "wall_s", "status"} <= set(frame.columns)
    assert str(frame["created_at"].dtype).startswith("datetime64")
    assert store.runs_frame(owner="nobody").empty


def test_ids_resolve_from_a_unique_prefix(store):
    run_id = store.create_run(tiny())
    assert store.resolve_id(run_id) == run_id
    assert store.resolve_id(run_id[:6].upper()) == run_id
    for bad in ("", "zz", "not-hex", "ffffffffffffff"):
        with pytest.raises(RunNotFound):
            store.resolve_id(bad)


def test_a_new_file_has_the_current_schema_version(store):
    assert store.schema_version == SCHEMA_VERSION
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_rnnlab_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer rnnlab"):
        RunStore(path)


def test_migrations_upgrade_an_old_file_and_keep_its_runs(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as old:
        run_id = record(old, tiny())

    def add_notes(db):
        db.execute("ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT ''")

    monkeypatch.setattr(store_module.database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(store_module.MIGRATIONS, SCHEMA_VERSION + 1, add_notes)
    with RunStore(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION + 1
        assert upgraded.get_run(run_id).status == "completed"
        assert len(upgraded.history(run_id)) == 12
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT notes FROM runs").fetchone() == ("",)


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()

    def broken(db):
        db.execute("ALTER TABLE runs ADD COLUMN notes TEXT")
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(store_module.database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(store_module.MIGRATIONS, SCHEMA_VERSION + 1, broken)
    with pytest.raises(StoreError, match="disk on fire"):
        RunStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert "notes" not in columns


def test_separate_connections_write_at_once_without_locking_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module.writing, "FLUSH_ROWS", 16)
    path = tmp_path / "runs.sqlite"
    errors: list[BaseException] = []
    run_ids: list[str] = []

    def writer(seed: int) -> None:
        try:
            with RunStore(path) as own:  # its own connection, as another process has
                run_id = own.create_run(tiny(seed=seed), status="running")
                run_ids.append(run_id)
                for step in range(1, 801):
                    own.add(run_id, Step(step, 1.0, 1.0, 0.0))
                own.add(run_id, Finished(summary={"status": "completed", "steps": 800}))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with RunStore(path) as check:
        for run_id in run_ids:
            assert len(check.history(run_id)) == 800
            assert check.get_run(run_id).status == "completed"


def test_runs_of_a_process_killed_mid_run_become_interrupted(store, tmp_path):
    finished = record(store, tiny())
    finished_rows = len(store.history(finished))
    env = {**os.environ, "RNNLAB_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "rnnlab", "train", "--task", "hello", "--cell", "rnn"]
    command += ["--hidden-size", "4", "--steps", "200000", "--json"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def child_run():
            runs = [r for r in store.list_runs(owner="cli") if r.step > 0]
            return runs[0] if runs else None

        running = until(child_run, what="the child's first steps in the store")
        assert running.status == "running" and running.pid == child.pid
        with RunStore(store.path) as meanwhile:  # a live process's run is left alone
            assert meanwhile.get_run(running.id).status == "running"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)

    with RunStore(store.path) as after:
        run = after.get_run(running.id)
        assert run.status == "interrupted" and "process" in run.error
        assert run.finished_at is not None
        assert len(after.history(running.id)) >= running.step > 0
        assert after.get_run(finished).status == "completed"
        assert len(after.history(finished)) == finished_rows
        with sqlite3.connect(after.path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(list((tmp_path / "runs.alive").glob("*.lock"))) == 1  # the child's is gone


class _LockedFile:
    """Another process's exclusive lock on the store's file, as long as it is held."""

    def __init__(self, path):
        self.connection = sqlite3.connect(path, isolation_level=None)

    def __enter__(self):
        self.connection.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc_info):
        self.connection.execute("ROLLBACK")
        self.connection.close()


def test_a_locked_file_delays_writes_and_loses_no_row(store):
    store._writer.execute("PRAGMA busy_timeout = 20")  # give up on the lock quickly
    run_id = store.create_run(tiny(steps=1000), status="running")
    with _LockedFile(store.path):
        for step in range(1, 601):  # more than a batch: writing is tried, and fails
            store.add(run_id, Step(step, 1.0 / step, 0.5, step / 1000))
        store.add(run_id, Evaluation(600, 0.1, 0.9, False, 1.0))
    assert count(store.path, "steps", run_id) == 0
    store.add(run_id, Finished(summary={"status": "completed", "steps": 600}))
    assert count(store.path, "steps", run_id) == 600
    assert count(store.path, "evaluations", run_id) == 1
    assert store.get_run(run_id).status == "completed"


def test_a_write_that_keeps_failing_ends_with_the_cause_and_the_file(store, monkeypatch):
    monkeypatch.setattr(store_module.writing, "WRITE_PATIENCE_S", 0.3)
    store._writer.execute("PRAGMA busy_timeout = 20")
    run_id = store.create_run(tiny(steps=100_000), status="running")
    with _LockedFile(store.path), pytest.raises(StoreError) as raised:
        for step in range(1, 100_001):
            store.add(run_id, Step(step, 1.0, 0.5, 0.0))
            time.sleep(0.001)
    message = str(raised.value)
    assert str(store.path) in message and "locked" in message


class _FullDisk:
    """A writing connection whose batch inserts fail as on a full disk, `times` times."""

    def __init__(self, connection, times: int):
        self.connection, self.times = connection, times

    def executemany(self, *args):
        if self.times > 0:
            self.times -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self.connection.executemany(*args)

    def __getattr__(self, name):
        return getattr(self.connection, name)


def test_a_run_trains_on_through_a_full_disk_and_its_history_is_whole(store):
    from rnnlab.recording import RecordedRun

    config = tiny(steps=300)
    run_id = store.create_run(config, status="running")
    store._writer = _FullDisk(store._writer, times=3)
    events = list(RecordedRun(store, run_id, config, snapshot_every_s=None))
    assert store._writer.times == 0  # the faults happened
    summary = events[-1].summary
    assert summary["status"] == "completed"
    assert store.get_run(run_id).status == "completed"
    assert len(store.history(run_id)) == 300


def test_a_schema_1_file_gains_the_weights_table_and_keeps_its_runs(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    with monkeypatch.context() as old_rnnlab:
        old_rnnlab.setattr(store_module.database, "SCHEMA_VERSION", 1)
        with RunStore(path) as old:
            old_run = old.create_run(tiny(), status="running")
            for event in train(tiny()):
                if event.kind != "weights":  # rnnlab before schema 2 had no such event
                    old.add(old_run, event)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name = 'weights'").fetchone() is None
        )

    with RunStore(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION >= 2
        assert upgraded.get_run(old_run).status == "completed"
        assert len(upgraded.history(old_run)) == 12
        assert upgraded.weights(old_run) is None  # finished before weights were kept
        new_run = record(upgraded, tiny())
        assert upgraded.weights(new_run).startswith(b"PK")
        upgraded.delete_run(new_run)
        assert count(path, "weights", new_run) == 0


def test_a_schema_2_file_gains_pinning_and_keeps_its_runs_and_weights(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    with monkeypatch.context() as old_rnnlab:
        old_rnnlab.setattr(store_module.database, "SCHEMA_VERSION", 2)
        with RunStore(path) as old:
            old_run = record(old, tiny(), owner="ana")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "pinned" not in [row[1] for row in db.execute("PRAGMA table_info(runs)")]

    with RunStore(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION >= 3
        run = upgraded.get_run(old_run)
        assert run.status == "completed" and run.owner == "ana" and not run.pinned
        assert upgraded.weights(old_run).startswith(b"PK")
        upgraded.pin(old_run)
        assert upgraded.get_run(old_run).pinned
        assert upgraded.runs_frame()["pinned"].tolist() == [True]
        report = upgraded.prune(store_module.RetentionPolicy(weights_per_owner=0))
        assert not report.weights_dropped  # pinned
        assert len(upgraded.history(old_run)) == 12


def test_a_schema_3_file_gains_studies_and_the_pruned_status(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    with monkeypatch.context() as old_rnnlab:
        old_rnnlab.setattr(store_module.database, "SCHEMA_VERSION", 3)
        with RunStore(path) as old:
            old_run = record(old, tiny(), owner="ana")
            waiting = old.create_run(tiny())
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
                old.finish(waiting, "pruned")

    with RunStore(path) as upgraded:
        assert upgraded.schema_version == SCHEMA_VERSION >= 4
        assert upgraded.get_run(old_run).status == "completed"
        assert len(upgraded.history(old_run)) == 12
        upgraded.finish(waiting, "pruned", error="pruned at step 3")
        assert upgraded.get_run(waiting).status == "pruned"
        trial = upgraded.create_run(tiny(), study="what-matters", trial=7)
        assert [(r.id, r.study, r.trial) for r in upgraded.list_runs(study="what-matters")] == [
            (trial, "what-matters", 7)
        ]
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
            upgraded._write(lambda db: db.execute("UPDATE runs SET status = 'bogus'"))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_pinned_is_kept_through_export_and_import(store, tmp_path):
    run_id = record(store, tiny())
    store.pin(run_id)
    exported = store.export_run(run_id, "json")
    assert json.loads(exported)["run"]["pinned"] is True
    with RunStore(tmp_path / "elsewhere" / "runs.sqlite") as other:
        assert other.get_run(other.import_run(exported)).pinned
