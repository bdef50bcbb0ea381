"""What live snapshots cost: one snapshot against one training step, and a full room.

    python bench/bench_snapshots.py                 # about two minutes on two cores
    python bench/bench_snapshots.py --room-s 60     # steadier room figures

Part 1, adding task, hidden 64, batch 64, probe batch 8, one thread: the median time of
a training step, of a snapshot of gates only and of one with gradients through time,
and of what the worker adds to send one (the event's JSON and each layer's view), for
RNN, LSTM and GRU at T = 10, 50, 100, 200; ratios are to one training step.

Part 1b, what the inputs' influence and the PCA trajectories add, for the presets:
a gates-only snapshot with and without trajectories, one with gradients with and
without influence and trajectories, and a run's snapshots as SnapshotSchedule takes
them (one a second, gradients every 5 s, influence when its cadence allows) in all,
with and without both (target: at most 10 % more); --skip-insight leaves it out.

Part 2, a full room: 16 adding runs (T = 100, LSTM hidden 64) interleaved on one
rnnlab.worker.Worker in this process, with snapshots every --every s and without;
prints the steps/s of both (target ratio >= 0.95) and the snapshots each run sent per
second (target about one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time

import torch

from rnnlab import RunConfig, build_model, make_task
from rnnlab.events import layer_view
from rnnlab.presets import PRESETS
from rnnlab.probe import SnapshotSchedule, snapshot
from rnnlab.train import Snapshot
from rnnlab.worker import Worker


def median_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def costs(cell: str, T: int, repeats: int) -> None:
    config = RunConfig(task="adding", cell=cell, hidden_size=64, batch_size=64, seq_len=T)
    task = make_task(config)
    model = build_model(config, task)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)

    def training_step() -> None:
        x, y = task.sample(config.batch_size, generator)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    schedule = SnapshotSchedule(task, "cpu", 1.0)

    def sent(final: bool) -> None:
        fields = schedule.take(model, 1, final=final)
        event = Snapshot(step=1, elapsed_s=0.0, **fields)
        event.to_json()
        snapshot = event.to_dict()
        for layer in range(len(event.layers)):
            json.dumps(layer_view(snapshot, layer)).encode()

    step = median_ms(training_step, repeats)
    gates = median_ms(lambda: schedule.take(model, 1), repeats)
    gradients = median_ms(lambda: schedule.take(model, 1, final=True), repeats)
    whole = median_ms(lambda: sent(False), repeats)
    print(
        f"{cell:<5}T={T:<4} step {step:6.2f} ms | gates {gates:5.2f} ms ({gates / step:4.2f}) "
        f"| with gradients {gradients:5.2f} ms ({gradients / step:4.2f}) "
        f"| gates + sending {whole:5.2f} ms ({whole / step:4.2f})"
    )


def schedule_cpu(model, task, extras: bool, snapshots: int) -> float:
    """Processor seconds of `snapshots` snapshots as a run takes them: one every second
    of the run's (simulated) time, gradients every 5 s, the rest by the schedule's rules."""
    clock = [0.0]
    schedule = SnapshotSchedule(
        task,
        "cpu",
        1.0,
        busy=lambda: clock[0],
        wall=lambda: clock[0],
        influence=extras,
        trajectories=extras,
    )
    start = time.process_time()
    for step in range(1, snapshots + 1):
        clock[0] += 1.0
        schedule.take(model, step, final=step == snapshots)
    return time.process_time() - start


def insight_costs(name: str, repeats: int, snapshots: int) -> tuple[float, float]:
    """Print what influence and trajectories add to one preset's snapshots; return the
    CPU of a run's snapshots without and with them."""
    config = PRESETS[name].config()
    task = make_task(config)
    model = build_model(config, task)
    x, y = SnapshotSchedule(task, "cpu", 1.0).x, SnapshotSchedule(task, "cpu", 1.0).y

    def timed(**options) -> float:
        return median_ms(lambda: snapshot(model, task, x, y, **options), repeats)

    gates = timed(gradients=False, trajectories=False)
    gates_paths = timed(gradients=False)
    gradients = timed(influence=False, trajectories=False)
    gradients_all = timed()
    plain = min(schedule_cpu(model, task, False, snapshots) for _ in range(2))
    extras = min(schedule_cpu(model, task, True, snapshots) for _ in range(2))
    print(
        f"{name[:30]:<30} {config.cell} h={config.hidden_size} T={config.time_steps()} "
        f"O={task.output_dim} | gates {gates:6.2f} ms, +paths {gates_paths:6.2f} "
        f"({gates_paths / gates:4.2f}) | gradients {gradients:6.2f} ms, +influence+paths "
        f"{gradients_all:6.2f} ({gradients_all / gradients:4.2f}) | a run's {snapshots} "
        f"snapshots {plain * 1e3:6.1f} ms, with both {extras * 1e3:6.1f} "
        f"({extras / plain:4.2f}, target <= 1.10)"
    )
    return plain, extras


class Collect:
    """A worker's connection that keeps what it is sent."""

    def __init__(self) -> None:
        self.updates = []

    def send(self, message) -> None:
        self.updates.append(message[1])


def room(runs: int, every: float | None, seconds: float) -> tuple[float, float]:
    """Steps/s of `runs` runs interleaved on one worker, and snapshots sent per run per s."""
    connection = Collect()
    worker = Worker(connection, store=None)
    config = RunConfig(
        task="adding", cell="lstm", hidden_size=64, batch_size=64, seq_len=100, steps=50_000
    )
    for index in range(runs):
        worker.handle(("start", f"run{index}", config.replace(seed=index).to_dict(), every))
    while any(not run.stepped for run in worker.runs.values()):
        worker.turn()
    warm = time.perf_counter() + 2.0  # past the first snapshots, with fresh gradients
    while time.perf_counter() < warm:
        worker.turn()
    connection.updates.clear()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        worker.turn()
    elapsed = time.perf_counter() - start
    for run in worker.runs.values():
        run.stop("bench over", "stopped")
    steps = sum(len(update.steps) for update in connection.updates)
    sent = sum(update.snapshot_json is not None for update in connection.updates)
    while worker.runs:
        worker.turn()
    return steps / elapsed, sent / runs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--every", type=float, default=0.8, help="snapshot cadence, s")
    parser.add_argument("--room-s", type=float, default=20.0, help="seconds per room run")
    parser.add_argument("--rounds", type=int, default=3, help="room runs of each kind")
    parser.add_argument("--skip-costs", action="store_true")
    parser.add_argument("--skip-insight", action="store_true")
    parser.add_argument("--skip-room", action="store_true")
    parser.add_argument("--snapshots", type=int, default=30, help="of a run, part 1b")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if not args.skip_costs:
        for cell in ("rnn", "lstm", "gru"):
            for T in (10, 50, 100, 200):
                costs(cell, T, args.repeats)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if not args.skip_insight:
        totals = [insight_costs(name, args.repeats, args.snapshots) for name in PRESETS]
        plain = sum(total for total, _ in totals)
        extras = sum(total for _, total in totals)
        print(
            f"influence + trajectories, every preset's run together: {extras / plain:.3f} "
            f"of the snapshots' cost without them (target <= 1.10)"
        )
        print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if args.skip_room:
        return
    plains, snappeds, rates = [], [], []
    for _ in range(args.rounds):  # alternating, so that background load hits both alike
        plains.append(room(args.runs, None, args.room_s)[0])
        snapped, per_run = room(args.runs, args.every, args.room_s)
        snappeds.append(snapped)
        rates.append(per_run)
    plain, snapped = statistics.median(plains), statistics.median(snappeds)
    print(
        f"room: {args.runs} runs (adding T=100, LSTM 64) on one worker, {args.rounds} rounds "
        f"of {args.room_s:.0f} s: {plain:.1f} steps/s without snapshots, {snapped:.1f} with "
        f"one every {args.every} s (medians; ratio {snapped / plain:.3f}, target >= 0.95); "
        f"{statistics.median(rates):.2f} snapshots/s per run"
    )
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
