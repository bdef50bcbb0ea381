"""One session races forty seeds while twenty-nine others press Train: does the room
still get its runs, and how much of the processor does the race take?

    python bench/bench_fairness.py                 # 40-seed race + 29 sessions
    python bench/bench_fairness.py --race-seeds 40 --sessions 29 --window-s 15

The job manager and its worker processes as the app's (rnnlab.jobs, the workers this
machine's memory and processors allow), driven directly: the race goes through the
Race page's executor (rnnlab.sweep.LocalExecutor), each session submits one run as the
Train button does. Reported: each session's submit -> first step (what the page's first
point waits for), and over a window in which every session's run trains, the processor
seconds the workers gave each owner (rnnlab.worker measures every slice); a fair share
is 1/(sessions + 1) each, the target for the race is at most 2/30.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlab.config import RunConfig  # noqa: E402
from rnnlab.jobs import JobManager  # noqa: E402
from rnnlab.store import RunStore  # noqa: E402
from rnnlab.sweep import LocalExecutor  # noqa: E402

RACE = RunConfig(task="adding", hidden_size=64, seq_len=100, batch_size=64, steps=20_000)
TRAIN = {
    "hello": RunConfig(steps=200_000),
    "adding": RunConfig(task="adding", hidden_size=64, seq_len=100, batch_size=64, steps=20_000),
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--race-seeds", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=29, help="sessions pressing Train")
    parser.add_argument("--window-s", type=float, default=15.0, help="seconds of CPU measured")
    args = parser.parse_args()
    print(f"load at start: {uptime()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-fairness-") as home:
        manager = JobManager(store=RunStore(Path(home) / "runs.sqlite"))
        try:
            return measure(manager, args)
        finally:
            manager.shutdown(timeout=30)


def measure(manager: JobManager, args) -> int:
    while manager.pool.calibration.measured is False or len(manager.worker_pids()) < 1:
        time.sleep(0.1)
    print(
        f"{manager.workers} workers, {manager.max_running} runs at most, "
        f"{manager.admission.max_running_per_owner} per owner; {manager.resources.describe()}"
    )
    configs = [RACE.replace(seed=seed) for seed in range(args.race_seeds)]
    executor = LocalExecutor(manager)
    racing = threading.Thread(
        target=lambda: list(executor.run(configs, sweep_id="race", owner="race")), daemon=True
    )
    racing.start()
    time.sleep(3.0)  # the race holds what it can before anyone else arrives
    race_running = sum(p.status == "running" for p in manager.queue() if p.owner == "race")
    first_point: dict[str, float] = {}
    runs: dict[str, str] = {}
    submitted_at: dict[str, float] = {}
    for number in range(args.sessions):
        owner = f"session-{number:02d}"
        config = TRAIN["hello" if number % 2 == 0 else "adding"]
        submitted_at[owner] = time.monotonic()
        runs[owner] = manager.submit(config.replace(seed=number), owner=owner)
        time.sleep(1.0 / args.sessions)
    deadline = time.monotonic() + 60
    while len(first_point) < len(runs) and time.monotonic() < deadline:
        for owner, run_id in runs.items():
            progress = manager.progress(run_id)
            if owner not in first_point and progress is not None and progress.step >= 1:
                first_point[owner] = time.monotonic() - submitted_at[owner]
        time.sleep(0.01)
    waits = sorted(first_point.values())
    missing = len(runs) - len(first_point)
    print(
        f"race: {race_running} runs training before the room arrived; "
        f"room: {len(runs)} sessions, first step median {statistics.median(waits):.2f} s, "
        f"worst {waits[-1]:.2f} s, within 3 s: {sum(w <= 3 for w in waits)}/{len(runs)}"
        + (f", NO first step: {missing}" if missing else "")
    )
    before = dict(manager.cpu_seconds)
    time.sleep(args.window_s)
    after = dict(manager.cpu_seconds)
    still = sum(manager.progress(r).status == "running" for r in runs.values())
    spent = {owner: after.get(owner, 0.0) - before.get(owner, 0.0) for owner in after}
    total = sum(spent.values())
    race = spent.get("race", 0.0) / total
    shares = sorted(v / total for o, v in spent.items() if o != "race")
    print(
        f"window {args.window_s:.0f} s ({still}/{len(runs)} sessions' runs training): workers "
        f"gave {total:.1f} processor-seconds; the race {race:.3f} of them "
        f"(target <= {2 / 30:.3f}; a fair share is {1 / (len(runs) + 1):.3f}); each "
        f"session median {statistics.median(shares):.3f}, least {shares[0]:.3f}, "
        f"most {shares[-1]:.3f}"
    )
    print(f"load at end: {uptime()}")
    executor.cancel()
    for run_id in runs.values():
        manager.cancel(run_id)
    ok = not missing and waits[-1] <= 3.0 and race <= 2 / 30
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("RNNLAB_ORPHAN_AFTER_S", "600")
    sys.exit(main())
