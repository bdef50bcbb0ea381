"""Which importance evaluator finds the setting that matters, on cases with a known answer.

    python bench/importance_evidence.py               # 5 seeds, about two minutes
    python bench/importance_evidence.py --seeds 10    # steadier fractions

Each case is an additive objective over the search space below (plus noise in one), so
the true importance of each setting is its main-effect variance share, computed once by
Monte Carlo over the space (log-uniform for log settings, as the random sampler draws).
Each case is optimised with the random and the TPE sampler for each seed; the first 10,
20, 40 and 80 trials are judged. Evaluators: our main effect (epsilon squared, the
default of rnnlab.tune.importance), the same without the small-sample correction (raw
eta squared), Optuna's PED-ANOVA (its default), and, when scikit-learn is installed,
fANOVA and MDI. Printed per case, trial count, sampler and evaluator: the fraction of
seeds whose first place is the true most important setting, the mean absolute error of
the shares against the truth, and the median time per call; then totals per evaluator,
the stability rule's calibration (how often a ranking called stable had the right first
place) and the time of a full importances() call with intervals on 100 trials x 4
settings.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import optuna

from rnnlab.tune.importance import _group_codes, _main_effect, finished_trials, importances

CELLS = ["rnn", "lstm", "gru"]
COUNTS = (10, 20, 40, 80)


def _log_uniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(low), math.log(high), size))


SPACE: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {  # Monte Carlo draws
    "cell": lambda rng, size: rng.choice(CELLS, size),
    "lr": lambda rng, size: _log_uniform(rng, 1e-4, 1e-1, size),
    "hidden_size": lambda rng, size: np.round(_log_uniform(rng, 7.5, 256.5, size)),
    "dropout": lambda rng, size: rng.uniform(0.0, 0.5, size),
}


def suggest(trial: optuna.Trial, name: str) -> object:
    """The search space as the studies see it."""
    if name == "cell":
        return trial.suggest_categorical("cell", CELLS)
    if name == "lr":
        return trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if name == "hidden_size":
        return trial.suggest_int("hidden_size", 8, 256, log=True)
    return trial.suggest_float("dropout", 0.0, 0.5)


@dataclass(frozen=True)
class Case:
    name: str
    effects: dict[str, Callable[[object], float]]  # setting -> its additive effect
    noise: float = 0.0  # standard deviation of Gaussian noise on each trial
    truth: dict[str, float] = field(default_factory=dict)

    def objective(self, seed: int) -> Callable[[optuna.Trial], float]:
        rng = np.random.default_rng(seed + 1000)

        def objective(trial: optuna.Trial) -> float:
            value = sum(effect(suggest(trial, name)) for name, effect in self.effects.items())
            return float(value + (rng.normal(0.0, self.noise) if self.noise else 0.0))

        return objective


def with_truth(case: Case, draws: int = 200_000) -> Case:
    """The case with each setting's main-effect variance share over the search space."""
    rng = np.random.default_rng(0)
    variances = {
        name: float(np.var([effect(x) for x in SPACE[name](rng, draws)]))
        for name, effect in case.effects.items()
    }
    total = sum(variances.values())
    truth = {name: v / total for name, v in variances.items()}
    return Case(case.name, case.effects, case.noise, truth)


CASES = [
    with_truth(case)
    for case in (
        Case(  # the case Optuna's default gets wrong: cell matters, lr barely
            "cell 1.0, lr 0.01",
            {
                "cell": lambda c: 1.0 if c == "rnn" else 0.0,
                "lr": lambda lr: 0.01 * (math.log10(lr) + 4) / 3,
            },
        ),
        Case(
            "lr matters, cell not",
            {"cell": lambda c: 0.0, "lr": lambda lr: (math.log10(lr) + 2.5) ** 2},
        ),
        Case(
            "three settings",
            {
                "cell": lambda c: 0.6 if c == "rnn" else 0.0,
                "hidden_size": lambda h: 0.15 * (math.log2(h) - 3),
                "lr": lambda lr: 0.5 * (math.log10(lr) + 2.5) ** 2,
            },
        ),
        Case(
            "additive + noise",
            {
                "cell": lambda c: 0.3 if c == "rnn" else 0.0,
                "dropout": lambda d: 2.0 * d,
                "hidden_size": lambda h: 0.0,
                "lr": lambda lr: 0.1 * (math.log10(lr) + 4),
            },
            noise=0.3,
        ),
    )
]


def main_effect_raw(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> dict[str, float]:
    """Raw eta squared (between-group over total variance), normalised: no bias correction."""
    y = np.array([t.values[0] for t in trials])
    eta = []
    for name in names:
        code = _group_codes(trials, name)
        means = np.bincount(code, weights=y) / np.bincount(code)
        eta.append(float(np.var(means[code]) / (np.var(y) or 1.0)))
    total = sum(eta) or 1.0
    return {name: e / total for name, e in zip(names, eta, strict=True)}


def optuna_evaluator(make: Callable[[], object]) -> Callable[..., dict[str, float]]:
    def evaluate(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> dict[str, float]:
        study = optuna.create_study()
        study.add_trials(trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=make(), params=names)
        return {name: float(found.get(name, 0.0)) for name in names}

    return evaluate


def main_effect(trials: list[optuna.trial.FrozenTrial], names: list[str]) -> dict[str, float]:
    codes = [_group_codes(trials, name) for name in names]
    y = np.array([t.values[0] for t in trials])
    point = _main_effect(codes, y, np.arange(len(trials))[None, :])[0]
    return dict(zip(names, point.tolist(), strict=True))


def evaluators() -> dict[str, Callable[..., dict[str, float]]]:
    found = {
        "main-effect": main_effect,
        "main-effect raw": main_effect_raw,
        "ped-anova": optuna_evaluator(optuna.importance.PedAnovaImportanceEvaluator),
    }
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("scikit-learn is not installed: fANOVA and MDI left out")
        return found
    found["fanova"] = optuna_evaluator(lambda: optuna.importance.FanovaImportanceEvaluator(seed=0))
    found["mdi"] = optuna_evaluator(
        lambda: optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    )
    return found


def sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def compare(seeds: int) -> None:
    evaluate = evaluators()
    rows: dict[tuple, list[tuple[bool, float, float]]] = defaultdict(list)
    calibration: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    for case in CASES:
        best = max(case.truth, key=case.truth.get)
        names = sorted(case.truth)
        for sampler_name in ("random", "tpe"):
            for seed in range(seeds):
                study = optuna.create_study(sampler=sampler(sampler_name, seed))
                study.optimize(case.objective(seed), n_trials=max(COUNTS))
                for n in COUNTS:
                    trials = finished_trials(study.trials[:n])
                    for name, function in evaluate.items():
                        start = time.perf_counter()
                        found = function(trials, names)
                        seconds = time.perf_counter() - start
                        top = max(names, key=lambda p: (found[p], p))
                        first = top == best and found[top] > 0
                        error = statistics.fmean(abs(found[p] - case.truth[p]) for p in names)
                        rows[case.name, n, sampler_name, name].append((first, error, seconds))
                    result = importances(trials, names, resamples=200, seed=seed)
                    calibration[n].append((result.stable, result.ranking[0] == best))
    print_table(rows, evaluate)
    print_calibration(calibration)


def print_table(rows: dict, evaluate: dict) -> None:
    print("\nTruth (main-effect variance share over the search space):")
    for case in CASES:
        print(f"  {case.name:22s} " + ", ".join(f"{p} {v:.3f}" for p, v in case.truth.items()))
    print(f"\n{'case':22s} {'n':>3s} {'sampler':7s} {'evaluator':16s} first  error  ms/call")
    totals: dict[str, list] = defaultdict(list)
    for (case, n, sampler_name, name), results in rows.items():
        first = statistics.fmean(r[0] for r in results)
        error = statistics.fmean(r[1] for r in results)
        ms = 1000 * statistics.median(r[2] for r in results)
        totals[name].extend(results)
        totals[name, n].extend(results)
        print(
            f"{case:22s} {n:3d} {sampler_name:7s} {name:16s} {first:5.2f}  {error:.3f}  {ms:7.1f}"
        )
    print(f"\n{'evaluator':16s} first  error  | first/error at " + " ".join(map(str, COUNTS)))
    for name in evaluate:
        results = totals[name]
        by_n = "  ".join(
            f"{statistics.fmean(r[0] for r in totals[name, n]):.2f}/"
            f"{statistics.fmean(r[1] for r in totals[name, n]):.3f}"
            for n in COUNTS
        )
        print(
            f"{name:16s} {statistics.fmean(r[0] for r in results):5.2f}  "
            f"{statistics.fmean(r[1] for r in results):.3f}  | {by_n}"
        )


def print_calibration(calibration: dict[int, list[tuple[bool, bool]]]) -> None:
    print("\nStability rule (main-effect, 200 resamples): called stable / right first when stable")
    every = [pair for n in COUNTS for pair in calibration[n]]
    for n, pairs in [*((n, calibration[n]) for n in COUNTS), ("all", every)]:
        stable = [right for is_stable, right in pairs if is_stable]
        unstable = [right for is_stable, right in pairs if not is_stable]
        print(
            f"  n={n!s:3s} stable {len(stable):3d}/{len(pairs)}"
            f"  right first when stable {statistics.fmean(stable) if stable else float('nan'):.2f}"
            f"  when not {statistics.fmean(unstable) if unstable else float('nan'):.2f}"
        )


def time_live_call() -> None:
    """importances() on 100 trials x 4 settings, as a live page would call it."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(CASES[3].objective(0), n_trials=100)
    print("\nimportances() on 100 trials x 4 settings (median of 5 calls):")
    for name, resamples in (("main-effect", 200), ("ped-anova", 50), ("fanova", 10)):
        try:
            seconds = []
            for _ in range(5):
                start = time.perf_counter()
                result = importances(study.trials, evaluator=name, resamples=resamples)
                seconds.append(time.perf_counter() - start)
        except ValueError as error:
            print(f"  {name:12s} {error}")
            continue
        print(
            f"  {name:12s} {resamples:3d} resamples  {statistics.median(seconds):.3f} s  "
            f"{result.message}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    compare(args.seeds)
    time_live_call()


if __name__ == "__main__":
    main()
