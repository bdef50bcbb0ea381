"""Sweeps and the job manager's pool on Ray: one real local Ray runtime for the module
(2 CPUs), shut down after."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers import interrupt_when_training, running, tiny, until

from rnnlab.__main__ import main
from rnnlab.cluster import RAY_MISSING, ClusterError
from rnnlab.jobs.settings import RUNS_PER_WORKER
from rnnlab.store import RunStore
from rnnlab.sweep import Grid, LocalExecutor, RayExecutor, run_sweep
from rnnlab.train import train

# A run that trains for minutes unless stopped: caught running, then cancelled or killed.
LONG = tiny(task="adding", hidden_size=8, batch_size=8, seq_len=10, steps=200_000)
LONG_ARGS = ["--task", "adding", "--hidden-size", "8", "--batch-size", "8", "--seq-len", "10"]


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        yield ray
    finally:
        ray.shutdown()


def _outcomes(results):
    """What a run's seed fixes: per grid point, how it ended and what it reached."""
    return {
        (r.config.cell, r.config.seed): (
            r.status,
            r.summary["steps"],
            r.summary["final_loss"],
            r.summary["metric"],
            r.summary["solved_at_step"],
        )
        for r in results
    }


def test_a_ray_sweep_gives_the_local_pools_results_and_records_them(
    ray_runtime, make_manager, store
):
    grid = Grid(tiny(steps=40), {"cell": ["rnn", "gru"]}, seeds=[0, 1])
    local = run_sweep(grid, executor=LocalExecutor(make_manager(workers=2)), owner="ana")
    with RayExecutor(store=store) as executor:
        on_ray = run_sweep(grid, executor=executor, owner="ana")
    assert _outcomes(on_ray.results) == _outcomes(local.results)
    assert {r.status for r in on_ray.results} == {"completed"}

    runs = store.list_runs(sweep_id=on_ray.sweep_id)
    assert len(runs) == 4 and {r.owner for r in runs} == {"ana"}
    for run in runs:
        assert run.status == "completed" and run.summary["steps"] == 40
        assert store.history(run.id)["step"].tolist() == list(range(1, 41))
        assert store.evaluations(run.id)["step"].iloc[-1] == 40
        assert store.snapshot(run.id)["step"] == 40  # the final one, as on the local pool
        assert store.weights(run.id) is not None


def test_a_ray_sweep_is_recorded_as_it_trains_and_cancel_stops_it(ray_runtime, store):
    configs = [LONG.replace(seed=seed) for seed in range(4)]
    results = []
    with RayExecutor(store=store) as executor:
        consumer = threading.Thread(
            target=lambda: results.extend(executor.run(configs, sweep_id="s1", owner="ana"))
        )
        consumer.start()
        try:
            training = until(
                lambda: (
                    len(r := [r for r in store.list_runs(sweep_id="s1") if r.step >= 5]) == 4 and r
                ),
                timeout=120,
                what="the runs' steps in the store while they train",
            )
            assert all(r.status == "running" for r in training)  # interleaved on 2 actors
            assert len(executor.manager.worker_pids()) == 2  # one actor per CPU
        finally:
            executor.cancel()
            consumer.join(timeout=120)
    assert len(results) == 4 and {r.status for r in results} == {"stopped"}
    for result in results:  # stopped at a step, then evaluated and summarised as usual
        steps = result.summary["steps"]
        assert 5 <= steps < LONG.steps
        assert store.get_run(result.run_id).status == "stopped"
        assert len(store.history(result.run_id)) == steps


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="kills a Ray actor's process")
def test_a_killed_ray_worker_fails_its_run_and_the_sweep_goes_on(ray_runtime, store):
    # Two runs of a few seconds train, one on each actor; one actor's process is killed.
    configs = [LONG.replace(steps=1000, seed=seed) for seed in (0, 1)]
    results = []
    with RayExecutor(store=store) as executor:
        consumer = threading.Thread(
            target=lambda: results.extend(executor.run(configs, sweep_id="s2", owner="ana"))
        )
        consumer.start()
        try:
            until(
                lambda: len([r for r in store.list_runs(sweep_id="s2") if r.step >= 5]) == 2,
                timeout=120,
                what="two runs to train",
            )
            os.kill(executor.manager.worker_pids()[0], signal.SIGKILL)
        finally:
            consumer.join(timeout=180)
        assert not consumer.is_alive()
        statuses = sorted(r.status for r in results)
        assert statuses == ["completed", "failed"]
        failed = next(r for r in results if r.status == "failed")
        assert "stopped unexpectedly" in failed.error and "Ray actor" in failed.error
        assert store.get_run(failed.run_id).error == failed.error
        # The actor was replaced: the pool trains on.
        after = run_sweep(Grid(tiny(), {"cell": ["gru"]}), executor=executor, owner="ana")
        assert [r.status for r in after.results] == ["completed"]


def test_the_cli_sweeps_on_ray(ray_runtime, capsys):
    status = main(["sweep", *LONG_ARGS, "--steps", "20", "--seeds", "0,1", "--executor", "ray"])
    assert status == 0
    out = capsys.readouterr().out
    assert "2 runs (2 completed)" in out
    assert ray_runtime.is_initialized()  # a runtime the CLI did not start stays up


def test_ctrl_c_stops_a_sweep_on_a_ray_cluster_and_exits_130(ray_runtime, tmp_path):
    """A separate CLI process joins the module's runtime by its address, as it would a
    cluster: rnnlab travels to the workers with the job."""
    address = ray_runtime.get_runtime_context().gcs_address
    command = ["sweep", *LONG_ARGS, "--steps", "200000", "--seeds", "0,1,2,3"]
    command += ["--executor", "ray", "--ray-address", address, "--json"]
    status, out, err = interrupt_when_training(command, tmp_path, runs=4)
    assert status == 130, err
    assert "Traceback" not in err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert len(rows) == 4 and {row["status"] for row in rows} == {"stopped"}
    assert summary["statuses"] == {"stopped": 4}
    with RunStore(tmp_path / "runs.sqlite") as store:
        assert {run.id: run.status for run in store.list_runs()} == {
            row["run_id"]: "stopped" for row in rows
        }


def _trained_here(config):
    """The summary of the run trained in this process, with one torch thread as a worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(train(config, snapshot_every_s=None))[-1].summary
    finally:
        torch.set_num_threads(threads)


def test_the_pool_on_ray_trains_live_records_and_survives_a_killed_worker(
    ray_runtime, make_manager, store
):
    manager = make_manager(executor="ray", workers=1)
    assert manager.max_running == RUNS_PER_WORKER
    config = tiny(task="adding", cell="lstm", hidden_size=8, batch_size=8, seq_len=10)
    config = config.replace(steps=400)
    run_id = manager.submit(config, owner="ana")
    assert until(lambda: running(manager, run_id), what="the run to train in its actor")
    assert manager.live(run_id)["points"]  # the live view reads the server's memory
    progress = manager.wait(run_id, timeout=120)
    reference = _trained_here(config)
    assert progress.status == "completed"
    assert progress.summary["final_loss"] == reference["final_loss"]
    run = store.get_run(run_id)  # recorded by the server: the actor has no store
    assert run.status == "completed" and run.summary["final_loss"] == reference["final_loss"]
    assert store.history(run_id)["step"].tolist() == list(range(1, 401))
    assert store.evaluations(run_id)["step"].iloc[-1] == 400
    assert store.snapshot(run_id)["step"] == 400  # the last one, sent with the end
    assert store.weights(run_id) is not None  # an event the updates carry as it is

    doomed = manager.submit(LONG, owner="ana")
    until(lambda: running(manager, doomed) and manager.worker_pids(), what="a worker training")
    until(lambda: (manager.gates_view(doomed) or (0, None))[1], what="the live gate pictures")
    os.kill(manager.worker_pids()[0], signal.SIGKILL)
    failed = manager.wait(doomed, timeout=120)
    assert failed.status == "failed" and "stopped unexpectedly" in failed.error
    assert store.get_run(doomed).status == "failed"
    after = manager.submit(tiny(), owner="ana")  # on the actor that replaced it
    assert manager.wait(after, timeout=120).status == "completed"


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    return lines[0]


def test_without_ray_the_cli_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ClusterError, match="pip install"):
        RayExecutor().connect()
    with pytest.raises(SystemExit) as caught:
        main(["sweep", "--task", "hello", "--steps", "5", "--executor", "ray"])
    assert caught.value.code == 2
    assert _one_error_line(capsys) == f"rnnlab: error: {RAY_MISSING}"


def test_an_unreachable_cluster_exits_2_with_one_line(capsys):
    pytest.importorskip("ray")
    with pytest.raises(SystemExit) as caught:
        main(["sweep", "--task", "hello", "--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert caught.value.code == 2
    line = _one_error_line(capsys)
    assert line.startswith("rnnlab: error: cannot reach a Ray cluster at 127.0.0.1:1")


def test_a_study_trains_its_trials_on_ray_and_records_them_here(ray_runtime, store):
    from rnnlab.tune import tune

    with RayExecutor(store=store) as executor:
        study = tune(
            "cell=rnn|gru",
            tiny(task="adding", hidden_size=8, batch_size=8, seq_len=10, steps=60),
            trials=3,
            pruner="none",
            manager=executor.manager,
            study="on-ray",
        )
    trials = study.trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    runs = {run.trial: run for run in store.list_runs(study="on-ray")}
    assert sorted(runs) == [0, 1, 2]  # recorded by this machine from the actors' updates
    for trial in trials:
        run = runs[trial.number]
        assert run.config["cell"] == trial.params["cell"]
        assert trial.value == run.summary["final_loss"]
        assert len(store.evaluations(run.id)) == len(trial.intermediate_values)


def test_the_cli_tunes_on_ray(ray_runtime, capsys):
    assert main(["tune", *LONG_ARGS, "--steps", "40", "--search", "cell=rnn|gru",
                 "--trials", "2", "--executor", "ray", "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 2
