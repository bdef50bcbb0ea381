"""What recording runs costs, and what a second worker buys.

    python bench/bench_store.py                 # both parts (a few minutes on 2 cores)
    python bench/bench_store.py --part store    # only the store overhead
    python bench/bench_store.py --part pool --processes   # also a process pool, for contrast

Store overhead: the adding problem, T = 100, LSTM hidden 64, batch 64. Two identical
train() runs advance in turn, step by step, in one process (one torch thread, for
steadiness): one's events are only consumed, the other's are all written to a RunStore
(flushes, snapshots and the final write included), so background load hits both alike.
Printed: the ratio of their seconds per step (median over rounds) and the time spent
inside store.add() per step. Target: ≤ 1.02.

Pool throughput: the same runs through a JobManager (worker processes that record to
the store) with 1 and with 2 workers (torch threads split between them); steps per
second over all jobs, and the speed-up. With --processes, also a bare process pool that
records nothing, for contrast.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from rnnlab import JobManager, RunConfig, RunStore, run, train
from rnnlab.train import Event

CONFIG = RunConfig(task="adding", cell="lstm", hidden_size=64, batch_size=64, seq_len=100)


def next_step(events: Iterator[Event], record: Callable[[Event], None] | None) -> float:
    """Seconds until train() yields its next Step, recording every event on the way."""
    start = time.perf_counter()
    for event in events:
        if record is not None:
            record(event)
        if event.kind == "step":
            break
    return time.perf_counter() - start


def store_round(config: RunConfig, store: RunStore) -> tuple[float, float, float]:
    """Two identical runs advanced step by step in turn, one recorded; their seconds per step
    and the time spent in store.add per step."""
    run_id = store.create_run(config, status="running")
    in_store = 0.0

    def record(event: Event) -> None:
        nonlocal in_store
        before = time.perf_counter()
        store.add(run_id, event)
        in_store += time.perf_counter() - before

    bare_events, stored_events = train(config), train(config)
    bare = stored = 0.0
    for step in range(config.steps):
        if step % 2:
            bare += next_step(bare_events, None)
            stored += next_step(stored_events, record)
        else:
            stored += next_step(stored_events, record)
            bare += next_step(bare_events, None)
    start = time.perf_counter()
    for event in stored_events:  # the last evaluation, snapshot and Finished (final flush)
        record(event)
    stored += time.perf_counter() - start
    start = time.perf_counter()
    for _ in bare_events:
        pass
    bare += time.perf_counter() - start
    return bare / config.steps, stored / config.steps, in_store / config.steps


def store_overhead(steps: int, rounds: int, home: Path) -> None:
    config = CONFIG.replace(steps=steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two runs share the process; spinning thread pools add noise
    results = []
    with RunStore(home / "runs.sqlite") as store:
        store_round(config.replace(steps=3), store)  # warm-up
        for i in range(rounds):
            results.append(store_round(config.replace(seed=i), store))
            bare, stored, add = results[-1]
            print(
                f"  round {i + 1}: bare {bare * 1e3:.2f} ms/step, with store "
                f"{stored * 1e3:.2f} ms/step ({stored / bare:.3f}), store.add {add * 1e6:.1f} µs",
                flush=True,
            )
    torch.set_num_threads(threads)
    ratio = statistics.median(stored / bare for bare, stored, _ in results)
    step = statistics.median(bare for bare, _, _ in results)
    add = statistics.median(add for _, _, add in results)
    print(
        f"store overhead, adding T=100 LSTM h=64 b=64, {steps} steps x {rounds} rounds:\n"
        f"  with store / bare, steps interleaved (median of rounds): {ratio:.3f}  "
        "(target <= 1.02)\n"
        f"  time inside store.add per step: {add * 1e6:.1f} µs = "
        f"{100 * add / step:.2f} % of a {step * 1e3:.2f} ms step"
    )


def pool_throughput(jobs: int, steps: int, home: Path, processes: bool) -> None:
    config = CONFIG.replace(steps=steps)
    threads, cores = torch.get_num_threads(), os.cpu_count() or 1
    rates = {}
    # (workers, torch threads per worker): the pool's defaults, and one worker on one thread
    # to tell the second worker's gain from the thread count's.
    for workers, torch_threads in ((1, cores), (1, 1), (2, max(1, cores // 2))):
        with RunStore(home / f"pool{workers}x{torch_threads}.sqlite") as store:
            manager = JobManager(
                workers=workers,
                store=store,
                max_queued_per_owner=None,
                torch_threads=torch_threads,
            )
            manager.wait(manager.submit(config.replace(steps=5), owner="bench"))  # warm-up
            start = time.perf_counter()
            run_ids = [manager.submit(config.replace(seed=i), owner="bench") for i in range(jobs)]
            statuses = [manager.wait(run_id).status for run_id in run_ids]
            wall = time.perf_counter() - start
            manager.shutdown()
        assert statuses == ["completed"] * jobs, statuses
        rates[workers, torch_threads] = jobs * steps / wall
        print(
            f"  {workers} worker(s), {torch_threads} torch thread(s) each: "
            f"{jobs} jobs in {wall:.1f} s, {rates[workers, torch_threads]:.1f} steps/s",
            flush=True,
        )
    torch.set_num_threads(threads)
    two = rates[2, max(1, cores // 2)]
    print(
        f"pool throughput, 2 workers / 1 worker: {two / rates[1, cores]:.2f}x "
        f"(against one worker on one thread: {two / rates[1, 1]:.2f}x)"
    )
    if processes:
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
            f"the job manager's pool reaches {two / rate:.2f} of it"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("store", "pool", "both"), default="both")
    parser.add_argument("--steps", type=int, default=300, help="steps per store round")
    parser.add_argument("--rounds", type=int, default=5, help="store rounds")
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
