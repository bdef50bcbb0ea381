"""Fair shares and runs sized to the machine: one visitor cannot take the room.

Each test replays a way the public room was taken over (one session holding every
training slot, one run too large for the container) and checks the rule that stops it.
"""

import collections
import types

import pytest

from rnnlab.config import RunConfig
from rnnlab.jobs import JobError, resources, sizing
from rnnlab.jobs.scheduling import Scheduler, fair_order
from rnnlab.jobs.settings import MemoryPlan, memory_plan
from rnnlab.store import RunStore
from rnnlab.worker import Worker
from tests.helpers import until

ENDLESS = RunConfig(task="adding", hidden_size=8, seq_len=10, batch_size=4, steps=200_000)
# A laptop-like machine, so the tests decide the same way everywhere.
MACHINE = sizing.Calibration(
    per_step_layer_s=6e-6, per_flop_s=1.2e-11, per_parameter_s=6e-9, per_element_s=4e-9
)


def job(owner: str, run_id: str):
    return types.SimpleNamespace(owner=owner, run_id=run_id)


class FakeWorker:
    """What the scheduler reads of a worker: its runs, and whether it died."""

    def __init__(self, jobs: dict):
        self.jobs, self.lost = jobs, False


def test_the_queue_takes_owners_in_turn_fewest_running_first():
    waiting = [job("race", f"r{i}") for i in range(5)] + [job("ana", "a1"), job("ben", "b1")]
    order = fair_order(waiting, collections.Counter({"race": 3}))
    assert [j.run_id for j in order] == ["a1", "b1", "r0", "r1", "r2", "r3", "r4"]
    order = fair_order(waiting, collections.Counter())
    assert [j.run_id for j in order][:4] == ["r0", "a1", "b1", "r1"]


def test_a_run_waits_for_memory_and_later_runs_that_fit_go_first():
    scheduler = Scheduler(memory_per_worker=100)
    worker = FakeWorker({"old": job("x", "old")})
    scheduler.memory.update(
        old=sizing.Estimate(0.1, kept_bytes=60, step_bytes=10),
        big=sizing.Estimate(0.1, kept_bytes=35, step_bytes=15),
        small=sizing.Estimate(0.1, kept_bytes=20, step_bytes=5),
    )
    queue = [job("ana", "big"), job("ben", "small")]
    chosen = scheduler.next_start(queue, [worker], 24, lambda o, n: True, collections.Counter())
    # big does not fit beside old (60 + 35 kept, 15 at most stepping); small does
    assert chosen == (queue[1], worker)
    scheduler.forget("old")
    del worker.jobs["old"]
    assert (
        scheduler.next_start(queue, [worker], 24, lambda o, n: True, collections.Counter())[0]
        is queue[0]
    )


def test_an_owner_at_its_running_cap_waits_while_others_start(make_manager):
    manager = make_manager(workers=1, max_running_per_owner=2, max_queued_per_owner=10)
    race = [manager.submit(ENDLESS, owner="race") for _ in range(4)]
    until(lambda: sum(manager.progress(r).status == "running" for r in race) == 2)
    mine = manager.submit(ENDLESS, owner="ana")
    until(lambda: manager.progress(mine).status == "running", what="ana's run to start")
    statuses = collections.Counter(manager.progress(r).status for r in race)
    assert statuses == {"running": 2, "queued": 2}
    for run_id in [*race, mine]:
        manager.cancel(run_id)


def test_a_worker_shares_its_time_between_owners_not_runs(tmp_path):
    """Five runs of one owner and one of another on one worker: each owner gets about
    half of the worker's time."""
    store = RunStore(tmp_path / "runs.db")
    worker = Worker(connection=None, store=store)
    worker.send = lambda update: None
    config = ENDLESS.to_dict()
    for _ in range(5):
        run_id = store.create_run(ENDLESS, owner="race")
        worker.handle(("start", run_id, config, None, "race"))
    alone = store.create_run(ENDLESS, owner="ana")
    worker.handle(("start", alone, config, None, "ana"))
    cpu = collections.Counter()
    for _ in range(300):
        owner = min(worker.turns, key=worker.served.__getitem__)
        before = worker.served[owner]
        worker.turn()
        cpu[owner] += worker.served[owner] - before
    share = cpu["ana"] / (cpu["ana"] + cpu["race"])
    assert 0.4 < share < 0.6, cpu
    for run in list(worker.runs.values()):
        run.stop("test over", "stopped")
    store.close()


def test_a_step_too_long_for_a_shared_worker_is_refused_naming_the_setting():
    attack = RunConfig(
        task="adding", hidden_size=512, num_layers=4, batch_size=512, seq_len=73, steps=47
    )
    reason = sizing.too_large(attack, MACHINE, memory_bytes=None)
    assert reason is not None and "one training step would take about" in reason
    name, _, value = reason.rpartition("lower ")[2].partition(" to ")
    lowered = attack.replace(**{name: int(value.split()[0])})
    assert sizing.estimate(lowered, MACHINE).step_s <= sizing.MAX_STEP_S
    assert sizing.too_large(lowered, MACHINE, memory_bytes=None) is None


def test_a_run_larger_than_a_workers_memory_is_refused():
    config = RunConfig(task="adding", hidden_size=256, seq_len=100, batch_size=128)
    needed = sizing.estimate(config, MACHINE).memory_bytes
    assert sizing.too_large(config, MACHINE, memory_bytes=needed) is None
    reason = sizing.too_large(config, MACHINE, memory_bytes=needed // 2)
    assert "MB of memory" in reason and "lower" in reason


def test_the_presets_and_the_defaults_fit_a_slow_machine():
    from rnnlab.presets import PRESETS

    configs = [RunConfig(), *(preset.config() for preset in PRESETS.values())]
    for config in configs:
        assert sizing.too_large(config, sizing.UNMEASURED, 300 * 2**20) is None, config


def test_parameters_count_what_pytorch_allocates():
    from rnnlab.models import build_model
    from rnnlab.tasks import make_task

    for cell in ("rnn", "lstm", "gru"):
        for layers in (1, 3):
            config = RunConfig(task="adding", cell=cell, hidden_size=24, num_layers=layers)
            model = build_model(config, make_task(config))
            assert sizing.parameters(config) >= sum(p.numel() for p in model.parameters())


def test_the_manager_refuses_the_huge_step(make_manager):
    manager = make_manager(workers=1)
    attack = RunConfig(
        task="adding", hidden_size=512, num_layers=4, batch_size=512, seq_len=73, steps=47
    )
    with pytest.raises(JobError, match="lower"):
        manager.submit(attack, owner="mallory")
    assert manager.queue() == []


def test_owners_per_address_are_capped(make_manager):
    manager = make_manager(workers=1, max_queued_per_owner=50)
    manager.admission.max_owners_per_address = 2
    for owner in ("a", "b", "c"):
        manager.locate(owner, "10.0.0.7")
    manager.locate("d", "10.0.0.8")
    first = [manager.submit(ENDLESS, owner=o) for o in ("a", "b")]
    first.append(manager.submit(ENDLESS, owner="a"))  # an owner already counted
    with pytest.raises(JobError, match="sessions from your network address"):
        manager.submit(ENDLESS, owner="c")
    other = manager.submit(ENDLESS, owner="d")  # another address is not affected
    for run_id in [*first, other]:
        manager.cancel(run_id)


def cgroup_v1(tmp_path, limit: int, hierarchical: int | None = None):
    group = tmp_path / "memory" / "room"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(f"{limit}\n")
    stat = f"cache 0\nhierarchical_memory_limit {hierarchical or limit}\n"
    (group / "memory.stat").write_text(stat)
    cpu = tmp_path / "cpu,cpuacct" / "room"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("150000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/room\n2:cpu,cpuacct:/room\n0::/\n")
    return proc


def test_limits_come_from_cgroup_v1(tmp_path):
    proc = cgroup_v1(tmp_path, 723_517_440, hierarchical=700_000_000)
    found = resources.detect(root=tmp_path, proc_cgroup=proc)
    assert found.memory_bytes == 700_000_000 and found.memory_source == "cgroup v1"
    assert found.cpus <= 1.5 and resources.whole_cpus(found) <= 2  # the quota binds
    assert resources.whole_cpus(resources.Resources(1, "x", 1.5)) == 2  # half a CPU more


def test_limits_come_from_cgroup_v2(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    group = tmp_path / "app"
    group.mkdir()
    (group / "memory.max").write_text("1073741824\n")
    (group / "cpu.max").write_text("100000 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/app\n")
    found = resources.detect(root=tmp_path, proc_cgroup=proc)
    assert (found.memory_bytes, found.memory_source, found.cpus) == (2**30, "cgroup v2", 1.0)


def test_the_smallest_community_cloud_container_gets_one_worker_and_room_for_runs(monkeypatch):
    monkeypatch.delenv("RNNLAB_WORKERS", raising=False)
    monkeypatch.delenv("RNNLAB_MEMORY_MB", raising=False)
    small = resources.Resources(memory_bytes=690 * 10**6, memory_source="cgroup v1", cpus=2.0)
    plan = memory_plan(small, None, local=True)
    assert plan.workers == 1
    assert plan.memory_per_worker(1) >= 64 * 2**20
    large = resources.Resources(memory_bytes=24 * 2**30, memory_source="machine", cpus=2.0)
    assert memory_plan(large, None, local=True).workers == 2
    assert MemoryPlan(2, 2**30, 0, limited=False).memory_per_worker(2) is None


def test_an_owner_on_two_workers_is_charged_twice_on_each():
    scheduler = Scheduler(memory_per_worker=None)
    a = FakeWorker({"r1": job("race", "r1"), "s1": job("ana", "s1")})
    b = FakeWorker({"r2": job("race", "r2")})
    changes = {(id(w), o): k for w, o, k in scheduler.spreads([a, b])}
    assert changes == {(id(a), "race"): 2, (id(a), "ana"): 1, (id(b), "race"): 2}
    assert scheduler.spreads([a, b]) == []  # nothing changed, nothing to tell
    del b.jobs["r2"]
    assert {(id(w), o, k) for w, o, k in scheduler.spreads([a, b])} == {
        (id(a), "race", 1),
        (id(b), "race", 0),
    }


def test_a_worker_charges_a_spread_owner_for_every_worker(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    worker = Worker(connection=None, store=store)
    worker.send = lambda update: None
    for owner in ("race", "ana"):
        worker.handle(
            ("start", store.create_run(ENDLESS, owner=owner), ENDLESS.to_dict(), None, owner)
        )
    for _ in range(20):  # past each run's first, slower steps
        worker.turn()
    worker.handle(("spread", "race", 2))
    worker.served = dict.fromkeys(worker.served, 0.0)
    turns = collections.Counter()
    for _ in range(200):
        turns[min(worker.turns, key=worker.served.__getitem__)] += 1
        worker.turn()
    assert 1.6 < turns["ana"] / turns["race"] < 2.5, turns  # half the turns: half the time
    for run in list(worker.runs.values()):
        run.stop("test over", "stopped")
    store.close()


def test_a_run_whose_steps_take_too_long_is_stopped_saying_why(tmp_path, monkeypatch):
    """The estimate can be wrong; the worker measures every step and stops a run whose
    steps hold the worker longer than STEP_LIMIT_S (here: any step at all)."""
    from rnnlab import worker as worker_module

    monkeypatch.setattr(worker_module, "STEP_LIMIT_S", 0.0)
    store = RunStore(tmp_path / "runs.db")
    worker = Worker(connection=None, store=store)
    sent = []
    worker.send = sent.append
    run_id = store.create_run(ENDLESS, owner="ana")
    worker.handle(("start", run_id, ENDLESS.to_dict(), None, "ana"))
    while worker.runs:
        worker.turn()
    (finished,) = [u.finished for u in sent if u.finished]
    assert finished["status"] == "failed"
    assert (
        "one training step took" in finished["error"] and "lower hidden_size" in finished["error"]
    )
    run = store.get_run(run_id)
    assert run.status == "failed" and run.step <= 3
    store.close()
