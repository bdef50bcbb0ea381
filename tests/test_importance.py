"""Importances on real Optuna studies whose answer is known: additive objectives over a
search space like ours, so the setting that moves the objective most is the one that must
come first."""

from __future__ import annotations

import json
import math
import sys

import optuna
import pytest

from rnnlab.tune.importance import EVALUATORS, evaluator_available, importances

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEEDS = range(5)


def cell_shifts(trial: optuna.Trial) -> float:
    """cell moves the objective by 1.0, lr by at most 0.01."""
    cell = trial.suggest_categorical("cell", ["rnn", "lstm", "gru"])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    return (1.0 if cell == "rnn" else 0.0) + 0.01 * (math.log10(lr) + 4) / 3


def lr_matters(trial: optuna.Trial) -> float:
    """lr moves the objective by up to 2.25; cell not at all."""
    trial.suggest_categorical("cell", ["rnn", "lstm", "gru"])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    return (math.log10(lr) + 2.5) ** 2


def additive_noisy(trial: optuna.Trial) -> float:
    """dropout holds three quarters of the variance, then cell, lr; hidden_size none; noise."""
    cell = trial.suggest_categorical("cell", ["rnn", "lstm", "gru"])
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    trial.suggest_int("hidden_size", 8, 256, log=True)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    noise = 0.3 * math.sin(1e4 * lr + 7 * dropout)  # deterministic, uncorrelated with both
    return (0.3 if cell == "rnn" else 0.0) + 2.0 * dropout + 0.1 * (math.log10(lr) + 4) + noise


def study_of(objective, n: int, seed: int, direction: str = "minimize") -> optuna.Study:
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    study.optimize(objective, n_trials=n)
    return study


@pytest.mark.parametrize(
    ("objective", "best", "n", "at_least"),
    [
        (cell_shifts, "cell", 20, 4),
        (cell_shifts, "cell", 80, 5),
        (lr_matters, "lr", 20, 4),
        (lr_matters, "lr", 80, 5),
        (additive_noisy, "dropout", 80, 5),
    ],
)
def test_the_setting_that_matters_comes_first(objective, best, n, at_least):
    firsts = [importances(study_of(objective, n, seed).trials).ranking[0] for seed in SEEDS]
    assert firsts.count(best) >= at_least, firsts


def test_optunas_default_gets_the_cell_case_wrong():
    """Why the default is not PED-ANOVA: it ranks lr (0.01) above cell (1.0)."""
    study = study_of(cell_shifts, 80, seed=0)
    assert importances(study.trials, evaluator="ped-anova").ranking[0] == "lr"
    assert importances(study.trials).ranking[0] == "cell"


def test_intervals_hold_the_estimate_and_narrow_with_more_trials():
    widths = {}
    for n in (20, 80):
        result = importances(study_of(additive_noisy, n, seed=1).trials)
        for name in result.ranking:
            assert result.low[name] <= result.values[name] <= result.high[name]
        assert math.isclose(sum(result.values.values()), 1.0)
        widths[n] = sum(result.high[p] - result.low[p] for p in result.ranking)
    assert widths[80] < widths[20]


def test_a_setting_with_one_value_is_left_out():
    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("task", ["adding"])
        return cell_shifts(trial)

    result = importances(study_of(objective, 30, seed=0).trials)
    assert sorted(result.ranking) == ["cell", "lr"]
    assert "task" not in result.values


def test_too_few_trials_says_how_many_more():
    few = importances(study_of(cell_shifts, 4, seed=0).trials)
    assert few.more_trials_needed >= 16 and not few.stable
    assert few.message.startswith(f"{few.more_trials_needed} more trials")
    enough = importances(study_of(cell_shifts, 80, seed=0).trials)
    assert enough.more_trials_needed == 0 and enough.stable
    assert enough.first_share >= 0.9
    assert "Stable ranking from 80 trials" in enough.message


def test_an_unsettled_ranking_asks_for_more_trials():
    """Two settings that matter equally: no stable first place, so more trials are asked."""

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        return x + y

    result = importances(study_of(objective, 40, seed=0).trials)
    assert not result.stable
    assert result.first_share < 0.9
    assert result.more_trials_needed > 0


def test_only_finished_trials_count():
    def objective(trial: optuna.Trial) -> float:
        value = cell_shifts(trial)
        if trial.number % 4 == 0:
            trial.report(value, step=0)
            raise optuna.TrialPruned
        return value

    study = study_of(objective, 40, seed=0)
    assert importances(study.trials).trials == 30


def test_an_evaluator_that_cannot_run_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as where scikit-learn is missing
    assert evaluator_available("fanova") == "fANOVA needs scikit-learn: pip install scikit-learn"
    with pytest.raises(ValueError, match="scikit-learn"):
        importances(study_of(cell_shifts, 20, seed=0).trials, evaluator="fanova")
    assert evaluator_available(EVALUATORS[0]) is None
    assert "choose one of" in evaluator_available("shap")


def test_to_dict_is_json_ready():
    result = importances(study_of(additive_noisy, 30, seed=0).trials)
    data = json.loads(json.dumps(result.to_dict()))
    assert [row["param"] for row in data["importances"]] == result.ranking
    assert data["evaluator"] == "main-effect" and data["trials"] == 30
    for row in data["importances"]:
        assert row["value"] == round(result.values[row["param"]], 4)


def test_maximize_reads_the_best_trials_from_the_top():
    """PED-ANOVA looks at the best trials, so a maximised -f must rank as a minimised f."""
    low = study_of(lr_matters, 60, seed=2)
    high = study_of(lambda trial: -lr_matters(trial), 60, seed=2, direction="maximize")
    for evaluator in ("main-effect", "ped-anova"):
        minimised = importances(low.trials, evaluator=evaluator)
        maximised = importances(high.trials, evaluator=evaluator, direction="maximize")
        assert maximised.ranking == minimised.ranking
        for name in minimised.ranking:
            assert maximised.values[name] == pytest.approx(minimised.values[name])
    flipped = importances(high.trials, evaluator="ped-anova", direction="minimize")
    assert flipped.values != pytest.approx(minimised.values)
