import collections
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
import torch
from helpers import ENDLESS, FakeClock, running, tiny, until

from rnnlab.config import RunConfig
from rnnlab.jobs import JobError, JobManager, QueueFull, default_workers, get_manager


def test_fifty_jobs_from_ten_threads_all_land_in_the_store(make_manager, store, caplog):
    manager = make_manager(workers=2, max_queued_per_owner=None)
    submitted: list[str] = []
    submitted_lock = threading.Lock()
    positions: dict[str, list[int]] = collections.defaultdict(list)
    done = threading.Event()
    watcher_errors: list[BaseException] = []

    def submit_five(owner: int) -> None:
        for seed in range(5):
            run_id = manager.submit(tiny(seed=seed, steps=10 + owner), owner=f"user{owner}")
            with submitted_lock:
                submitted.append(run_id)

    def watch_queue() -> None:
        """Poll like thirty pages would: the queue, and the store while workers write."""
        try:
            while not done.is_set():
                queue = manager.queue()
                waiting = [p for p in queue if p.status == "queued"]
                assert [p.queue_position for p in waiting] == list(range(1, len(waiting) + 1))
                assert all(p.queue_position is None for p in queue if p.status == "running")
                for progress in waiting:
                    positions[progress.run_id].append(progress.queue_position)
                for run in store.list_runs(status="running"):
                    store.history(run.id)
                time.sleep(0.005)
        except BaseException as error:
            watcher_errors.append(error)

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    with caplog.at_level(logging.ERROR):
        threads = [threading.Thread(target=submit_five, args=(i,)) for i in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finals = [manager.wait(run_id, timeout=300) for run_id in submitted]
    done.set()
    watcher.join()

    assert watcher_errors == []
    assert len(set(submitted)) == 50
    assert [p.status for p in finals] == ["completed"] * 50
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    for run_id in submitted:
        run = store.get_run(run_id)
        assert run.status == "completed" and run.error is None
        steps = run.config["steps"]
        assert store.history(run_id)["step"].tolist() == list(range(1, steps + 1))
        assert store.evaluations(run_id)["step"].iloc[-1] == steps
        assert store.snapshot(run_id) is not None
    assert positions, "the watcher saw no queue"
    assert manager.queue() == []


def test_cancel_a_waiting_and_a_running_job(make_manager, store):
    manager = make_manager(workers=1, max_running=1)
    first = manager.submit(ENDLESS, owner="ana")
    second = manager.submit(tiny(), owner="ana")
    until(lambda: running(manager, first), what="the first job to run")
    assert manager.progress(second).queue_position == 1

    with pytest.raises(JobError, match="someone else"):
        manager.cancel(second, owner="ben")
    assert manager.cancel(second, owner="ana") is True
    assert manager.progress(second).status == "stopped"
    assert store.get_run(second).status == "stopped"
    assert manager.progress(first).status == "running"  # the worker was not disturbed

    assert manager.cancel(first) is True
    final = manager.wait(first, timeout=120)
    assert final.status == "stopped" and final.summary["status"] == "stopped"
    assert 0 < final.step < ENDLESS.steps
    run = store.get_run(first)
    assert run.status == "stopped" and len(store.history(first)) == run.step == final.step
    assert manager.cancel(first) is False  # already finished
    assert manager.cancel("0123456789ab") is False  # unknown


def test_an_owner_cannot_fill_the_queue(make_manager):
    manager = make_manager(workers=1, max_queued_per_owner=2, max_running=1)
    blocker = manager.submit(ENDLESS, owner="instructor")
    until(lambda: running(manager, blocker), what="the blocker to run")
    waiting = [manager.submit(tiny(seed=i), owner="ana") for i in range(2)]
    with pytest.raises(QueueFull, match="You already have 2 runs waiting") as refused:
        manager.submit(tiny(seed=2), owner="ana")
    assert "cancel one" in str(refused.value)
    other = manager.submit(tiny(), owner="ben")  # others are not affected
    assert manager.progress(other).queue_position == 2  # owners take turns: ana, ben, ana
    manager.cancel(waiting[0], owner="ana")
    manager.submit(tiny(seed=3), owner="ana")  # room again
    manager.cancel(blocker)


def test_jobs_of_an_owner_that_stopped_polling_are_cancelled(make_manager, store):
    clock = FakeClock()  # the manager's time moves only when the test says
    manager = make_manager(workers=1, orphan_after_s=60.0, max_running=1, clock=clock)
    manager.heartbeat("closed-tab")
    manager.heartbeat("open-tab")
    abandoned = manager.submit(ENDLESS, owner="closed-tab")
    abandoned_waiting = manager.submit(tiny(), owner="closed-tab")
    kept = manager.submit(tiny(), owner="open-tab")
    unpolled = manager.submit(tiny(), owner="notebook")  # never sent a heartbeat
    until(lambda: running(manager, abandoned), what="the abandoned job to run")
    assert manager.progress(abandoned).status == "running"  # present so far

    clock.now += 61.0  # a minute passes; only the open tab polls in it
    manager.heartbeat("open-tab")
    until(
        lambda: manager.progress(abandoned).status == "stopped",
        what="the silent owner's job to stop",
    )
    final = manager.wait(abandoned, timeout=120)
    assert final.status == "stopped" and "stopped watching" in final.error
    assert store.get_run(abandoned).error == final.error
    assert manager.progress(abandoned_waiting).status == "stopped"
    assert store.get_run(abandoned_waiting).status == "stopped"
    for run_id in (kept, unpolled):
        until(
            lambda run_id=run_id: (
                manager.heartbeat("open-tab") or not manager.wait(run_id, 0.1).active
            ),
            what="the others to finish",
        )
        assert manager.progress(run_id).status == "completed"


def test_progress_is_live_while_running_and_final_after(make_manager, store):
    manager = make_manager(workers=1)
    run_id = manager.submit(ENDLESS, owner="ana")
    live = until(
        lambda: (p := running(manager, run_id)) and p.steps_per_s and p.snapshot and p,
        what="rate, snapshot and metric",
    )
    assert live.steps == ENDLESS.steps and live.loss is not None and live.eta_s > 0
    assert live.queue_position is None and live.config["steps"] == ENDLESS.steps
    assert live.snapshot["kind"] == "snapshot" and live.metric_name == "accuracy"
    json.dumps(live.to_dict())  # a page can ship it as it is
    later = until(lambda: (p := manager.progress(run_id)).held_out_loss is not None and p)
    assert later.step >= live.step
    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)

    other = JobManager(store=store, workers=1)  # a process that never held the job
    try:
        remembered = other.progress(run_id)
        assert remembered.status == "stopped" and remembered.step > 0
        assert remembered.summary["status"] == "stopped"
        assert other.progress("0123456789ab") is None
    finally:
        other.shutdown()


def test_a_job_that_raises_is_failed_with_its_message(make_manager, store, tmp_path):
    manager = make_manager(workers=1)
    config = RunConfig(task="text", text_file=str(tmp_path / "missing.txt"), steps=5)
    final = manager.wait(manager.submit(config, owner="ana"), timeout=120)
    assert final.status == "failed" and "cannot read text file" in final.error
    run = store.get_run(final.run_id)
    assert run.status == "failed" and run.error == final.error
    assert manager.wait(manager.submit(tiny(), owner="ana"), timeout=120).status == "completed"


def test_shutdown_interrupts_jobs_and_refuses_new_ones(make_manager, store):
    manager = make_manager(workers=1, max_running=1)
    active = manager.submit(ENDLESS, owner="ana")
    waiting = manager.submit(tiny(), owner="ana")
    until(lambda: running(manager, active), what="the job to run")
    manager.shutdown(timeout=120)
    assert store.get_run(active).status == "interrupted"
    assert store.get_run(waiting).status == "interrupted"
    assert "shut down" in store.get_run(active).error
    with pytest.raises(JobError, match="shutting down"):
        manager.submit(tiny(), owner="ana")


def test_submit_takes_a_run_config(make_manager):
    with pytest.raises(TypeError, match="RunConfig"):
        make_manager().submit({"task": "hello"}, owner="ana")


def test_workers_come_from_rnnlab_workers_one_process_each(make_manager, monkeypatch):
    monkeypatch.setenv("RNNLAB_WORKERS", "3")
    assert default_workers() == 3
    manager = make_manager(workers=None)
    assert manager.workers == 3 and manager.torch_threads == 1
    pids = until(lambda: len(manager.worker_pids()) == 3 and manager.worker_pids())
    assert os.getpid() not in pids and len(set(pids)) == 3
    for bad in ("0", "two"):
        monkeypatch.setenv("RNNLAB_WORKERS", bad)
        with pytest.raises(ValueError, match="RNNLAB_WORKERS"):
            default_workers()
    monkeypatch.delenv("RNNLAB_WORKERS")
    assert 1 <= default_workers() <= os.cpu_count()  # one per processor the memory allows


def test_get_manager_is_one_per_process(store, monkeypatch):
    import rnnlab.jobs.manager as jobs

    threads = torch.get_num_threads()
    monkeypatch.setattr(jobs, "_manager", None)
    try:
        results: list[JobManager] = []
        workers = [threading.Thread(target=lambda: results.append(get_manager())) for _ in range(8)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        assert len({id(m) for m in results}) == 1
        manager = results[0]
        assert manager.store.path == store.path
        manager.shutdown()
        assert get_manager() is not manager  # a closed one is replaced
    finally:
        jobs._manager.shutdown()
        torch.set_num_threads(threads)


PAGE_AS_MAIN = """
import sys, types
# As Streamlit does: the page that ran last is installed as __main__.
page = types.ModuleType("__main__")
page.__file__ = sys.argv[1]
sys.modules["__main__"] = page
from rnnlab.config import RunConfig
from rnnlab.jobs import JobManager
manager = JobManager(workers=1)
run_id = manager.submit(RunConfig(task="hello", hidden_size=4, steps=10), owner="ana")
print(manager.wait(run_id, timeout=120).status)
manager.shutdown(timeout=60)
"""


def test_workers_never_run_the_page_installed_as_main(tmp_path):
    page = tmp_path / "page.py"
    page.write_text("raise SystemExit('a training worker ran the page')\n")
    result = subprocess.run(
        [sys.executable, "-c", PAGE_AS_MAIN, str(page)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RNNLAB_HOME": str(tmp_path)},
    )
    assert result.stdout.strip().splitlines()[-1:] == ["completed"], result.stderr[-2000:]
    assert "ran the page" not in result.stderr


def test_a_worker_makes_the_weights_file_a_page_offers(make_manager, store):
    """The server imports no PyTorch: a download's file is made by a worker, and is the
    file the CLI's export makes in-process."""
    from rnnlab.downloads import weights_file_bytes
    from rnnlab.weights import read_weights

    manager = make_manager(workers=1)
    run_id = manager.submit(tiny(), owner="ana")
    assert manager.wait(run_id, timeout=120).status == "completed"
    made = read_weights(manager.export_weights(run_id))
    expected = read_weights(weights_file_bytes(store, run_id))
    assert made["run_id"] == expected["run_id"] == run_id
    assert made["summary"] == expected["summary"]
    assert made["state_dict"].keys() == expected["state_dict"].keys()
    for name, tensor in made["state_dict"].items():
        assert tensor.equal(expected["state_dict"][name])
    unfinished = manager.submit(ENDLESS, owner="ana")
    assert manager.export_weights(unfinished) is None  # no weights yet
    manager.cancel(unfinished)


def test_the_pool_prunes_the_store_after_runs_finish(make_manager, store, monkeypatch):
    """Only each owner's newest run keeps its weights here: the pool's upkeep drops the
    older ones' soon after they finish, without anyone calling prune."""
    monkeypatch.setenv("RNNLAB_KEEP_WEIGHTS", "1")
    manager = make_manager(workers=1)
    first, second = (manager.submit(tiny(seed=seed), owner="ana") for seed in (1, 2))
    for run_id in (first, second):
        assert manager.wait(run_id, timeout=120).status == "completed"
    until(lambda: store.weights(first) is None, timeout=30, what="the oldest weights dropped")
    assert store.weights(second) is not None


def test_progress_carries_the_baseline_the_run_measured(make_manager, store):
    """The sine task's chance level is measured on its data, which a page without
    PyTorch cannot do: the run's progress says what it was, live and from the store."""
    manager = make_manager(workers=1)
    run_id = manager.submit(RunConfig(task="sine", seq_len=20, steps=5), owner="ana")
    assert manager.wait(run_id, timeout=120).status == "completed"
    measured = store.get_run(run_id).info["baseline"]
    assert measured is not None and manager.progress(run_id).baseline == measured
