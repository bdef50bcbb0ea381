"""The training pool: worker processes that interleave runs, the server's live state, dead
workers, and owners that go away (judged by an injected clock, never by waiting a minute).

Every run here really trains (task "hello", four hidden units); nothing about training is
mocked. Waits poll with generous timeouts; no test asserts how long anything took.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import threading
import time

import pytest
import torch
from helpers import ENDLESS, FakeClock, running, tiny, until

from rnnlab.config import RunConfig
from rnnlab.jobs import JobError
from rnnlab.jobs import manager as manager_module
from rnnlab.train import train


def reference_losses(config: RunConfig) -> tuple[list[float], list[tuple[int, float]]]:
    """Training losses and (step, held-out loss) of train(config), in this process."""
    torch.set_num_threads(1)  # as the workers do; make_manager restores the count
    steps, evaluations = [], []
    for event in train(config):
        if event.kind == "step":
            steps.append(event.loss)
        elif event.kind == "eval":
            evaluations.append((event.step, event.loss))
    return steps, evaluations


class Presence:
    """A presence callback that answers from a dict and counts who it was asked about."""

    def __init__(self, answers: dict[str, bool | None]) -> None:
        self.answers = answers
        self.asked: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def __call__(self, owner: str) -> bool | None:
        with self.lock:
            self.asked[owner] += 1
        return self.answers.get(owner)

    def count(self, owner: str) -> int:
        with self.lock:
            return self.asked[owner]

    def checks_pass(self, owner: str, checks: int = 2) -> None:
        """Wait until the manager's periodic check has asked about `owner` `checks` more
        times, so at least one whole check ran after whatever the test just changed."""
        seen = self.count(owner)
        until(lambda: self.count(owner) >= seen + checks, what=f"checks asking about {owner}")


@pytest.fixture(autouse=True)
def default_pool_size(monkeypatch):
    """max_running from the manager's own default (16 runs per worker), not the shell's."""
    monkeypatch.delenv("RNNLAB_MAX_RUNNING", raising=False)


# 1. Interleaving -------------------------------------------------------------------------


def test_one_worker_trains_six_runs_at_once(make_manager, store):
    manager = make_manager(workers=1, max_queued_per_owner=None)
    run_ids = [manager.submit(tiny(steps=200_000, seed=i), owner="ana") for i in range(6)]

    until(lambda: all(running(manager, r) for r in run_ids), what="all six runs to train")
    queue = manager.queue()
    assert sorted(p.run_id for p in queue) == sorted(run_ids)
    assert all(p.status == "running" and p.queue_position is None for p in queue)
    assert len(manager.worker_pids()) == 1  # one process holds all six
    assert len({store.get_run(r).pid for r in run_ids}) == 1

    # Each keeps moving while the others train: round robin, not one after another.
    before = {r: manager.progress(r).step for r in run_ids}
    until(
        lambda: all(manager.progress(r).step > before[r] for r in run_ids),
        what="every run to advance again",
    )

    for run_id in run_ids:
        assert manager.cancel(run_id, owner="ana") is True
    for run_id in run_ids:
        final = manager.wait(run_id, timeout=120)
        assert final.status == "stopped" and final.error is None
        run = store.get_run(run_id)
        assert run.status == "stopped"
        assert store.history(run_id)["step"].tolist() == list(range(1, final.step + 1))
    assert manager.queue() == []


def test_beyond_max_running_runs_wait_first_in_first_out(make_manager, store):
    manager = make_manager(workers=1, max_running=2, max_queued_per_owner=None)
    first, second, third, fourth = (
        manager.submit(tiny(steps=200_000, seed=i), owner="ana") for i in range(4)
    )
    until(lambda: running(manager, first) and running(manager, second), what="two runs")
    assert manager.progress(third).status == "queued"
    assert manager.progress(third).queue_position == 1
    assert manager.progress(fourth).queue_position == 2
    queue = manager.queue()
    assert [p.run_id for p in queue[2:]] == [third, fourth]
    assert [p.queue_position for p in queue] == [None, None, 1, 2]
    assert manager.live(third)["status"] == "queued"
    assert manager.live(third)["queue_position"] == 1
    assert manager.live(third)["points"] == {"step": [], "loss": []}

    # A running run that ends makes room for the next in line, and only that one.
    manager.cancel(first)
    assert manager.wait(first, timeout=120).status == "stopped"
    until(lambda: running(manager, third), what="the third run to start")
    assert manager.progress(fourth).queue_position == 1
    assert store.get_run(fourth).status == "queued"

    for run_id in (second, third, fourth):
        manager.cancel(run_id)
    assert [manager.wait(r, timeout=120).status for r in (second, third, fourth)] == ["stopped"] * 3


# 2. Same seed, same losses ----------------------------------------------------------------


def test_a_run_in_the_pool_trains_exactly_as_train_does(make_manager, store):
    config = tiny(steps=30, eval_every=10, seed=7)
    expected_steps, expected_evaluations = reference_losses(config)
    manager = make_manager(workers=1)
    final = manager.wait(manager.submit(config, owner="ana"), timeout=120)
    assert final.status == "completed"

    history = store.history(final.run_id)
    assert history["step"].tolist() == list(range(1, 31))
    assert history["loss"].tolist() == expected_steps
    evaluations = store.evaluations(final.run_id)
    assert list(zip(evaluations["step"], evaluations["loss"], strict=True)) == (
        expected_evaluations
    )
    assert manager.live(final.run_id)["points"]["loss"] == expected_steps


def test_interleaved_runs_each_train_as_they_would_alone(make_manager, store):
    """Four runs share one worker, a slice each in turn, two of them with the same seed:
    none disturbs another's model, optimiser or data."""
    seeds = [1, 2, 7, 7]
    configs = [tiny(steps=40, eval_every=20, seed=s, cell="gru") for s in seeds]
    manager = make_manager(workers=1, max_queued_per_owner=None)
    run_ids = [manager.submit(config, owner=f"user{i}") for i, config in enumerate(configs)]
    finals = [manager.wait(r, timeout=120) for r in run_ids]
    assert [p.status for p in finals] == ["completed"] * 4
    records = [store.get_run(r) for r in run_ids]
    assert len({run.pid for run in records}) == 1  # one worker trained them all
    # ... at once: every run had started before the first one finished.
    assert max(run.started_at for run in records) < min(run.finished_at for run in records)

    references = {seed: reference_losses(configs[seeds.index(seed)]) for seed in set(seeds)}
    for run_id, seed in zip(run_ids, seeds, strict=True):
        expected_steps, expected_evaluations = references[seed]
        assert store.history(run_id)["loss"].tolist() == expected_steps, seed
        evaluations = store.evaluations(run_id)
        assert list(zip(evaluations["step"], evaluations["loss"], strict=True)) == (
            expected_evaluations
        )
        assert manager.live(run_id)["points"]["loss"] == expected_steps
    assert references[1][0] != references[2][0]  # the comparison can tell seeds apart


# 3. live() ---------------------------------------------------------------------------------


def test_live_returns_points_and_evaluations_strictly_after_since(make_manager, store):
    manager = make_manager(workers=1)
    config = tiny(steps=50, eval_every=10, seed=3)
    run_id = manager.submit(config, owner="ana")
    final = manager.wait(run_id, timeout=120)
    assert final.status == "completed"

    everything = manager.live(run_id)  # since=0: from the first step
    history = store.history(run_id)
    assert everything["points"]["step"] == list(range(1, 51))
    assert everything["points"]["loss"] == history["loss"].tolist()
    assert [e[0] for e in everything["evaluations"]] == [10, 20, 30, 40, 50]
    held_out = store.evaluations(run_id)["loss"].tolist()
    assert [e[1] for e in everything["evaluations"]] == held_out
    assert manager.live(run_id, since=-5)["points"] == everything["points"]

    later = manager.live(run_id, since=25)
    assert later["points"]["step"] == list(range(26, 51))
    assert later["points"]["loss"] == everything["points"]["loss"][25:]
    assert [e[0] for e in later["evaluations"]] == [30, 40, 50]
    on_an_evaluation = manager.live(run_id, since=30)
    assert on_an_evaluation["points"]["step"][0] == 31
    assert [e[0] for e in on_an_evaluation["evaluations"]] == [40, 50]  # strictly after
    nothing = manager.live(run_id, since=50)
    assert nothing["points"] == {"step": [], "loss": []} and nothing["evaluations"] == []
    assert manager.live(run_id, since=10**9)["points"]["step"] == []

    assert nothing["status"] == "completed" and nothing["step"] == 50
    assert nothing["steps"] == 50 and nothing["error"] is None
    assert nothing["queue_position"] is None and nothing["eta_s"] is None
    assert nothing["metric_name"] == "accuracy"
    assert nothing["held_out_loss"] == pytest.approx(held_out[-1])
    json.dumps(everything, allow_nan=False)  # plain JSON, no NaN

    assert manager.live("0123456789ab") is None
    assert manager.live("not a run id") is None


def test_live_polled_like_a_page_sees_every_step_once(make_manager):
    manager = make_manager(workers=1)
    run_id = manager.submit(ENDLESS, owner="ana")
    steps: list[int] = []
    last = 0
    statuses = set()

    def poll() -> bool:
        nonlocal last
        live = manager.live(run_id, since=last)
        json.dumps(live, allow_nan=False)
        statuses.add(live["status"])
        if live["points"]["step"]:
            steps.extend(live["points"]["step"])
            last = live["points"]["step"][-1]
            assert live["step"] >= last
            assert len(live["points"]["loss"]) == len(live["points"]["step"])
            assert all(isinstance(v, float) and math.isfinite(v) for v in live["points"]["loss"])
        return last >= 150

    until(poll, what="150 steps")
    live = manager.live(run_id, since=last)
    assert live["status"] == "running" and live["queue_position"] is None
    assert live["steps"] == ENDLESS.steps and live["error"] is None
    manager.cancel(run_id)
    final = manager.wait(run_id, timeout=120)
    assert final.status == "stopped"
    rest = manager.live(run_id, since=last)  # the last poll, after the run ended
    assert rest["status"] == "stopped" and rest["step"] == final.step
    steps.extend(rest["points"]["step"])
    assert steps == list(range(1, final.step + 1))  # no gap, no repeat
    assert statuses <= {"queued", "running"}


# 4. A worker that dies --------------------------------------------------------------------


def test_a_killed_worker_fails_only_its_runs_and_is_replaced(make_manager, store):
    manager = make_manager(workers=2, max_queued_per_owner=None)
    victim = manager.submit(ENDLESS, owner="ana")
    bystander = manager.submit(tiny(steps=200_000, seed=1), owner="ben")
    until(
        lambda: running(manager, victim) and running(manager, bystander),
        what="both runs to train",
    )
    until(lambda: len(store.history(victim)) >= 5, what="the victim's rows in the store")
    pids = manager.worker_pids()
    victim_pid, bystander_pid = store.get_run(victim).pid, store.get_run(bystander).pid
    assert victim_pid in pids and bystander_pid in pids and victim_pid != bystander_pid
    written = store.history(victim)

    os.kill(victim_pid, signal.SIGKILL)
    final = manager.wait(victim, timeout=120)
    assert final.status == "failed"
    assert "stopped unexpectedly" in final.error and "signal 9" in final.error
    # (the store is written just after wait() returns: see the test after this one)
    run = until(lambda: (r := store.get_run(victim)).status == "failed" and r, what="store")
    assert run.error == final.error
    after = store.history(victim)
    assert after["step"].tolist()[: len(written)] == written["step"].tolist()
    assert after["loss"].tolist()[: len(written)] == written["loss"].tolist()
    assert after["step"].tolist() == list(range(1, len(after) + 1))

    replaced = until(
        lambda: (p := manager.worker_pids()) and len(p) == 2 and victim_pid not in p and p,
        what="a replacement worker",
    )
    assert bystander_pid in replaced
    # The other worker's run did not notice.
    step = manager.progress(bystander).step
    until(lambda: manager.progress(bystander).step > step, what="the bystander to go on")
    assert manager.progress(bystander).status == "running"

    again = manager.wait(manager.submit(tiny(seed=5), owner="ana"), timeout=120)
    assert again.status == "completed" and again.error is None
    assert store.history(again.run_id)["step"].tolist() == list(range(1, 13))
    manager.cancel(bystander)
    assert manager.wait(bystander, timeout=120).status == "stopped"


def test_a_run_failed_by_a_dead_worker_is_in_the_store_when_wait_returns(
    make_manager, store, monkeypatch
):
    """BUG (minor, a race): a run that ends normally is in the store before wait() returns
    (the worker writes it, then tells the server), but when its worker dies the manager
    marks it failed and wakes waiters first, and writes the store afterwards. Slowing the
    server's store.fail (the worker keeps its own store) turns the window into a sure
    thing; training itself is untouched."""
    manager = make_manager(workers=1)
    assert manager.store is store
    real_fail = store.fail

    def slow_fail(run_id: str, error: str) -> None:
        time.sleep(0.5)
        real_fail(run_id, error)

    monkeypatch.setattr(store, "fail", slow_fail)
    run_id = manager.submit(ENDLESS, owner="ana")
    until(lambda: running(manager, run_id), what="the run to train")
    for pid in manager.worker_pids():
        os.kill(pid, signal.SIGKILL)
    final = manager.wait(run_id, timeout=120)
    assert final.status == "failed"
    assert store.get_run(run_id).status == "failed"  # "running" here today


def test_the_only_worker_killed_fails_its_runs_and_a_new_one_trains(make_manager, store):
    manager = make_manager(workers=1, max_queued_per_owner=None)
    first = manager.submit(ENDLESS, owner="ana")
    second = manager.submit(tiny(steps=200_000, seed=2), owner="ana")
    until(lambda: running(manager, first) and running(manager, second), what="two runs")
    until(
        lambda: len(store.history(first)) and len(store.history(second)),
        what="rows of both in the store",
    )
    old = manager.worker_pids()
    assert len(old) == 1
    for pid in old:
        os.kill(pid, signal.SIGKILL)

    for run_id in (first, second):
        final = manager.wait(run_id, timeout=120)
        assert final.status == "failed" and "stopped unexpectedly" in final.error
        until(lambda r=run_id: store.get_run(r).status == "failed", what="the store")
        assert store.get_run(run_id).error == final.error
        assert len(store.history(run_id)) > 0  # what was written stays
    until(lambda: (p := manager.worker_pids()) and set(p).isdisjoint(old), what="a new worker")
    again = manager.wait(manager.submit(tiny(), owner="ana"), timeout=120)
    assert again.status == "completed"
    assert store.get_run(again.run_id).pid not in old


# 5. Owners that go away -------------------------------------------------------------------


def test_an_absent_owner_loses_its_runs_and_may_come_back(make_manager, store):
    clock = FakeClock()
    checks = Presence({})  # cannot tell about anyone: counts the manager's checks, no more
    manager = make_manager(workers=1, orphan_after_s=60.0, clock=clock, presence=checks)
    manager.heartbeat("ana")
    run_id = manager.submit(ENDLESS, owner="ana")
    unseen = manager.submit(tiny(steps=200_000, seed=1), owner="notebook")  # no heartbeat
    until(lambda: running(manager, run_id) and running(manager, unseen), what="both runs")

    clock.now += 59.0  # not yet: absent for less than orphan_after_s
    checks.checks_pass("ana")
    assert manager.progress(run_id).status == "running"

    clock.now += 2.0  # 61 s since ana was last seen
    final = manager.wait(run_id, timeout=120)
    assert final.status == "stopped" and "stopped watching" in final.error
    run = store.get_run(run_id)
    assert run.status == "stopped" and run.error == final.error
    assert manager.progress(unseen).status == "running"  # never seen, never dropped

    with pytest.raises(JobError, match="closed"):
        manager.submit(tiny(), owner="ana")
    assert store.list_runs(status="queued") == []  # the refusal recorded nothing

    manager.heartbeat("ana")
    back = manager.wait(manager.submit(tiny(), owner="ana"), timeout=120)
    assert back.status == "completed" and back.error is None
    manager.cancel(unseen)
    assert manager.wait(unseen, timeout=120).status == "stopped"


def test_presence_keeps_an_owner_and_its_absence_lets_runs_go(make_manager, store):
    clock = FakeClock()
    presence = Presence({"ana": True})
    manager = make_manager(workers=1, orphan_after_s=60.0, clock=clock, presence=presence)
    manager.heartbeat("ana")
    run_id = manager.submit(ENDLESS, owner="ana")
    until(lambda: running(manager, run_id), what="the run to train")

    # 80 s pass on the manager's clock, 40 s at a time with checks in between (so no
    # check sees two jumps): the tab is open all along.
    for _ in range(2):
        clock.now += 40.0
        presence.checks_pass("ana")
    assert manager.progress(run_id).status == "running"

    presence.answers["ana"] = False  # the tab is closed: no more fresh sightings
    presence.checks_pass("ana")
    assert manager.progress(run_id).status == "running"  # not before orphan_after_s
    clock.now += 61.0
    final = manager.wait(run_id, timeout=120)
    assert final.status == "stopped" and "stopped watching" in final.error
    assert store.get_run(run_id).error == final.error
    with pytest.raises(JobError, match="closed"):
        manager.submit(tiny(), owner="ana")


def test_presence_that_cannot_tell_leaves_it_to_heartbeats(make_manager):
    clock = FakeClock()
    presence = Presence({"ana": None, "ben": None})
    manager = make_manager(workers=1, orphan_after_s=60.0, clock=clock, presence=presence)
    manager.heartbeat("ana")
    manager.heartbeat("ben")
    kept = manager.submit(ENDLESS, owner="ana")
    dropped = manager.submit(tiny(steps=200_000, seed=1), owner="ben")
    until(lambda: running(manager, kept) and running(manager, dropped), what="both runs")
    for _ in range(2):
        clock.now += 40.0
        manager.heartbeat("ana")  # ana's page polls; ben's does not
        presence.checks_pass("ana")
    final = manager.wait(dropped, timeout=120)
    assert final.status == "stopped" and "stopped watching" in final.error
    assert manager.progress(kept).status == "running"
    manager.cancel(kept)
    assert manager.wait(kept, timeout=120).status == "stopped"


def test_an_owner_still_present_after_its_run_ends_may_train_again(make_manager):
    """BUG: presence is asked only about owners with active runs, yet the manager judges
    every owner it once saw by its last sighting. A tab that is still open (presence says
    True) but has nothing running, say someone reading a finished run's charts for a
    minute, is dropped as absent, and pressing Train again fails with "this session was
    closed". The Train page never calls heartbeat(); it relies on presence."""
    clock = FakeClock()
    presence = Presence({"ana": True})  # ben's presence: cannot tell (never judged)
    manager = make_manager(workers=1, orphan_after_s=60.0, clock=clock, presence=presence)
    first = manager.submit(ENDLESS, owner="ana")  # the Train page: no heartbeat
    other = manager.submit(tiny(steps=200_000, seed=1), owner="ben")
    until(lambda: running(manager, first) and running(manager, other), what="both runs")
    presence.checks_pass("ana")  # ana has been seen
    manager.cancel(first, owner="ana")
    assert manager.wait(first, timeout=120).status == "stopped"

    clock.now += 61.0  # ana reads her charts for a minute; her tab stays open
    presence.checks_pass("ben")  # the manager has looked for absent owners since
    again = manager.submit(tiny(), owner="ana")  # raises JobError: "this session was closed"
    assert manager.wait(again, timeout=120).status == "completed"
    manager.cancel(other)
    assert manager.wait(other, timeout=120).status == "stopped"


def test_workers_that_cannot_start_fail_the_waiting_runs_with_a_message(
    make_manager, store, monkeypatch
):
    """The fork server killed for memory (a small container) must not leave runs queued
    for ever: each failed start counts, and once the pool gives up the runs say why."""

    def no_worker(context, store_path, torch_threads):
        def start(number):
            raise EOFError("unexpected EOF")  # what a dead fork server gives

        return start

    monkeypatch.setattr(manager_module, "make_local_worker", no_worker)
    manager = make_manager(workers=1)
    run_id = manager.submit(tiny(), owner="ana")
    final = manager.wait(run_id, timeout=60)
    assert final.status == "failed" and "cannot start" in final.error
    assert "EOFError" in final.error
    assert until(lambda: store.get_run(run_id).status == "failed", what="the store")
    with pytest.raises(JobError, match="cannot start"):
        manager.submit(tiny(), owner="ana")
