"""Search strategies on a task whose answer is known: grid, random, TPE, TPE + halving.

    python bench/bench_search.py            # 26 trials x 2000 steps x 3 seeds (~25 min, 2 cores)
    python bench/bench_search.py --quick    # 9 trials x 800 steps x 2 seeds (a few minutes)
    python bench/bench_search.py --trials 26 --steps 2000 --seeds 3 --strategies tpe+halving

The adding problem at T = 50, where gated cells (LSTM, GRU) reach the "solved" rule
(held-out MSE below 0.01) within a couple of thousand steps and a tanh RNN stays at
chance (MSE 0.167). Every strategy searches the same space, cell, hidden_size 16..64 and
lr 1e-3..3e-2 (both log), with the same number of trials, on one job manager of two
workers, at most two trials training at once: grid (3 values per number, 27 points; with
fewer trials, a random subset of them), random and TPE without pruning, and TPE with
rnnlab's successive halving (first rung after a ninth of the steps, the best third kept
at each rung; rnnlab.tune.settings). `--strategies` runs some of them only.

Study seed s seeds the sampler and every trial's training (weights and data), so the four
strategies of one seed train the same configuration to the same result. Optuna's TPE
samples its first 10 trials at random, with the same generator as the random sampler, so
TPE and random share their first 10 trials.

Per study: the processor seconds of all its trials (the workers measure each trial's
training, so other load on the machine changes them less than wall time), the processor
seconds spent, in the order trials finished, up to and including the first trial whose
run ends solved ("never" if none does), the best final held-out loss, and which setting
the importance ranking puts first (none when every share is 0; only complete trials count,
so a study that pruned most of its trials ranks on few). Printed: a line per study as it
ends, then per strategy the median over seeds and whether `cell` came first in every seed,
the load average before and after, and one JSON line of every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnlab.config import RunConfig  # noqa: E402
from rnnlab.jobs import JobManager  # noqa: E402
from rnnlab.store import RunNotFound, RunStore  # noqa: E402
from rnnlab.tune import Study, parse_space, tune  # noqa: E402

SPACE = "cell,hidden_size=16:64,lr=1e-3:3e-2:log"
BASE = RunConfig(task="adding", seq_len=50)
# name -> (sampler, pruner)
STRATEGIES = {
    "grid": ("grid", "none"),
    "random": ("random", "none"),
    "tpe": ("tpe", "none"),
    "tpe+halving": ("tpe", "halving"),
}
WORKERS = 2
PARALLEL = 2  # trials training at once in every study
QUICK = {"trials": 9, "steps": 800, "seeds": 2}


@dataclass
class Outcome:
    """One study's figures."""

    strategy: str
    seed: int
    counts: dict[str, int]
    cpu_s: float  # all trials
    cpu_s_to_solved: float | None  # None: no trial ended solved
    solved_trials: int
    best_loss: float | None
    best_settings: dict[str, Any] | None
    top_setting: str | None  # importances().ranking[0]; None when every share is 0
    importance: dict[str, Any]
    cells: dict[str, int]  # trials per cell
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "counts": self.counts,
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_to_solved": _rounded(self.cpu_s_to_solved),
            "solved_trials": self.solved_trials,
            "best_loss": _rounded(self.best_loss, 6),
            "best_settings": self.best_settings,
            "top_setting": self.top_setting,
            "importance": self.importance,
            "cells": self.cells,
            "wall_s": round(self.wall_s, 1),
        }


def uptime() -> str:
    """The load average, as `uptime` prints it (others may share the machine)."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _rounded(value: float | None, places: int = 2) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, places)


def run_study(manager: JobManager, strategy: str, seed: int, *, trials: int, steps: int) -> Outcome:
    """Search SPACE with one strategy and study seed, and measure the finished study."""
    sampler, pruner = STRATEGIES[strategy]
    study = tune(
        SPACE,
        BASE.replace(steps=steps, seed=seed),
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        study=f"bench-{strategy}-{seed}",
        manager=manager,
        parallel=PARALLEL,
        owner=f"bench-{strategy}",
    )
    return measure(study, manager.store, strategy, seed)


def measure(study: Study, store: RunStore, strategy: str, seed: int) -> Outcome:
    """The study's processor seconds (in total, and to its first solved trial in the order
    trials finished), best loss and top setting."""
    ended = sorted(
        (t for t in study.trials() if t.datetime_complete is not None),
        key=lambda t: t.datetime_complete,
    )
    spent, to_solved, solved = 0.0, None, 0
    for trial in ended:
        spent += trial.user_attrs.get("cpu_s") or 0.0
        if run_solved(store, trial.user_attrs.get("run_id")):
            solved += 1
            if to_solved is None:
                to_solved = spent
    try:
        ranked = study.importances()
        # all shares 0 (e.g. too few complete trials): the ranking is only the space's order
        top = ranked.ranking[0] if ranked.ranking and ranked.values[ranked.ranking[0]] else None
        importance = {
            "ranking": ranked.ranking,
            "values": {k: round(v, 3) for k, v in ranked.values.items()},
            "trials": ranked.trials,
            "stable": ranked.stable,
            "message": ranked.message,
        }
    except Exception as error:  # too few complete trials is said inside; anything else shows
        top, importance = None, {"error": f"{type(error).__name__}: {error}"}
    cells: dict[str, int] = {}
    for trial in study.trials():
        cell = trial.params.get("cell")
        cells[cell] = cells.get(cell, 0) + 1
    return Outcome(
        strategy=strategy,
        seed=seed,
        counts=study.counts(),
        cpu_s=spent,
        cpu_s_to_solved=to_solved,
        solved_trials=solved,
        best_loss=study.best_value,
        best_settings=study.best_settings,
        top_setting=top,
        importance=importance,
        cells=dict(sorted(cells.items())),
        wall_s=study.wall_s,
    )


def run_solved(store: RunStore, run_id: str | None) -> bool:
    """Whether the trial's run ended solved, as its summary in the run store says."""
    if run_id is None:
        return False
    try:
        summary = store.get_run(run_id).summary
    except RunNotFound:
        return False
    return bool(summary and summary.get("solved"))


def median_or_never(values: list[float | None]) -> float:
    """The median, counting "never" (None) as infinitely late; inf if that is the median."""
    return statistics.median(math.inf if v is None else v for v in values)


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    """Medians over seeds for one strategy, and whether cell came first in every seed."""
    losses = [o.best_loss for o in outcomes if o.best_loss is not None]
    return {
        "cpu_s": round(statistics.median(o.cpu_s for o in outcomes), 1),
        "cpu_s_to_solved": _rounded(median_or_never([o.cpu_s_to_solved for o in outcomes]), 1),
        "never_solved": sum(o.cpu_s_to_solved is None for o in outcomes),
        "best_loss": _rounded(statistics.median(losses), 6) if losses else None,
        "solved_trials": statistics.median(o.solved_trials for o in outcomes),
        "gated_trials": statistics.median(
            o.cells.get("lstm", 0) + o.cells.get("gru", 0) for o in outcomes
        ),
        "pruned": statistics.median(o.counts.get("pruned", 0) for o in outcomes),
        "cell_first_every_seed": all(o.top_setting == "cell" for o in outcomes),
        "top_setting_per_seed": [o.top_setting for o in outcomes],
        "wall_s": round(statistics.median(o.wall_s for o in outcomes), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=26, help="trials per study")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per trial")
    parser.add_argument("--seeds", type=int, default=3, help="study seeds per strategy")
    parser.add_argument("--quick", action="store_true", help=f"a smoke check: {QUICK}")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), help="comma-separated, default: all"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if args.quick:
        args.trials, args.steps, args.seeds = QUICK["trials"], QUICK["steps"], QUICK["seeds"]
    grid_size = parse_space(SPACE).grid_size()
    print(f"load at start: {uptime()}", flush=True)
    print(
        f"adding T={BASE.seq_len}, space {SPACE} (grid {grid_size} points), "
        f"{args.trials} trials x {args.steps} steps, seeds 0..{args.seeds - 1}, "
        f"{WORKERS} workers, {PARALLEL} trials at once",
        flush=True,
    )
    grid_trials = min(args.trials, grid_size)
    print(f"grid: {grid_trials} of its {grid_size} points")
    started = time.perf_counter()
    outcomes: dict[str, list[Outcome]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory(prefix="rnnlab-search-") as home:
        os.environ["RNNLAB_HOME"] = home
        os.environ["RNNLAB_STUDIES"] = str(Path(home) / "studies.log")
        manager = JobManager(
            workers=WORKERS,
            store=RunStore(Path(home) / "runs.sqlite"),
            max_queued_per_owner=None,
            orphan_after_s=None,
        )
        try:
            for seed in range(args.seeds):  # strategies alternate, so load hits them alike
                for strategy in chosen:
                    trials = grid_trials if strategy == "grid" else args.trials
                    outcome = run_study(manager, strategy, seed, trials=trials, steps=args.steps)
                    outcomes[strategy].append(outcome)
                    print_study(outcome)
        finally:
            manager.shutdown(timeout=30)
    elapsed = time.perf_counter() - started
    summary = {name: summarise(found) for name, found in outcomes.items()}
    print_table(summary, args.seeds)
    print(f"took {elapsed / 60:.1f} min")
    load_end = uptime()
    print(f"load at end: {load_end}")
    figures = {
        "bench": "search",
        "task": f"adding T={BASE.seq_len}",
        "space": SPACE,
        "trials": args.trials,
        "grid_trials": grid_trials,
        "steps": args.steps,
        "seeds": args.seeds,
        "workers": WORKERS,
        "parallel": PARALLEL,
        "elapsed_s": round(elapsed, 1),
        "summary": summary,
        "studies": [o.to_dict() for found in outcomes.values() for o in found],
        "load_end": load_end,
    }
    print(json.dumps(figures))
    return 0


def print_study(outcome: Outcome) -> None:
    counts = outcome.counts
    best = "-" if outcome.best_loss is None else f"{outcome.best_loss:.2e}"
    to_solved = outcome.cpu_s_to_solved
    to_solved = "never" if to_solved is None else f"{to_solved:.1f} s"
    print(
        f"  {outcome.strategy:11s} seed {outcome.seed}: "
        f"{counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed; "
        f"cells {outcome.cells}; CPU {outcome.cpu_s:.1f} s, to first solved "
        f"{to_solved} ({outcome.solved_trials} "
        f"solved); best loss {best} {outcome.best_settings}; "
        f"top setting {outcome.top_setting}; wall {outcome.wall_s:.0f} s",
        flush=True,
    )


def print_table(summary: dict[str, dict[str, Any]], seeds: int) -> None:
    print(f"\nmedian over {seeds} seeds:")
    header = (
        f"{'strategy':12s} {'CPU-s':>8s} {'to solved':>10s} {'best loss':>10s} "
        f"{'solved':>7s} {'gated':>6s} {'pruned':>7s} {'wall-s':>7s}  top setting per seed"
    )
    print(header)
    for name, row in summary.items():
        to_solved = row["cpu_s_to_solved"]
        best = row["best_loss"]
        tops = " ".join(str(t) for t in row["top_setting_per_seed"])
        every = "cell first in every seed" if row["cell_first_every_seed"] else "NOT every seed"
        print(
            f"{name:12s} {row['cpu_s']:8.1f} "
            f"{'never' if to_solved is None else f'{to_solved:.1f}':>10s} "
            f"{'-' if best is None else f'{best:.2e}':>10s} "
            f"{row['solved_trials']:7g} {row['gated_trials']:6g} {row['pruned']:7g} "
            f"{row['wall_s']:7.0f}  "
            f"{tops} ({every})"
        )


if __name__ == "__main__":
    sys.exit(main())
