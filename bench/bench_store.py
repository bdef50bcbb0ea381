"""What recording runs costs, and what a second worker buys.

    python bench/bench_store.py                 # both parts (a few minutes on 2 cores)
    python bench/bench_store.py --part store    # only the store overhead
    python bench/bench_store.py --part pool --processes   # also a process pool, for contrast

Store overhead: the adding problem, T = 100, LSTM hidden 64, batch 64. Blocks of train()
alternate between consuming the events bare and writing every event to a RunStore, in
one process, so background load hits both alike; the ratio of median seconds per step is
printed, next to the time spent inside store.add() per step. Target: ≤ 1.02.

Pool throughput: the same runs through a JobManager with 1 and with 2 workers (torch
threads split between them); steps per second over all jobs, and the speed-up. With
--processes, also a pool of processes, to see whether threads lose to the GIL.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rnnlab import JobManager, RunConfig, RunStore, run, train

CONFIG = RunConfig(task="adding", cell="lstm", hidden_size=64, batch_size=64, seq_len=100)


def bare_block(config: RunConfig) -> float:
    """Seconds per step of train() with nothing done with its events."""
    first = None
    for event in train(config):
        if first is None and event.kind == "step":
            first = time.perf_counter()
    return (time.perf_counter() - first) / (config.steps - 1)


def stored_block(config: RunConfig, store: RunStore) -> tuple[float, float]:
    """Seconds per step of train() writing every event to the store, and of store.add alone."""
    run_id = store.create_run(config, status="running")
    first, in_store = None, 0.0
    for event in train(config):
        if first is None and event.kind == "step":
            first = time.perf_counter()
        before = time.perf_counter()
        store.add(run_id, event)
        in_store += time.perf_counter() - before
    return (time.perf_counter() - first) / (config.steps - 1), in_store / config.steps


def store_overhead(steps: int, rounds: int, home: Path) -> None:
    config = CONFIG.replace(steps=steps)
    bare_block(config.replace(steps=5))  # warm-up
    bare, stored, adds = [], [], []
    with RunStore(home / "runs.sqlite") as store:
        for i in range(rounds):
            if i % 2:
                bare.append(bare_block(config))
                seconds, add = stored_block(config, store)
            else:
                seconds, add = stored_block(config, store)
                bare.append(bare_block(config))
            stored.append(seconds)
            adds.append(add)
            print(
                f"  round {i + 1}: bare {bare[-1] * 1e3:.2f} ms/step, "
                f"with store {stored[-1] * 1e3:.2f} ms/step, store.add {add * 1e6:.1f} µs/step",
                flush=True,
            )
    step, with_store, add = map(statistics.median, (bare, stored, adds))
    print(
        f"store overhead, adding T=100 LSTM h=64 b=64, {steps} steps x {rounds} rounds:\n"
        f"  ratio with store / bare (median s/step): {with_store / step:.3f}  (target <= 1.02)\n"
        f"  time inside store.add per step: {add * 1e6:.1f} µs = "
        f"{100 * add / step:.2f} % of a {step * 1e3:.2f} ms step"
    )


def pool_throughput(jobs: int, steps: int, home: Path, processes: bool) -> None:
    config = CONFIG.replace(steps=steps)
    threads = torch.get_num_threads()
    rates = {}
    for workers in (1, 2):
        with RunStore(home / f"pool{workers}.sqlite") as store:
            manager = JobManager(workers=workers, store=store, max_queued_per_owner=None)
            manager.wait(manager.submit(config.replace(steps=5), owner="bench"))  # warm-up
            start = time.perf_counter()
            run_ids = [manager.submit(config.replace(seed=i), owner="bench") for i in range(jobs)]
            statuses = [manager.wait(run_id).status for run_id in run_ids]
            wall = time.perf_counter() - start
            manager.shutdown()
        assert statuses == ["completed"] * jobs, statuses
        rates[workers] = jobs * steps / wall
        print(
            f"  {workers} worker(s), {manager.torch_threads} torch thread(s) each: "
            f"{jobs} jobs in {wall:.1f} s, {rates[workers]:.1f} steps/s",
            flush=True,
        )
    torch.set_num_threads(threads)
    print(f"pool throughput, 2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
    if processes:
        cores = os.cpu_count() or 1
        with concurrent.futures.ProcessPoolExecutor(
            2, initializer=torch.set_num_threads, initargs=(max(1, cores // 2),)
        ) as pool:
            list(pool.map(run, [config.replace(steps=5)] * 2))  # start and warm both
            start = time.perf_counter()
            list(pool.map(run, [config.replace(seed=i) for i in range(jobs)]))
            wall = time.perf_counter() - start
        rate = jobs * steps / wall
        print(
            f"  2 processes (no store): {jobs} jobs in {wall:.1f} s, {rate:.1f} steps/s; "
            f"threads reach {rates[2] / rate:.2f} of it"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("store", "pool", "both"), default="both")
    parser.add_argument("--steps", type=int, default=150, help="steps per store block")
    parser.add_argument("--rounds", type=int, default=6, help="store blocks of each kind")
    parser.add_argument("--jobs", type=int, default=6, help="jobs per pool measurement")
    parser.add_argument("--job-steps", type=int, default=60, help="steps per pool job")
    parser.add_argument("--processes", action="store_true", help="also time a process pool")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["RNNLAB_HOME"] = home
        if args.part in ("store", "both"):
            store_overhead(args.steps, args.rounds, Path(home))
        if args.part in ("pool", "both"):
            pool_throughput(args.jobs, args.job_steps, Path(home), args.processes)


if __name__ == "__main__":
    main()
