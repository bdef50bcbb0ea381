"""Sweep throughput on this machine: the local worker pool against a local Ray runtime.

    python bench/bench_sweep.py              # one 16-run sweep on each, after a warm-up
    python bench/bench_sweep.py --rounds 3   # steadier numbers (under a minute a round)

The sweep: the adding problem, T = 20, LSTM, batch 32, 300 steps, hidden 8/16/24/32
times four seeds, recorded in one run store. Both executors get every core (the pool one
worker per core, Ray one CPU per core) and are started, and warmed up with a sweep of
one short run per core, before they are timed; the sweeps then alternate, so background
load hits both alike. Printed: runs per second of each (median over rounds), their
ratio (Ray ÷ pool), whether the same seeds gave the same final losses, what starting
each cost (Ray: the runtime, then the warm-up in fresh actors), and the load average
before and after. Both run the same worker loop, interleaving a sweep's runs (up to 16
per worker): the pool in local processes, Ray in one actor per CPU; across machines, Ray
adds CPUs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from rnnlab import JobManager, LocalExecutor, RunConfig, RunStore
from rnnlab.cluster import import_ray
from rnnlab.sweep import Executor, Grid, RayExecutor, run_sweep

BASE = RunConfig(task="adding", cell="lstm", batch_size=32, seq_len=20, steps=300)
GRID = Grid(BASE, {"hidden_size": [8, 16, 24, 32]}, seeds=[0, 1, 2, 3])
CORES = os.cpu_count() or 1
WARM_UP = Grid(BASE.replace(steps=5), {}, seeds=range(CORES))  # a run for every worker


def load() -> str:
    """The load average, as `uptime` prints it (others may share the machine)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def timed_sweep(grid: Grid, executor: Executor) -> tuple[float, dict[RunConfig, float]]:
    """Seconds the sweep took, and each run's final held-out loss."""
    start = time.perf_counter()
    sweep = run_sweep(grid, executor=executor, owner="bench")
    seconds = time.perf_counter() - start
    failed = [r for r in sweep.results if r.status != "completed"]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not complete: {failed[0].error}")
    return seconds, {r.config: r.summary["final_loss"] for r in sweep.results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    cores = CORES
    runs = len(GRID.configs())
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory() as home, RunStore(f"{home}/runs.sqlite") as store:
        start = time.perf_counter()
        manager = JobManager(
            workers=cores, store=store, max_queued_per_owner=None, orphan_after_s=None
        )
        local = LocalExecutor(manager)
        timed_sweep(WARM_UP, local)
        local_start = time.perf_counter() - start

        import_ray()  # not part of the start-up: the pool's side has imported its modules
        start = time.perf_counter()
        ray_executor = RayExecutor(num_cpus=cores, store=store)
        ray_executor.connect()
        ray_init = time.perf_counter() - start
        first_ray, _ = timed_sweep(WARM_UP, ray_executor)
        ray_start = time.perf_counter() - start

        seconds: dict[str, list[float]] = {"pool": [], "ray": []}
        losses = {}
        try:
            for _ in range(args.rounds):
                for name, executor in (("pool", local), ("ray", ray_executor)):
                    wall, losses[name] = timed_sweep(GRID, executor)
                    seconds[name].append(wall)
                    print(f"  {name:4s} {runs} runs in {wall:6.1f} s")
        finally:
            manager.shutdown(timeout=30)
            ray_executor.close()
    rate = {name: runs / statistics.median(values) for name, values in seconds.items()}
    same = "yes" if losses["pool"] == losses["ray"] else "NO"
    print(f"{runs}-run sweep (adding T=20, LSTM, 300 steps), {cores} cores, ", end="")
    print(f"median of {args.rounds}:")
    print(f"  local pool ({cores} workers)   {rate['pool']:6.3f} runs/s")
    print(f"  local Ray ({cores} CPUs)       {rate['ray']:6.3f} runs/s")
    print(f"throughput: Ray / local pool = {rate['ray'] / rate['pool']:.2f}")
    print(f"same seeds, same final losses: {same}")
    print(f"start-up, to the end of the warm-up sweep: local pool {local_start:.1f} s;")
    print(f"  Ray {ray_start:.1f} s (the runtime {ray_init:.1f} s, the sweep {first_ray:.1f} s)")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
