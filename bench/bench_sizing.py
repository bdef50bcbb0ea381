"""How well the admission estimates (rnnlab.jobs.sizing) predict real steps and memory.

    python bench/bench_sizing.py                  # 16 random configs near the 1 s limit
    python bench/bench_sizing.py --configs 30 --seed 3

Calibrates this machine as the fork server does (rnnlab.worker.calibrate), then draws
random configs whose estimated step lies between 0.25 s and the limit (the ones where
an error matters), and trains each for a few steps in a fresh process with one torch
thread: the fastest step after the first against the estimate, and the process's peak
resident memory beyond a warm process's against the memory estimate. A ratio above 1
means the estimate was low. Run it on a quiet machine (the load is printed).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlab.config import ConfigError, RunConfig  # noqa: E402
from rnnlab.jobs import sizing  # noqa: E402

# Trains a config for a few steps and prints its fastest step and peak memory growth.
CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from rnnlab.config import RunConfig
from rnnlab.train import train
from rnnlab.worker import warm_up
warm_up()
warm = RunConfig(task="adding", hidden_size=8, seq_len=10, batch_size=4, steps=3)
for _ in train(warm, snapshot_every_s=None):
    pass
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times, last = [], None
for event in train(RunConfig(**json.loads(sys.argv[1])), snapshot_every_s=float("inf")):
    if event.kind == "step":
        now = time.perf_counter()
        if last is not None:
            times.append(now - last)
        last = now
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"step_s": min(times), "memory_bytes": (peak - base) * 1024}))
"""


def draw(rng: random.Random, calibration: sizing.Calibration) -> RunConfig | None:
    try:
        config = RunConfig(
            task=rng.choice(["adding", "copy", "text"]),
            cell=rng.choice(["rnn", "lstm", "gru"]),
            hidden_size=int(2 ** rng.uniform(4, 9)),
            num_layers=rng.randint(1, 4),
            batch_size=int(2 ** rng.uniform(0, 9)),
            seq_len=int(2 ** rng.uniform(1, 9)),
            steps=4,
        )
    except ConfigError:
        return None
    step_s = sizing.estimate(config, calibration).step_s
    return config if 0.25 <= step_s <= sizing.MAX_STEP_S else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load: {load}", flush=True)
    import torch

    from rnnlab.worker import calibrate

    torch.set_num_threads(1)
    calibration = calibrate()
    print(f"calibration: {calibration}", flush=True)
    rng = random.Random(args.seed)
    time_ratios, memory_ratios = [], []
    while len(time_ratios) < args.configs:
        config = draw(rng, calibration)
        if config is None:
            continue
        guess = sizing.estimate(config, calibration)
        measured = json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(config.to_dict())],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=True,
            ).stdout
        )
        time_ratios.append(measured["step_s"] / guess.step_s)
        memory_ratios.append(measured["memory_bytes"] / guess.memory_bytes)
        print(
            f"{config.task:6} {config.cell:4} h={config.hidden_size:3} L={config.num_layers} "
            f"B={config.batch_size:3} T={config.time_steps():3}: step {measured['step_s']:.2f} s "
            f"(estimated {guess.step_s:.2f}), memory {measured['memory_bytes'] / 2**20:.0f} MiB "
            f"(estimated {guess.memory_bytes / 2**20:.0f})",
            flush=True,
        )
    print(
        f"step time measured / estimated over {len(time_ratios)} configs: median "
        f"{statistics.median(time_ratios):.2f}, max {max(time_ratios):.2f}; memory: median "
        f"{statistics.median(memory_ratios):.2f}, max {max(memory_ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
