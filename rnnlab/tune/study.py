"""Search from Python: `tune()` trains a study's trials and returns a Study to read.

    from rnnlab import RunConfig, tune
    study = tune("cell,hidden_size,lr=1e-4:1e-1:log", RunConfig(task="adding", steps=1500),
                 trials=40, sampler="tpe", pruner="halving")
    study.best_value, study.best_settings          # the best trial's objective and settings
    study.table()                                  # one row per trial
    study.importances()                            # what matters, with intervals
    study.optuna                                   # the optuna.Study itself

No Streamlit: the same runner serves the dashboard's Explore page (rnnlab.tune.runner).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..config import RunConfig
from ..jobs import JobManager
from ..values import finite_or_none
from .runner import StudyRunner
from .settings import StudySettings
from .space import SearchSpace, parse_space
from .storage import storage_path

# The states a trial can end in, as rnnlab names them.
STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
}


def best_trial(
    trials: list[optuna.trial.FrozenTrial], direction: str
) -> optuna.trial.FrozenTrial | None:
    """The complete trial with the best objective in `direction`; None before any."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    pick = max if direction == "maximize" else min
    return pick(complete, key=lambda t: t.value)


@dataclass
class Study:
    """A study as its storage holds it: trials, best so far, importances."""

    name: str
    storage: str  # the journal file
    settings: StudySettings
    optuna: optuna.Study
    wall_s: float = 0.0
    interrupted: bool = False

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.optuna.get_trials(deepcopy=False)

    def finished(self) -> list[optuna.trial.FrozenTrial]:
        """Complete and pruned trials: the ones drawn as finished."""
        return [t for t in self.trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]

    def counts(self) -> dict[str, int]:
        counts = Counter(STATES.get(t.state, str(t.state)) for t in self.trials())
        return {
            state: counts.get(state, 0) for state in ("complete", "pruned", "failed", "running")
        }

    @property
    def best(self) -> optuna.trial.FrozenTrial | None:
        return best_trial(self.trials(), self.settings.direction)

    @property
    def best_value(self) -> float | None:
        best = self.best
        return None if best is None else best.value

    @property
    def best_settings(self) -> dict[str, Any] | None:
        """The best trial's searched settings."""
        best = self.best
        return None if best is None else dict(best.params)

    def best_config(self) -> RunConfig | None:
        """The base run with the best trial's settings: what to train next."""
        settings = self.best_settings
        return (
            None if settings is None else self.settings.space.config(self.settings.base, settings)
        )

    def table(self) -> pd.DataFrame:
        """One row per trial: number, state, value, its settings, steps, CPU-seconds, run."""
        rows = [
            {
                "trial": t.number,
                "state": STATES.get(t.state, str(t.state)),
                "value": t.value,
                **t.params,
                "steps": t.user_attrs.get("steps"),
                "cpu_s": t.user_attrs.get("cpu_s"),
                "run_id": t.user_attrs.get("run_id"),
            }
            for t in self.trials()
        ]
        return pd.DataFrame(rows)

    def importances(self, evaluator: str | None = None, **options: Any) -> Any:
        """What matters (rnnlab.tune.importance.importances) over the finished trials."""
        from .importance import importances

        chosen = {} if evaluator is None else {"evaluator": evaluator}
        return importances(
            self.trials(),
            list(self.settings.space.params),
            direction=self.settings.direction,
            **chosen,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        """The study in one JSON-ready object (the CLI's `--json` line)."""
        return {
            "study": self.name,
            "storage": self.storage,
            "direction": self.settings.direction,
            "objective": self.settings.describe_objective(),
            "space": self.settings.space.describe(),
            "sampler": self.settings.sampler,
            "pruner": self.settings.pruner,
            "best_value": finite_or_none(self.best_value),
            "best_trial": None if self.best is None else self.best.number,
            "best_settings": self.best_settings,
            "counts": self.counts(),
            "wall_s": round(self.wall_s, 3),
            "importances": self.importances().to_dict(),
        }


def tune(
    space: SearchSpace | str,
    base: RunConfig | None = None,
    *,
    trials: int = 20,
    sampler: str = "tpe",
    pruner: str = "halving",
    objective: str = "loss",
    seed: int = 0,
    study: str | None = None,
    manager: JobManager | None = None,
    executor: str = "local",
    parallel: int | None = None,
    owner: str = "tune",
    on_change: Callable[[StudyRunner], None] | None = None,
    stop: threading.Event | None = None,
) -> Study:
    """Search `space` (a SearchSpace or the CLI's text form) around `base` with `trials`
    trials of `base.steps` steps each, and return the study once every trial has ended.

    `study` names it (default: a new name); an existing study of that name is resumed
    with the settings it was made with. The trials train on `manager` (default: a pool
    of this process's own, or Ray actors with executor="ray"), at most `parallel` at a
    time (default: as many as the pool runs for one owner). Ctrl-C stops the trials
    under way and returns what finished, with `interrupted` set; so does setting `stop`
    (from a signal handler, say). on_change(runner) is called about four times a second
    while trials train, e.g. to draw progress.
    """
    space = parse_space(space) if isinstance(space, str) else space
    settings = StudySettings(
        space, base or RunConfig(), sampler=sampler, pruner=pruner, objective=objective, seed=seed
    )
    close = None
    if manager is None:
        manager, close = _own_manager(executor)
    name = study or f"study-{secrets.token_hex(3)}"
    start = time.perf_counter()
    interrupted = False
    try:
        runner = StudyRunner.open(name, manager, settings, parallel=parallel)
        runner.add(owner, trials)
        while True:
            try:
                done = runner.wait(timeout=0.25)
                if on_change is not None:
                    on_change(runner)
                if done:
                    break
                if stop is not None and stop.is_set() and not interrupted:
                    interrupted = True
                    runner.stop()
            except KeyboardInterrupt:
                interrupted = True
                runner.stop()
    finally:
        if close is not None:
            close()
    return Study(
        name=name,
        storage=str(storage_path(manager.store.path)),
        settings=runner.settings,
        optuna=runner.study,
        wall_s=time.perf_counter() - start,
        interrupted=interrupted,
    )


def _own_manager(executor: str) -> tuple[JobManager, Callable[[], None]]:
    """A pool for one study (local processes, or Ray actors) and what closes it."""
    if executor == "ray":
        from ..sweep import RayExecutor

        ray = RayExecutor()
        return ray.manager, ray.close
    manager = JobManager(max_queued_per_owner=None, orphan_after_s=None)
    return manager, lambda: manager.shutdown(timeout=30)
