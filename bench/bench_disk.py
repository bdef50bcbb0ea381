"""What a workshop day costs on disk, and that pruning keeps the run store within its budget.

    python bench/bench_disk.py                          # a few minutes on two cores
    python bench/bench_disk.py --owners 10 --runs 20    # a shorter day

Events of true sizes: each preset's network and the "30 MB trick" (task=text,
hidden_size=512, num_layers=4, seq_len=1, batch_size=1, steps=1: a second of training and
30 MB of weights) are trained for real for one step, which gives their Weights and
Snapshot events; a run's Step and Evaluation events, which cost the same whatever their
values, are made up for the preset's steps (evaluations as often as train() makes them).

A day: --owners sessions start --runs runs each, in turns. --writers processes record
them through RunStore's API (as the pool's workers do, each on its own connection), and
this process calls RunStore.prune() after every finished run, as the job manager does;
a thread samples the file and its write-ahead log every few milliseconds.

    normal use   every run is a preset picked at random
    the trick    --tricksters of the sessions run the trick every time, the rest presets

Printed: what one run of each preset takes on disk, a normal day's total without pruning,
and for each day the store's size at the end and its largest size and WAL during the day.
Targets: file + WAL under the budget (RNNLAB_DISK_BUDGET_MB, 1024 MB), WAL <= 64 MB.
Sizes are in MB of 2**20 bytes. `--day trick --tricksters 30 --runs 12` is a room where
everyone does the trick: there the budget itself, not each session's share, is the bound.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import tempfile
import threading
import time
from pathlib import Path

from rnnlab.config import RunConfig
from rnnlab.events import Evaluation, Finished, Snapshot, Step, Weights
from rnnlab.presets import PRESETS
from rnnlab.store import RetentionPolicy, RunStore
from rnnlab.train import MIN_EVAL_GAP, train

MB = 2**20
TRICK = "30 MB trick"
TRICK_CONFIG = RunConfig(
    task="text", hidden_size=512, num_layers=4, seq_len=1, batch_size=1, steps=1
)

# name -> (config, its Snapshot event, its Weights event's bytes); filled before forking.
TEMPLATES: dict[str, tuple[RunConfig, Snapshot, bytes]] = {}


def learn_templates() -> None:
    """Train each preset's network and the trick for one step, for their true events."""
    configs = {name: preset.config() for name, preset in PRESETS.items()}
    configs[TRICK] = TRICK_CONFIG
    for name, config in configs.items():
        started = time.perf_counter()
        events = list(train(config.replace(steps=1)))
        snapshot = [e for e in events if isinstance(e, Snapshot)][-1]
        weights = [e for e in events if isinstance(e, Weights)][-1].data
        TEMPLATES[name] = (config, snapshot, weights)
        print(
            f"  {name:40s} weights {len(weights) / 1024:9.0f} KB, snapshot "
            f"{len(snapshot.to_json()) / 1024:5.0f} KB, {config.steps:5d} steps "
            f"({time.perf_counter() - started:.1f} s to train one)",
            flush=True,
        )


def record(store: RunStore, owner: str, name: str) -> str:
    """One finished run of template `name`, as a worker records it."""
    config, snapshot, weights = TEMPLATES[name]
    run_id = store.create_run(config, owner=owner, status="running")
    every = config.eval_every or max(MIN_EVAL_GAP, config.steps // 100)
    for step in range(1, config.steps + 1):
        store.add(run_id, Step(step, 1.0 / step, 0.5, step / 100))
        if step % every == 0 or step == config.steps:
            store.add(run_id, Evaluation(step, 1.0 / step, 0.5, False, step / 100))
    store.add(run_id, snapshot)
    store.add(run_id, Weights(config.steps, weights))
    store.add(run_id, Finished(summary={"status": "completed", "steps": config.steps}))
    return run_id


def writer(path: str, jobs: list[tuple[str, str]], finished) -> None:
    """A worker process: records its jobs, says when each has finished."""
    with RunStore(path) as store:
        for owner, name in jobs:
            finished.put(record(store, owner, name))
    finished.put(None)


class Sampler(threading.Thread):
    """The largest file, WAL and file + WAL seen, sampled every few milliseconds."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path, self.wal = path, path.with_name(path.name + "-wal")
        self.max_file = self.max_wal = self.max_total = 0
        self.stopping = threading.Event()

    def sample(self) -> None:
        sizes = []
        for file in (self.path, self.wal):
            try:
                sizes.append(os.stat(file).st_size)
            except OSError:
                sizes.append(0)
        self.max_file = max(self.max_file, sizes[0])
        self.max_wal = max(self.max_wal, sizes[1])
        self.max_total = max(self.max_total, sum(sizes))

    def run(self) -> None:
        while not self.stopping.wait(0.005):
            self.sample()


def day(
    label: str, directory: Path, owners: int, runs: int, tricksters: int, writers: int, seed: int
) -> None:
    """One simulated day in a fresh store; prints its sizes and what pruning did."""
    rng = random.Random(seed)
    presets = list(PRESETS)
    jobs = [
        (f"owner{o:02d}", TRICK if o < tricksters else rng.choice(presets))
        for _ in range(runs)
        for o in range(owners)
    ]
    path = directory / f"{label.replace(' ', '-')}.sqlite"
    RunStore(path).close()
    policy = RetentionPolicy.from_environment()
    sampler = Sampler(path)
    sampler.start()
    context = multiprocessing.get_context("fork")
    finished = context.Queue()
    processes = [
        context.Process(target=writer, args=(str(path), jobs[w::writers], finished))
        for w in range(writers)
    ]
    started = time.perf_counter()
    for process in processes:
        process.start()
    prunes, prune_seconds, dropped, finished_ids = 0, [], set(), []
    written = sum(len(TEMPLATES[name][2]) for _, name in jobs)
    with RunStore(path) as store:
        done = 0
        while done < len(processes):
            run_id = finished.get()
            if run_id is None:
                done += 1
                continue
            finished_ids.append(run_id)
            report = store.prune(policy)  # as the job manager does after each finished run
            prunes += 1
            prune_seconds.append(report.seconds)
            dropped.update(report.weights_dropped)
        for process in processes:
            process.join()
        sampler.sample()
        wall = time.perf_counter() - started
        usage = store.disk_usage()
        # Weights neither kept nor dropped by a prune were never written: the backstop.
        never = sum(
            store.weights_size(run_id) is None and run_id not in dropped for run_id in finished_ids
        )
        newest = kept = 0
        for o in range(tricksters, owners):
            for run in store.list_runs(owner=f"owner{o:02d}", limit=policy.weights_per_owner):
                newest += 1
                kept += store.weights_size(run.id) is not None
    sampler.stopping.set()
    prune_seconds.sort()
    print(
        f"{label}: {len(jobs)} runs of {owners} sessions ({tricksters} doing the trick) in "
        f"{wall:.0f} s; {written / MB:.0f} MB of weights to keep\n"
        f"  weights dropped by prune: {len(dropped)} runs'; not written, the store at its "
        f"budget: {never} runs'\n"
        f"  end of day: file {usage.file_bytes / MB:.1f} MB + WAL {usage.wal_bytes / MB:.1f} MB"
        f" (in use {usage.used_bytes / MB:.1f} MB)\n"
        f"  largest during the day: file + WAL {sampler.max_total / MB:.1f} MB, file "
        f"{sampler.max_file / MB:.1f} MB, WAL {sampler.max_wal / MB:.1f} MB; budget "
        f"{policy.budget_bytes / MB:.0f} MB -> "
        f"{'OK' if sampler.max_total <= policy.budget_bytes else 'OVER'}, WAL <= 64 MB -> "
        f"{'OK' if sampler.max_wal <= 64 * MB else 'OVER'}\n"
        f"  prune: {prunes} calls, median {prune_seconds[len(prune_seconds) // 2] * 1e3:.1f} ms,"
        f" max {prune_seconds[-1]:.2f} s; the other sessions' newest "
        f"{policy.weights_per_owner} runs that kept their weights: {kept}/{newest}",
        flush=True,
    )


def run_costs(directory: Path) -> dict[str, int]:
    """Bytes one finished run of each template adds to the store's file, unpruned."""
    costs = {}
    with RunStore(directory / "costs.sqlite") as store:
        for name in TEMPLATES:
            store.checkpoint()
            before = store.disk_usage().used_bytes
            for _ in range(3):
                record(store, "costs", name)
            costs[name] = (store.disk_usage().used_bytes - before) // 3
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=30, help="sessions in the day")
    parser.add_argument("--runs", type=int, default=50, help="runs each session starts")
    parser.add_argument("--tricksters", type=int, default=5, help="sessions doing the trick")
    parser.add_argument("--writers", type=int, default=3, help="recording processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--day", choices=("both", "normal", "trick"), default="both")
    args = parser.parse_args()

    print("events of true sizes (one training step of each):")
    learn_templates()
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as folder:
        directory = Path(folder)
        costs = run_costs(directory)
        print("\nwhat one finished run takes on disk, unpruned:")
        for name, size in costs.items():
            print(f"  {name:40s} {size / 1024:9.0f} KB")
        normal = [size for name, size in costs.items() if name != TRICK]
        day_runs = args.owners * args.runs
        print(
            f"a normal day of {day_runs} runs, presets at random, unpruned: about "
            f"{day_runs * sum(normal) / len(normal) / MB:.0f} MB\n"
        )
        if args.day in ("both", "normal"):
            day("normal use", directory, args.owners, args.runs, 0, args.writers, args.seed)
        if args.day in ("both", "trick"):
            tricksters = args.tricksters
            day("the trick", directory, args.owners, args.runs, tricksters, args.writers, args.seed)


if __name__ == "__main__":
    main()
