"""Studies (rnnlab.tune) with real Optuna and real training on small tasks."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from rnnlab.config import ConfigError, RunConfig
from rnnlab.store import RunStore
from rnnlab.tune import (
    StudyNotFound,
    StudyRunner,
    StudySettings,
    parse_space,
    runner_for,
    storage_path,
    study_view,
    tune,
)

ADDING = RunConfig(task="adding", seq_len=10, hidden_size=8, steps=120)
HELLO = RunConfig(task="hello", cell="rnn", hidden_size=4, steps=8)


def journal(store: RunStore) -> JournalStorage:
    """The study journal beside `store`, opened afresh (as another program would)."""
    return JournalStorage(JournalFileBackend(str(storage_path(store.path))))


# -- the space ------------------------------------------------------------------------


def test_a_space_reads_the_cli_form_with_runconfig_metadata():
    space = parse_space("cell,hidden_size,lr=1e-4:1e-1:log,batch_size=16|32|64,clip=0.5:2")
    cell, hidden, lr, batch, clip = space.params.values()
    assert cell.kind == "categorical" and cell.choices == ("rnn", "lstm", "gru")
    assert (hidden.kind, hidden.low, hidden.high, hidden.log) == ("int", 8, 128, True)
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-1, True)
    assert batch.choices == (16, 32, 64)  # numbers, as RunConfig types them
    assert (clip.log, clip.high) == (False, 2.0)
    assert parse_space(space.describe()) == space
    assert space.grid()["lr"] == [0.0001, 0.00316, 0.1]
    assert space.grid_size() == 3 * 3 * 3 * 3 * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hidden_size=0:64", "hidden_size=0 is out of range; allowed 1 to 512"),
        ("lr=1e-6:20", "lr=20.0 is out of range; allowed 1e-06 to 10"),
        ("cell=rnn|lsmt", "cell='lsmt' is not one of: rnn, lstm, gru"),
        ("hidden_size=8.5:16", "hidden_size must be a whole number"),
        ("seed", "a study cannot search 'seed'"),
        ("steps=10:20", "a study cannot search 'steps'"),
        ("lr=0.1:0.001", "runs backwards"),
        ("clip=0:1:log", "log scale must start above 0"),
        ("lr=1e-4:1e-1:cubic", "read 'lr=1e-4:1e-1:cubic'"),
        ("cell,cell", "cell is searched twice"),
        ("", "search at least one setting"),
        ("cell=0.1:1", "cell takes a list of choices"),
    ],
)
def test_a_bad_space_is_refused_with_the_fields_message(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(text)


def test_a_space_whose_largest_run_is_too_large_is_refused():
    space = parse_space("hidden_size=16:512,seq_len=10:1000")
    with pytest.raises(ConfigError, match=r"largest run of this space.*TFLOP"):
        StudySettings(space, RunConfig(task="adding", batch_size=512, steps=5_000))


def test_the_objective_sets_the_direction_from_the_task():
    space = parse_space("lr")
    assert StudySettings(space, HELLO, objective="metric").direction == "maximize"  # accuracy
    assert StudySettings(space, ADDING, objective="metric").direction == "minimize"  # MSE
    steps = StudySettings(space, ADDING, objective="steps_to_solve")
    assert steps.value({"solved_at_step": 40}) == 40
    assert steps.value({"solved": False}) == 2 * ADDING.steps  # the stated penalty
    assert "counts 240" in steps.describe_objective()
    with pytest.raises(ConfigError, match="sampler must be one of"):
        StudySettings(space, ADDING, sampler="annealing")


# -- studies on a real pool -----------------------------------------------------------


def test_trials_are_runs_recorded_with_their_study_and_load_study_sees_them(make_manager, store):
    manager = make_manager()
    study = tune(
        "cell=rnn|gru,lr=1e-3:1e-1:log", ADDING, trials=5, manager=manager, study="recorded"
    )
    runs = {run.trial: run for run in store.list_runs(study="recorded")}
    assert sorted(runs) == [0, 1, 2, 3, 4]

    loaded = optuna.load_study(study_name="recorded", storage=journal(store))
    assert len(loaded.trials) == 5
    states = {TrialState.COMPLETE: "completed", TrialState.PRUNED: "pruned"}
    for trial in loaded.trials:
        run = runs[trial.number]
        assert trial.user_attrs["run_id"] == run.id
        assert states[trial.state] == run.status
        assert run.config["cell"] == trial.params["cell"]
        assert math.isclose(run.config["lr"], trial.params["lr"])
        if trial.state == TrialState.COMPLETE:
            assert math.isclose(trial.value, run.summary["final_loss"], rel_tol=1e-9)
        assert trial.user_attrs["cpu_s"] > 0
        assert store.weights(run.id) is not None  # every trial keeps its weights
    assert study.counts()["complete"] + study.counts()["pruned"] == 5
    best = min(t.value for t in loaded.trials if t.state == TrialState.COMPLETE)
    assert study.best_value == best
    best_run = runs[study.best.number]
    assert store.get_run(best_run.id).pinned  # kept through the store's pruning
    assert study.best_config().task == "adding"
    summary = json.loads(json.dumps(study.to_dict()))
    assert summary["storage"] == str(storage_path(store.path))
    assert summary["importances"]["trials"] == study.counts()["complete"]


def prune_every_trial(monkeypatch):
    """A pruner that gives up on every trial at its first report past step 40."""
    monkeypatch.setattr(
        StudySettings,
        "make_pruner",
        lambda self: optuna.pruners.ThresholdPruner(upper=-1.0, n_warmup_steps=40),
    )


def test_a_pruned_trial_stops_its_run_which_ends_pruned(make_manager, store, monkeypatch):
    prune_every_trial(monkeypatch)
    manager = make_manager()
    slow = ADDING.replace(steps=3000)
    study = tune("lr=1e-3:1e-2:log", slow, trials=2, manager=manager, study="pruned")
    for trial in study.trials():
        assert trial.state == TrialState.PRUNED
        run = store.get_run(trial.user_attrs["run_id"])
        assert run.status == "pruned"
        assert run.error.startswith(f"pruned at step {trial.last_step} by the halving pruner")
        assert trial.last_step > 40
        assert run.step < slow.steps  # stopped long before its budget
        assert trial.user_attrs["steps"] == run.step
        assert store.weights(run.id) is not None
    assert [r.status for r in store.list_runs(status="pruned")] == ["pruned", "pruned"]
    view = study_view(StudyRunner.open("pruned", manager))
    assert view["drawn"] == 2 and view["counts"]["pruned"] == 2
    assert all(t["pruned_at"] == t["curve"]["step"][-1] for t in view["trials"])


def test_the_same_seeds_give_the_same_study(make_manager):
    manager = make_manager()
    studies = [
        tune(
            "cell=rnn|gru,hidden_size=4:16,lr=1e-3:1e-1:log",
            ADDING.replace(steps=60),
            trials=4,
            sampler="tpe",
            pruner="none",
            seed=3,
            manager=manager,
            study=name,
            parallel=1,
        )
        for name in ("first", "second")
    ]
    first, second = (s.trials() for s in studies)
    assert [t.params for t in first] == [t.params for t in second]
    assert [t.value for t in first] == pytest.approx([t.value for t in second], rel=1e-6)
    other = tune(
        "cell=rnn|gru,hidden_size=4:16,lr=1e-3:1e-1:log",
        ADDING.replace(steps=60),
        trials=1,
        seed=4,
        manager=manager,
        study="other-seed",
    )
    assert other.trials()[0].params != first[0].params


def test_a_study_resumes_after_a_restart(make_manager, store):
    first = make_manager()
    settings = StudySettings(parse_space("cell=rnn|gru,lr=1e-3:1e-1:log"), ADDING, seed=1)
    runner = StudyRunner.open("resumed", first, settings)
    runner.add("ana", 2)
    assert runner.wait(timeout=120)
    long_trial = StudyRunner.open(
        "resumed-long", first, StudySettings(parse_space("lr"), ADDING.replace(steps=100_000))
    )
    long_trial.add("ana", 1)
    deadline = time.monotonic() + 60
    while not any(f.run_id for f in long_trial.running()) and time.monotonic() < deadline:
        time.sleep(0.1)
    run_id = long_trial.running()[0].run_id
    while first.progress(run_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    first.shutdown(timeout=60)  # the server stops, a trial still training

    second = make_manager()
    with pytest.raises(StudyNotFound):
        StudyRunner.open("never-made", second)
    reopened = StudyRunner.open("resumed", second)  # no settings: the stored ones
    assert reopened.settings == settings
    reopened.add("bo", 2)
    assert reopened.wait(timeout=120)
    trials = optuna.load_study(study_name="resumed", storage=journal(store)).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state.is_finished() for t in trials)

    cut_short = StudyRunner.open("resumed-long", second).study.trials[0]
    assert cut_short.state == TrialState.FAIL
    assert cut_short.user_attrs["status"] == "interrupted"
    assert store.get_run(run_id).status == "interrupted"


def test_thirty_people_adding_trials_at_once_get_distinct_trials(make_manager, store):
    manager = make_manager(max_queued_per_owner=4)
    settings = StudySettings(parse_space("lr=1e-4:1e-1:log,hidden_size=2:16"), HELLO)
    runner = runner_for("room", manager, settings)
    assert runner_for("room", manager) is runner  # one runner per study per process
    start = threading.Barrier(30)

    def visitor(i: int) -> None:
        start.wait()
        runner_for("room", manager).add(f"visitor-{i}", 1, label=f"V{i}")

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runner.wait(timeout=300)

    trials = optuna.load_study(study_name="room", storage=journal(store)).trials
    assert sorted(t.number for t in trials) == list(range(30))
    assert all(t.state.is_finished() for t in trials)
    assert len({(t.params["lr"], t.params["hidden_size"]) for t in trials}) == 30
    owners = {run.trial: run.owner for run in store.list_runs(study="room")}
    assert sorted(owners.values()) == sorted(f"visitor-{i}" for i in range(30))
    view = study_view(runner)
    assert {t["who"] for t in view["trials"]} == {f"V{i}" for i in range(30)}
    rows = manager.room({}, runs=60, ended=60)  # the Room page says whose trial is which
    assert sorted((r["trial"], r["name"]) for r in rows if r.get("study") == "room") == sorted(
        (owners_trial, f"V{int(owner.split('-')[1])}") for owners_trial, owner in owners.items()
    )


ASKER = """
import sys
from rnnlab.config import RunConfig
from rnnlab.tune import StudySettings, open_storage, parse_space
import optuna
settings = StudySettings(parse_space("lr,cell"), RunConfig(task="hello"), seed=int(sys.argv[2]))
study = optuna.load_study(study_name="shared", storage=open_storage(sys.argv[1]),
                          sampler=settings.make_sampler())
for _ in range(15):
    trial = study.ask()
    settings.space.suggest(trial)
    study.tell(trial, trial.params["lr"])
"""


def test_two_processes_asking_one_study_do_not_corrupt_it(tmp_path):
    path = tmp_path / "studies.log"
    optuna.create_study(study_name="shared", storage=JournalStorage(JournalFileBackend(str(path))))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    askers = [
        subprocess.Popen([sys.executable, "-c", ASKER, str(path), str(seed)], env=env)
        for seed in (0, 1)
    ]
    assert [asker.wait(timeout=120) for asker in askers] == [0, 0]
    trials = optuna.load_study(
        study_name="shared", storage=JournalStorage(JournalFileBackend(str(path)))
    ).trials
    assert sorted(t.number for t in trials) == list(range(30))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.params["lr"] for t in trials}) == 30


def test_a_grid_study_stops_at_its_last_point(make_manager):
    manager = make_manager()
    study = tune("cell=rnn|gru,hidden_size=4|8", HELLO, trials=10, sampler="grid", manager=manager)
    assert len(study.trials()) == 4
    assert sorted((t.params["cell"], t.params["hidden_size"]) for t in study.trials()) == [
        ("gru", 4),
        ("gru", 8),
        ("rnn", 4),
        ("rnn", 8),
    ]


def test_a_combination_runconfig_refuses_fails_that_trial_and_says_why(make_manager):
    manager = make_manager()
    study = tune("init=identity", HELLO.replace(cell="gru"), trials=1, manager=manager)
    (trial,) = study.trials()
    assert trial.state == TrialState.FAIL
    assert "init='identity' is for rnn cells" in trial.user_attrs["error"]


# -- the command line ------------------------------------------------------------------


def rnnlab(*args: str, home, **options) -> subprocess.Popen:
    env = {**os.environ, "RNNLAB_HOME": str(home), "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, "-m", "rnnlab", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("hidden_size=0:64", "hidden_size=0 is out of range; allowed 1 to 512"),
        ("bogus", "a study cannot search 'bogus'"),
    ],
)
def test_the_cli_refuses_a_bad_space_with_one_line_and_status_2(tmp_path, search, message):
    process = rnnlab("tune", "--task", "adding", "--search", search, home=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and out == ""
    assert err.startswith(f"rnnlab: error: {message}") and err.count("\n") == 1


def test_the_cli_tunes_and_ends_with_one_json_object(tmp_path):
    process = rnnlab(
        "tune", "--task", "adding", "--seq-len", "10", "--hidden-size", "8", "--steps", "80",
        "--search", "cell=rnn|gru,lr=1e-3:1e-1:log", "--trials", "3", "--study", "cli",
        "--workers", "2", "--json", home=tmp_path,
    )  # fmt: skip
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(line["trial"] for line in lines[:-1]) == [0, 1, 2]
    summary = lines[-1]
    assert summary["study"] == "cli" and summary["storage"] == str(tmp_path / "studies.log")
    assert sum(summary["counts"].values()) == 3
    assert summary["best_value"] == min(
        line["value"] for line in lines[:-1] if line["state"] == "complete"
    )
    assert {row["param"] for row in summary["importances"]["importances"]} <= {"cell", "lr"}


def test_ctrl_c_stops_the_study_and_exits_130(tmp_path):
    process = rnnlab(
        "tune", "--task", "adding", "--seq-len", "10", "--steps", "100000", "--search", "lr",
        "--trials", "4", "--workers", "1", "--json", home=tmp_path,
    )  # fmt: skip
    with RunStore(tmp_path / "runs.sqlite") as store:
        deadline = time.monotonic() + 120
        while not store.list_runs(status="running") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.list_runs(status="running")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["counts"]["failed"] >= 1 and summary["counts"]["running"] == 0
    with RunStore(tmp_path / "runs.sqlite") as store:
        assert {run.status for run in store.list_runs()} == {"stopped"}


def test_a_visitor_who_left_stops_adding_trials_and_others_go_on(make_manager, store):
    manager = make_manager()
    settings = StudySettings(parse_space("lr"), HELLO)
    runner = StudyRunner.open("left", manager, settings)
    with manager._lock:
        manager.admission._gone.add("gone")  # what the manager does once a session closes
    runner.add("gone", 5)
    runner.add("here", 2)
    assert runner.wait(timeout=120)
    trials = runner.study.trials
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and "session was closed" in failed[0].user_attrs["error"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert runner.remaining() == 0
