"""A study as the Explore page draws it: one JSON-ready dict, made once per change.

    view = study_view(runner)            # the same for every viewer, cached by version
    answer = {**view, "mine": mine(runner, owner)}

What it holds: the settings (the space, with each setting's kind and scale), the counts
per state, every trial (its state, objective, settings, held-out curve, where a pruned
one stopped, CPU-seconds, who asked for it), the best trial, best-so-far against
finished trials and against CPU-seconds, the settings that vary, and what matters.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from optuna.trial import TrialState

from ..jobs.feed import public_config
from ..values import finite_or_none
from .importance import importances
from .runner import StudyRunner
from .study import STATES, best_trial

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

_cache: dict[int, tuple[int, dict[str, Any]]] = {}  # id(runner) -> (version, view)
# id(runner) -> (complete trials, the default evaluator's importances): the latest only.
_importance_cache: dict[int, tuple[int, dict[str, Any] | None]] = {}
_lock = threading.Lock()


def study_view(runner: StudyRunner) -> dict[str, Any]:
    """The study as every viewer sees it; recomputed only when the runner has changed."""
    version = runner.version
    key = id(runner)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
    view = _build(runner)
    with _lock:
        _cache[key] = (version, view)
    return view


def mine(runner: StudyRunner, owner: str) -> list[int]:
    """The numbers of the trials `owner` asked for that this process knows of."""
    return [f.number for f in runner.running(owner)] + runner.finished_by(owner)


def _build(runner: StudyRunner) -> dict[str, Any]:
    settings, manager = runner.settings, runner.manager
    trials = runner.study.get_trials(deepcopy=False)
    curves = runner.curves()
    running = {f.number: f for f in runner.running()}
    rows = []
    for trial in trials:
        followed = running.get(trial.number)
        state = STATES.get(trial.state, "waiting")
        cpu_s = trial.user_attrs.get("cpu_s")
        run_id = trial.user_attrs.get("run_id") or (followed and followed.run_id)
        if followed is not None and followed.run_id is not None:
            progress = manager.progress(followed.run_id)
            if progress is not None:
                state = "queued" if progress.status == "queued" else "running"
                cpu_s = round(progress.cpu_s, 3)
        curve = curves.get(trial.number)
        if curve is None:
            curve = sorted(trial.intermediate_values.items())
        rows.append(
            {
                "number": trial.number,
                "state": state,
                "value": finite_or_none(trial.value),
                "params": dict(trial.params) or (followed.values if followed else {}),
                "steps": trial.user_attrs.get("steps"),
                "cpu_s": cpu_s,
                "run_id": run_id,
                "who": runner.label_of(trial.number),
                "error": trial.user_attrs.get("error") if state == "failed" else None,
                "pruned_at": trial.last_step if trial.state == TrialState.PRUNED else None,
                "curve": {
                    "step": [int(s) for s, _ in curve],
                    "value": [finite_or_none(v) for _, v in curve],
                },
            }
        )
    counts = {state: 0 for state in ("complete", "pruned", "failed", "running", "queued")}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    counts["to_ask"] = runner.remaining()
    finished = [t for t in trials if t.state in FINISHED]
    return {
        "study": runner.name,
        "version": runner.version,
        "busy": runner.busy(),
        "settings": {
            "space": [p.to_dict() for p in settings.space.params.values()],
            "sampler": settings.sampler,
            "pruner": settings.pruner,
            "objective": settings.objective,
            "objective_text": settings.describe_objective(),
            "direction": settings.direction,
            "task": settings.base.task,
            "steps": settings.base.steps,
            "base": public_config(settings.base.to_dict()),
        },
        "counts": counts,
        "drawn": len(finished),
        "trials": rows,
        "best": _best(trials, settings.direction),
        "best_so_far": best_so_far(trials, settings.direction),
        "varying": varying(trials, list(settings.space.params)),
        "importances": _importances(runner, trials),
    }


def _best(trials: list, direction: str) -> dict[str, Any] | None:
    best = best_trial(trials, direction)
    if best is None:
        return None
    return {"number": best.number, "value": finite_or_none(best.value), "params": best.params}


def best_so_far(trials: list, direction: str) -> dict[str, list]:
    """The best objective after each trial that ended, in the order they ended, against
    the count of ended trials and against the CPU-seconds every ended trial took (pruned
    and failed ones cost time without ever being best)."""
    ended = sorted(
        (t for t in trials if t.state.is_finished() and t.datetime_complete is not None),
        key=lambda t: t.datetime_complete,
    )
    better = (lambda a, b: a > b) if direction == "maximize" else (lambda a, b: a < b)
    best, spent = None, 0.0
    series: dict[str, list] = {"trials": [], "cpu_s": [], "value": [], "number": []}
    for count, trial in enumerate(ended, start=1):
        spent += float(trial.user_attrs.get("cpu_s") or 0.0)
        complete = trial.state == TrialState.COMPLETE and math.isfinite(trial.value)
        if complete and (best is None or better(trial.value, best)):
            best = trial.value
        series["trials"].append(count)
        series["cpu_s"].append(round(spent, 3))
        series["value"].append(finite_or_none(best))
        series["number"].append(trial.number)
    return series


def varying(trials: list, names: list[str]) -> list[str]:
    """The searched settings that take more than one value among the finished trials:
    the only axes worth drawing."""
    finished = [t for t in trials if t.state in FINISHED]
    return [n for n in names if len({repr(t.params.get(n)) for t in finished}) > 1]


def _importances(runner: StudyRunner, trials: list) -> dict[str, Any]:
    """What matters by the default evaluator, recomputed when a trial completes."""
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    with _lock:
        cached = _importance_cache.get(id(runner))
        if cached is not None and cached[0] == complete:
            return cached[1]
    result = study_importances(runner, trials=trials)
    with _lock:
        _importance_cache[id(runner)] = (complete, result)
    return result


def study_importances(
    runner: StudyRunner, evaluator: str | None = None, *, trials: list | None = None
) -> dict[str, Any]:
    """What matters in the study by `evaluator` (default: importance's own), as a dict
    (Importances.to_dict())."""
    chosen = {} if evaluator is None else {"evaluator": evaluator}
    return importances(
        trials if trials is not None else runner.study.get_trials(deepcopy=False),
        list(runner.settings.space.params),
        direction=runner.settings.direction,
        **chosen,
    ).to_dict()
