"""Training speed of rnnlab against a plain hand-written PyTorch loop, in one process.

    python bench/bench_train.py            # step-time ratios (about a minute)
    python bench/bench_train.py --rounds 9 # steadier numbers

Adding problem, batch 64, T = 100, hidden 64, Adam 3e-3, clipping 1.0. Blocks of steps
alternate between the two loops, and medians over blocks are compared, so background
load on a shared machine hits both alike. Targets: fused LSTM ≤ 1.05x plain PyTorch;
the custom cells (sigmoid RNN, relu LSTM) ≤ 3x the fused LSTM step.

Then whole short runs, as `rnnlab train --steps 400` makes them (held-out evaluations
and snapshots at their default pace, every event recorded in a run store), against a
plain 400-step loop: the steps/s each reports. Target: rnnlab ≥ 0.9x plain PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from rnnlab import RunConfig, train
from rnnlab.recording import RecordedRun
from rnnlab.store import RunStore
from rnnlab.tasks import AddingTask

SHORT_RUN = dict(task="adding", hidden_size=64, batch_size=64, seq_len=100, lr=3e-3, clip=1.0)

# eval_every as in a 3000-step run (train() evaluates about 100 times per run)
BASE = dict(
    task="adding", hidden_size=64, batch_size=64, seq_len=100, lr=3e-3, clip=1.0, eval_every=30
)


def rnnlab_block(config: RunConfig) -> float:
    """Seconds per step of train() (no snapshots), from the first step event to the last."""
    first = last = None
    steps = 0
    for event in train(config, snapshot_every_s=None):
        if event.kind == "step":
            steps += 1
            if first is None:
                first = time.perf_counter()
            last = time.perf_counter()
        if event.kind == "finished" and event.summary["status"] != "completed":
            print(f"  note: {config.cell}/{config.activation} ended {event.summary['status']}")
    return (last - first) / max(1, steps - 1)


class PlainLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, 64, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def adding_batch(batch: int, T: int, generator: torch.Generator):
    values = torch.rand(batch, T, generator=generator)
    markers = torch.zeros(batch, T)
    rows = torch.arange(batch)
    markers[rows, torch.randint(0, T // 2, (batch,), generator=generator)] = 1.0
    markers[rows, torch.randint(T // 2, T, (batch,), generator=generator)] = 1.0
    return torch.stack([values, markers], -1), (values * markers).sum(1, keepdim=True)


def plain_training(seed: int) -> tuple[PlainLSTM, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(seed)
    model = PlainLSTM()
    return model, torch.optim.Adam(model.parameters(), lr=3e-3), torch.Generator().manual_seed(seed)


def plain_step(model: PlainLSTM, optimizer: torch.optim.Optimizer, generator) -> None:
    """One step of the same training written directly in PyTorch."""
    x, y = adding_batch(64, 100, generator)
    loss = nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss.item()


def plain_block(steps: int, eval_every: int) -> float:
    """The same training written directly in PyTorch, evaluated as often as train()."""
    model, optimizer, generator = plain_training(0)
    held_x, held_y = AddingTask(100).held_out()
    first = None
    for step in range(1, steps + 1):
        plain_step(model, optimizer, generator)
        if step % eval_every == 0:
            with torch.no_grad():
                nn.functional.mse_loss(model(held_x), held_y).item()
        if first is None:
            first = time.perf_counter()
    return (time.perf_counter() - first) / (steps - 1)


def cli_like_run(store: RunStore, steps: int, seed: int) -> float:
    """steps/s of a whole recorded run with the CLI's defaults, as its summary reports it."""
    config = RunConfig(**SHORT_RUN, steps=steps, seed=seed)
    run_id = store.create_run(config, owner="bench", status="running")
    for event in RecordedRun(store, run_id, config):
        if event.kind == "finished":
            return event.summary["steps_per_s"]
    raise RuntimeError("the run did not finish")


def plain_run(steps: int, seed: int) -> float:
    """steps/s of a plain PyTorch loop training the same model for `steps` steps."""
    model, optimizer, generator = plain_training(seed)
    start = time.perf_counter()
    for _ in range(steps):
        plain_step(model, optimizer, generator)
    return steps / (time.perf_counter() - start)


def short_runs(rounds: int, steps: int = 400) -> None:
    """Whole runs, alternating, after one of each to warm up."""
    rates: dict[str, list[float]] = {"plain": [], "rnnlab": []}
    with tempfile.TemporaryDirectory() as home, RunStore(f"{home}/runs.sqlite") as store:
        for round_ in range(rounds + 1):
            plain, ours = plain_run(steps, round_), cli_like_run(store, steps, round_)
            if round_:
                rates["plain"].append(plain)
                rates["rnnlab"].append(ours)
    plain, ours = (statistics.median(rates[k]) for k in ("plain", "rnnlab"))
    print(f"whole {steps}-step runs (adding, batch 64, T=100, hidden 64), median of {rounds}:")
    print(f"  plain PyTorch loop     {plain:7.1f} steps/s")
    print(f"  rnnlab (as the CLI)    {ours:7.1f} steps/s  (evaluations, snapshots, store)")
    print(f"short run: rnnlab / plain PyTorch = {ours / plain:.3f}  (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="steps per block")
    parser.add_argument("--short-runs", type=int, default=5, help="whole 400-step runs of each")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps
    eval_every = BASE["eval_every"]
    configs = {
        "lstm tanh (fused)": RunConfig(**BASE, cell="lstm", steps=steps),
        "rnn sigmoid (custom)": RunConfig(**BASE, cell="rnn", activation="sigmoid", steps=steps),
        "lstm relu (custom)": RunConfig(**BASE, cell="lstm", activation="relu", steps=steps),
        "gru relu (custom)": RunConfig(**BASE, cell="gru", activation="relu", steps=steps),
    }
    times: dict[str, list[float]] = {name: [] for name in ["plain PyTorch LSTM", *configs]}
    for block in range(args.rounds + 1):  # the first round warms up and is dropped
        sample = {"plain PyTorch LSTM": plain_block(steps, eval_every)}
        sample.update({name: rnnlab_block(config) for name, config in configs.items()})
        if block:
            for name, seconds in sample.items():
                times[name].append(seconds)

    median = {name: statistics.median(values) for name, values in times.items()}
    plain, fused = median["plain PyTorch LSTM"], median["lstm tanh (fused)"]
    print(f"adding, batch 64, T=100, hidden 64; median of {args.rounds} blocks of {steps} steps")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, seconds in median.items():
        print(f"  {name:22s} {seconds * 1e3:7.2f} ms/step")
    print(f"fused path: rnnlab / plain PyTorch = {fused / plain:.3f}  (target <= 1.05)")
    for name in ("rnn sigmoid (custom)", "lstm relu (custom)", "gru relu (custom)"):
        print(f"{name}: / fused LSTM step = {median[name] / fused:.2f}  (target <= 3)")
    if args.short_runs:
        short_runs(args.short_runs)


if __name__ == "__main__":
    main()
