"""What live snapshots cost a training run, in one process.

    python bench/bench_snapshots.py              # about a minute on two cores
    python bench/bench_snapshots.py --rounds 9   # steadier numbers

Adding problem, T = 100, LSTM hidden 64, batch 64. Whole train() runs with the default
snapshot cadence (every 0.5 s and at the end) alternate with runs without snapshots,
in alternating order, so background load hits both alike; the ratio of median wall
times is the overhead. Target: ≤ 1.10. On a shared machine other people's load moves
wall times a lot, so the ratio of the fastest runs of each kind (the least disturbed)
and of median process CPU times are printed too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from rnnlab import RunConfig, train


def timed_run(config: RunConfig, snapshot_every_s: float | None) -> tuple[float, float, list]:
    """Wall and process CPU seconds of one whole run, and its snapshot events."""
    start, start_cpu = time.perf_counter(), time.process_time()
    events = list(train(config, snapshot_every_s=snapshot_every_s))
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return wall, cpu, [event for event in events if event.kind == "snapshot"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--every", type=float, default=0.5, help="snapshot cadence, s")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = RunConfig(
        task="adding", cell="lstm", hidden_size=64, batch_size=64, seq_len=100,
        steps=args.steps, lr=3e-3, clip=1.0,
    )  # fmt: skip
    timed_run(config.replace(steps=5), args.every)  # warm-up: imports, first allocations
    walls, cpus, counts = {None: [], args.every: []}, {None: [], args.every: []}, []
    for round_ in range(args.rounds):
        order = [None, args.every] if round_ % 2 == 0 else [args.every, None]
        for every in order:
            wall, cpu, taken = timed_run(config, every)
            walls[every].append(wall)
            cpus[every].append(cpu)
            if every is not None:
                counts.append(len(taken))
                last = taken[-1]
        print(
            f"round {round_ + 1}: without {walls[None][-1]:.2f} s, "
            f"with {walls[args.every][-1]:.2f} s ({counts[-1]} snapshots)"
        )
    plain, snapped = walls[None], walls[args.every]

    size = len(json.dumps(last.to_dict(), allow_nan=False))
    ratio = statistics.median(snapped) / statistics.median(plain)
    print(
        f"adding T=100, LSTM hidden 64, batch 64, {args.steps} steps, "
        f"{torch.get_num_threads()} threads; snapshot every {args.every} s + at the end"
    )
    print(f"median wall without snapshots: {statistics.median(plain):.3f} s")
    print(f"median wall with snapshots:    {statistics.median(snapped):.3f} s")
    print(f"snapshots per run: {statistics.median(counts):.0f}, JSON size {size / 1024:.0f} KiB")
    cpu_ratio = statistics.median(cpus[args.every]) / statistics.median(cpus[None])
    print(f"fastest-run ratio: {min(snapped) / min(plain):.3f}")
    print(f"CPU-time ratio: {cpu_ratio:.3f}")
    print(f"overhead ratio: {ratio:.3f} (wall time; target <= 1.10)")


if __name__ == "__main__":
    main()
