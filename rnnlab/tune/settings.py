"""A study's settings: its space, the base run, the sampler, the pruner and the objective.

They are kept in the study's own storage (the study's user attribute `rnnlab`), so a
study reopened by name, after a restart or from another process, searches as it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from ..config import ConfigError, RunConfig
from ..specs import task_spec
from .space import SearchSpace, check_space

SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("halving", "median", "none")
OBJECTIVES = ("loss", "metric", "steps_to_solve")
# steps_to_solve of a trial that never solved the task: this many times its steps.
UNSOLVED_PENALTY = 2.0
# The median pruner waits for this many finished trials, and for this fraction of a
# trial's steps, before it stops anything.
MEDIAN_STARTUP_TRIALS = 5
MEDIAN_WARMUP = 0.1
# Successive halving first judges a trial after steps / HALVING_FIRST_RUNG, then keeps
# the best 1 / HALVING_KEEP of the trials at each rung.
HALVING_FIRST_RUNG = 9
HALVING_KEEP = 3


@dataclass(frozen=True)
class StudySettings:
    """How a study searches. `base` fixes every setting the space does not search, and
    its `steps` is each trial's budget; `seed` seeds the sampler (every trial trains
    with the base's seed, so trials differ only in what is searched)."""

    space: SearchSpace
    base: RunConfig
    sampler: str = "tpe"
    pruner: str = "halving"
    objective: str = "loss"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("sampler", self.sampler, SAMPLERS),
            ("pruner", self.pruner, PRUNERS),
            ("objective", self.objective, OBJECTIVES),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"{name} must be one of {', '.join(allowed)}, got {value!r}", name
                )
        check_space(self.space, self.base)

    @property
    def direction(self) -> str:
        """Optuna's direction: the task's metric may be one that grows (accuracy)."""
        grows = self.objective == "metric" and task_spec(self.base).higher_is_better
        return "maximize" if grows else "minimize"

    def describe_objective(self) -> str:
        """The objective in words, with the penalty an unsolved trial gets."""
        if self.objective == "loss":
            return "final held-out loss (lower is better)"
        if self.objective == "metric":
            spec = task_spec(self.base)
            better = "higher" if spec.higher_is_better else "lower"
            return f"final held-out {spec.metric_name} ({better} is better)"
        penalty = UNSOLVED_PENALTY * self.base.steps
        return f"steps to solve (lower is better; a trial that never solves counts {penalty:g})"

    def value(self, summary: dict[str, Any] | None) -> float | None:
        """A finished trial's objective from its run's summary; None if it has none."""
        summary = summary or {}
        if self.objective == "steps_to_solve":
            solved_at = summary.get("solved_at_step")
            return float(solved_at) if solved_at else UNSOLVED_PENALTY * self.base.steps
        value = summary.get("final_loss" if self.objective == "loss" else "metric")
        return None if value is None else float(value)

    def intermediate(self, loss: float | None, metric: float | None) -> float | None:
        """What an evaluation reports to the pruner: the objective's own measure where an
        evaluation has it, else the held-out loss (steps to solve falls as it falls)."""
        return metric if self.objective == "metric" else loss

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=self.seed)
        if self.sampler == "grid":
            return optuna.samplers.GridSampler(self.space.grid(), seed=self.seed)
        if self.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=self.seed)
        # Optuna 5's TPE lies "constant" about running trials, so trials asked while
        # others train do not pile onto the same point.
        return optuna.samplers.TPESampler(seed=self.seed)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "halving":
            # Judged first after a ninth of the budget, keeping the best third at each
            # rung (steps/9, steps/3). Optuna's "auto" judges after 1 % of the first
            # trial's steps: on the adding problem, where every cell sits on the
            # baseline for a few hundred steps, it stopped 18 of 20 trials at their
            # first evaluation, LSTMs about to learn among them.
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=max(1, self.base.steps // HALVING_FIRST_RUNG),
                reduction_factor=HALVING_KEEP,
            )
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=MEDIAN_STARTUP_TRIALS,
                n_warmup_steps=int(self.base.steps * MEDIAN_WARMUP),
            )
        return optuna.pruners.NopPruner()

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "base": self.base.to_dict(),
            "sampler": self.sampler,
            "pruner": self.pruner,
            "objective": self.objective,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        return cls(
            space=SearchSpace.from_dict(data["space"]),
            base=RunConfig(**data["base"]),
            sampler=data["sampler"],
            pruner=data["pruner"],
            objective=data["objective"],
            seed=data["seed"],
        )
