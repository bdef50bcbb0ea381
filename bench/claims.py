"""The study note's claims about recurrent networks, measured on fresh and trained models.

    python bench/claims.py              # about two minutes on two cores
    python bench/claims.py --seeds 10   # more seeds, longer

1. sigmoid′ ≤ 0.25 and tanh′ ≤ 1, so gradients vanish faster through a sigmoid RNN:
   ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ on the adding problem at T = 50, whose loss is read at the
   last step only, so this ratio is how much of the gradient survives 49 steps back.
2. relu passes large values through unchanged, so states can blow up: a relu RNN's
   mean ‖h_t‖ over time, and how often training diverges (loss or gradient NaN/inf)
   with and without identity initialisation and gradient clipping.
3. An LSTM's forget gate (1 = keep the past) learns to stay open when memory matters:
   its mean and saturation (fraction of steps < 0.1 or > 0.9) before and after training
   on the adding problem.
4. What each preset's text says will happen, on the preset itself at full scale
   (`--presets`, one run per seed): when the adding LSTM solves, whether a plain RNN
   leaves the baseline, the copy task's forget gate per unit through the wait (units
   with mean f > 0.9 open, < 0.5 closed) and its input gate on symbols against blanks,
   the character model's bits per char and the sine GRU against the naive forecast.
5. An LSTM reaches back to the inputs that matter; a tanh RNN does not (`--influence`):
   on the adding problem, the influence ‖∂ŷ/∂x_t‖ of every input step on the answer,
   over 100 held-out sequences: how often the two marked steps carry the two largest
   influences, and how a tanh RNN's influence falls with distance from the last step.

Everything trains through rnnlab.train() and reads the final Snapshot, as the
dashboard does; fresh models are probed directly (in float64 where a gradient would
underflow float32). Sizes are small so the whole script runs in minutes on a laptop:
hidden 32, batch 32, 200 steps and five seeds (one seed for the LSTM). Whatever it prints is what
was measured, including where a claim does not hold.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace

import torch

from rnnlab import (
    RunConfig,
    build_model,
    gradients_through_time,
    load_model,
    make_task,
    probe,
    train,
)
from rnnlab.presets import PRESETS
from rnnlab.probe import input_influence, probe_batch, saturation

T = 50
SMALL = dict(task="adding", seq_len=T, hidden_size=32, batch_size=32, eval_every=50)


def final_events(config: RunConfig) -> tuple[dict, object]:
    """Train to the end; the Finished summary and the final Snapshot."""
    summary, last = {}, None
    for event in train(config, snapshot_every_s=math.inf):
        if event.kind == "snapshot":
            last = event
        elif event.kind == "finished":
            summary = event.summary
    return summary, last


def fresh_gradient_ratio(config: RunConfig) -> float:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ of a freshly initialised model, in float64."""
    task = make_task(config)
    model = build_model(config, task).double()
    x, y = probe_batch(task)
    norms = gradients_through_time(model, x.double(), y.double(), task.loss).norms[0]
    return (norms[0] / norms[-1]).item()


def fresh_state_norms(config: RunConfig) -> list[float]:
    """Mean ‖h_t‖ over the probe batch at every step of a freshly initialised model."""
    task = make_task(config)
    x, _ = probe_batch(task)
    h = probe(build_model(config, task), x).layers[0]["h"]  # (B, T, H)
    return h.norm(dim=-1).mean(0).tolist()


def spread(values: list[float], style: str = ".2e") -> str:
    """Median and range of a list, or 'n/a' when nothing was measured."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    median = statistics.median(values)
    return f"{median:{style}} ({min(values):{style}} .. {max(values):{style}})"


def gradient_ratio_claim(seeds: range, steps: int) -> None:
    print(f"\n1. Vanishing gradients, RNN, adding problem, T = {T} (median (min .. max))")
    print("   ‖∂L/∂h_1‖/‖∂L/∂h_T‖; per step = its (T-1)th root")
    print(f"   {'activation':<11}{'fresh ratio':<36}{'fresh per step':<16}"
          f"trained {steps} steps (ratio; held-out loss)")  # fmt: skip
    for activation in ("sigmoid", "tanh"):
        configs = [
            RunConfig(cell="rnn", activation=activation, seed=seed, steps=steps, **SMALL)
            for seed in seeds
        ]
        fresh = [fresh_gradient_ratio(config) for config in configs]
        per_step = statistics.median(r ** (1 / (T - 1)) for r in fresh)
        trained, losses, underflow = [], [], 0
        for config in configs:
            summary, snapshot = final_events(config)
            norms = snapshot.gradient_norms[0]
            losses.append(summary["final_loss"])
            if norms[0] == 0 and norms[-1]:
                underflow += 1  # the snapshot is float32: below ~1e-45 reads as 0
            elif norms[-1]:
                trained.append(norms[0] / norms[-1])
        ratio = spread(trained) if trained else "< 1e-38"
        note = f" ({underflow} of {len(configs)} below float32's range)" if underflow else ""
        print(
            f"   {activation:<11}{spread(fresh):<36}{per_step:<16.3f}"
            f"{ratio}{note}; {spread(losses, '.3f')}"
        )
    print("   (chance: held-out MSE 0.167; neither RNN learns the task at this length)")


def relu_claim(seeds: range, steps: int, optimizers: list[tuple[str, float]]) -> None:
    print(f"\n2. relu RNN, adding problem, T = {T}: mean ‖h_t‖ of fresh models (seed 0)")
    marks = (1, 10, 25, 50)
    print("   " + f"{'setting':<20}" + "".join(f"{f't={t}':>9}" for t in marks))
    for activation, init in (("tanh", "default"), ("relu", "default"), ("relu", "identity")):
        norms = fresh_state_norms(RunConfig(cell="rnn", activation=activation, init=init, **SMALL))
        row = "".join(f"{norms[t - 1]:>9.3f}" for t in marks)
        print(f"   {activation + ', ' + init:<20}{row}")

    settings = [("tanh", "default", 0.0)] + [
        ("relu", init, clip) for init in ("default", "identity") for clip in (0.0, 1.0)
    ]
    for optimizer, lr in optimizers:
        print(
            f"\n   training {steps} steps, {optimizer} lr {lr:g}, seeds "
            f"{seeds.start}..{seeds.stop - 1}; diverged = loss or gradient NaN/inf, "
            "dead = every unit 0 at t = T"
        )
        print(
            f"   {'setting':<30}{'diverged':<10}{'dead':<6}{'held-out loss':<28}trained ‖h_T‖/‖h_1‖"
        )
        for activation, init, clip in settings:
            relu_row(seeds, steps, optimizer, lr, activation, init, clip)


def relu_row(
    seeds: range, steps: int, optimizer: str, lr: float, activation: str, init: str, clip: float
) -> None:
    diverged, dead, losses, growth = 0, 0, [], []
    for seed in seeds:
        config = RunConfig(
            cell="rnn", activation=activation, init=init, clip=clip, lr=lr,
            optimizer=optimizer, seed=seed, steps=steps, **SMALL,
        )  # fmt: skip
        summary, snapshot = final_events(config)
        diverged += summary["status"] == "diverged"
        losses.append(summary["final_loss"])
        first, last = snapshot.state_norms[0][0], snapshot.state_norms[0][-1]
        dead += last == 0
        if first and last:
            growth.append(last / first)
    clip_text = f"clip {clip:g}" if clip else "no clip"
    print(
        f"   {f'{activation}, {init}, {clip_text}':<30}{f'{diverged}/{len(seeds)}':<10}"
        f"{f'{dead}/{len(seeds)}':<6}{spread(losses, '.3f'):<28}{spread(growth, '.2f')}"
    )


def forget_gate_claim(steps: int, lr: float) -> None:
    print(f"\n3. LSTM forget gate, adding problem, T = {T}, up to {steps} steps, adam lr {lr}")
    print("   f mean; saturation = share of (sequence, step, unit) with f < 0.1 | f > 0.9")
    print("   units open = units with f > 0.9 on more than half the steps, of 32")
    print(
        f"   {'init':<13}{'':<8}{'f mean':>8}{'f < 0.1':>9}{'f > 0.9':>9}{'units open':>12}"
        "   held-out MSE"
    )
    for init in ("default", "forget_bias"):
        config = RunConfig(
            cell="lstm", init=init, lr=lr, steps=steps, stop_when_solved=True, seed=0, **SMALL
        )
        task = make_task(config)
        x, _ = probe_batch(task)
        fresh = probe(build_model(config, task), x)
        f = fresh.layers[0]["f"]
        fresh_saturation = saturation(fresh)[0]["f"]
        print(
            f"   {init:<13}{'fresh':<8}{f.mean().item():>8.3f}"
            f"{fresh_saturation['left'].mean().item():>9.3f}"
            f"{fresh_saturation['right'].mean().item():>9.3f}"
            f"{int((fresh_saturation['right'] > 0.5).sum()):>12}"
        )
        summary, snapshot = final_events(config)
        solved = summary["solved_at_step"]
        state = f"solved at step {solved}" if solved else f"not solved in {summary['steps']} steps"
        after = snapshot.saturation[0]["f"]
        print(
            f"   {'':<13}{'trained':<8}{snapshot.gate_means[0]['f']:>8.3f}"
            f"{after['left_mean']:>9.3f}{after['right_mean']:>9.3f}"
            f"{sum(share > 0.5 for share in after['right']):>12}"
            f"   {summary['final_loss']:.4f} ({state})"
        )


def trained(config: RunConfig) -> tuple[dict, torch.nn.Module]:
    """Train to the end without snapshots; the summary and the trained model."""
    summary, model = {}, None
    for event in train(config, snapshot_every_s=None):
        if event.kind == "weights":
            model = load_model(event.data)[0]
        elif event.kind == "finished":
            summary = event.summary
    return summary, model


def copy_gates(config: RunConfig, model: torch.nn.Module) -> str:
    """The copy task's forget gate per unit through the wait, and its input gate."""
    task = make_task(config)
    x, _ = probe_batch(task)
    layer = probe(model, x).layers[0]
    symbols, wait = slice(0, task.memory), slice(task.memory, task.memory + config.seq_len)
    per_unit = layer["f"][:, wait].mean((0, 1))  # (H,)
    return (
        f"f mean {layer['f'].mean():.3f}; units open {int((per_unit > 0.9).sum())}, "
        f"closed {int((per_unit < 0.5).sum())} of {per_unit.numel()}; "
        f"i on symbols {layer['i'][:, symbols].mean():.3f}, "
        f"waiting {layer['i'][:, wait].mean():.3f}"
    )


def presets_claim(seeds: range) -> None:
    print(
        f"\n4. The presets' texts, each preset at full scale, seeds {seeds.start}..{seeds.stop - 1}"
    )
    runs = [
        ("Hello, RNN", {}),
        ("Why LSTM? long-range memory", {}),
        ("Why LSTM? long-range memory", {"cell": "rnn", "stop_when_solved": False}),
        ("Why not relu?", {}),
        ("Why not relu?", {"lr": 0.001}),
        ("Why not relu?", {"clip": 1.0}),
        ("Forget gate at work: copy memory", {}),
        ("Character language model", {}),
        ("Forecast a noisy sine", {}),
    ]
    for name, changes in runs:
        for seed in seeds:
            config = replace(PRESETS[name].config(), seed=seed, **changes)
            if name.startswith("Forget gate"):
                fresh = copy_gates(config, build_model(config, make_task(config)))
                print(f"   {name}, seed {seed}, fresh: {fresh}")
            summary, model = trained(config)
            metric = summary["metric"]
            print(
                f"   {name} {changes or ''}, seed {seed}: {summary['status']} after "
                f"{summary['steps']} steps, {summary['metric_name']} "
                f"{'n/a' if metric is None else f'{metric:.4g}'} (baseline "
                f"{summary['metric_baseline']:.4g}), solved at {summary['solved_at_step']}"
            )
            if name.startswith("Forget gate") and model is not None:
                print(f"      trained: {copy_gates(config, model)}")


def influence_claim(runs: list[tuple[str, int, int]]) -> None:
    print("\n5. Which inputs the answer uses (adding, hidden 32, 100 held-out sequences)")
    for cell, length, steps in runs:
        config = RunConfig(
            task="adding", cell=cell, seq_len=length, hidden_size=32, batch_size=32,
            lr=1e-2, steps=steps, eval_every=100,
        )  # fmt: skip
        summary, model = trained(config)
        task = make_task(config)
        x, _ = task.sample(100, torch.Generator().manual_seed(1234))
        last = input_influence(model, x, sequences=100).last  # (100, T)
        marked = x[..., 1] > 0.5  # the marker channel
        top_two = last.topk(2, dim=1).indices
        hits = sum(bool(marked[b, top_two[b]].all()) for b in range(len(x)))
        relative = (last / last[:, -1:]).median(0).values  # to the last step's influence
        back = ", ".join(
            f"{k} back {relative[-1 - k].item():.2g}" for k in (10, 20, 40) if k < length
        )
        print(
            f"   {cell} T={length}, {steps} steps: MSE {summary['metric']:.4f} (baseline "
            f"{summary['metric_baseline']:.3f}); marked steps on top {hits} of 100; median "
            f"on marked {last[marked].median().item():.3g}, elsewhere "
            f"{last[~marked].median().item():.3g}; relative to the last step: {back}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="training steps, claims 1-2")
    parser.add_argument("--lstm-steps", type=int, default=2000)
    parser.add_argument("--lstm-lr", type=float, default=1e-2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (these models are tiny)"
    )
    parser.add_argument(
        "--presets", type=int, default=0, metavar="SEEDS",
        help="also train every preset whole, this many seeds each (about 10 CPU-minutes a seed)",
    )  # fmt: skip
    parser.add_argument(
        "--influence", action="store_true",
        help="also claim 5: LSTM and tanh RNN influence on adding (about 6 CPU-minutes)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    seeds = range(args.seeds)
    gradient_ratio_claim(seeds, args.steps)
    relu_claim(seeds, args.steps, [("sgd", 0.1), ("adam", 0.01)])
    forget_gate_claim(args.lstm_steps, args.lstm_lr)
    if args.presets:
        presets_claim(range(args.presets))
    if args.influence:
        influence_claim([("lstm", 50, 2000), ("lstm", 100, 3000), ("rnn", 100, 3000)])
    print(f"\n({time.perf_counter() - start:.0f} s, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
