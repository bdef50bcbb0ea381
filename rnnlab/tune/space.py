"""What a study searches: some of RunConfig's settings, each over a range or a list.

    space = parse_space("cell,hidden_size,lr=1e-4:1e-1:log")
    space.params["lr"]           # Param(name='lr', kind='float', low=0.0001, high=0.1, log=True)
    values = space.suggest(trial)               # an Optuna trial picks one value of each
    config = space.config(base, values)         # RunConfig: the base with those values

Which settings can be searched, and how, is read from RunConfig's field metadata, the
table that also drives the sliders, the CLI and the URL: a field with choices is
categorical; a field with a range is an integer or a float. Learning rates and sizes are
searched on a log scale (a factor of two matters as much at 8 units as at 256); the
other numbers on a linear one. A range outside the field's limits is refused with the
field's own message.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError, RunConfig, check_field, field_spec

# Settings a study can search: every one with a range or choices, but what a trial's
# budget, its identity or its machine fix (steps, seed, device, eval_every) and the task.
SEARCHABLE = tuple(
    f.name
    for f in dataclasses.fields(RunConfig)
    if ("range" in f.metadata or "choices" in f.metadata)
    and f.name not in ("task", "steps", "seed", "device", "eval_every")
)
# Searched on a log scale unless a range says otherwise.
LOG_SCALE = frozenset({"lr", "hidden_size", "batch_size", "seq_len"})
# The range a setting is searched over when none is given: narrower than RunConfig's
# limits, sized for a laptop's two cores.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "hidden_size": (8, 128),
    "num_layers": (1, 2),
    "batch_size": (8, 128),
    "seq_len": (10, 100),
    "lr": (1e-4, 1e-1),
    "clip": (0.5, 5.0),
}
# A grid sampler tries this many values of a numeric setting (log-spaced where log).
GRID_POINTS = 3


@dataclass(frozen=True)
class Param:
    """One searched setting: categorical (`choices`) or numeric (`low`..`high`, `log`)."""

    name: str
    kind: str  # "categorical", "int" or "float"
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks for this setting."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def grid(self, points: int = GRID_POINTS) -> list[Any]:
        """The values a grid search tries: every choice, or `points` spread over the range."""
        if self.kind == "categorical":
            return list(self.choices)
        if points < 2 or self.low == self.high:
            return [self.low if self.kind == "float" else int(self.low)]
        if self.log:
            ratio = self.high / self.low
            values = [self.low * ratio ** (i / (points - 1)) for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        if self.kind == "int":
            return sorted({int(round(v)) for v in values})
        return [float(f"{v:.3g}") for v in values]

    def describe(self) -> str:
        """The setting as `parse_space` reads it back: `cell=rnn|lstm`, `lr=0.0001:0.1:log`."""
        if self.kind == "categorical":
            return f"{self.name}={'|'.join(map(str, self.choices))}"
        low, high = (f"{v:g}" for v in (self.low, self.high))
        return f"{self.name}={low}:{high}" + (":log" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "choices": list(self.choices)}


@dataclass(frozen=True)
class SearchSpace:
    """The searched settings, in the order given; every other setting comes from a base."""

    params: Mapping[str, Param]

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: param.suggest(trial) for name, param in self.params.items()}

    def config(self, base: RunConfig, values: Mapping[str, Any]) -> RunConfig:
        """`base` with the searched settings set to `values` (ConfigError if they clash
        with each other or with the base, e.g. init=identity for an LSTM)."""
        return base.replace(**{k: v for k, v in values.items() if k in self.params})

    def grid(self) -> dict[str, list[Any]]:
        """The search space of a grid sampler (GRID_POINTS values per numeric setting)."""
        return {name: param.grid() for name, param in self.params.items()}

    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid().values())

    def describe(self) -> str:
        return ",".join(param.describe() for param in self.params.values())

    def to_dict(self) -> dict[str, Any]:
        return {name: param.to_dict() for name, param in self.params.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        return cls(
            {
                name: Param(**{**p, "choices": tuple(p.get("choices", ()))})
                for name, p in data.items()
            }
        )


def param(
    name: str,
    *,
    choices: Sequence[Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    log: bool | None = None,
) -> Param:
    """One searchable setting, its choices or range defaulting from RunConfig's metadata
    and DEFAULT_RANGES; every value is checked against the field's limits."""
    if name not in SEARCHABLE:
        raise ConfigError(
            f"a study cannot search {name!r}; it can search {', '.join(SEARCHABLE)}", name
        )
    spec = field_spec(name)
    if "choices" in spec:
        if low is not None or high is not None or log:
            raise ConfigError(
                f"{name} takes a list of choices such as {name}=a|b, not a range", name
            )
        if choices is not None and not choices:
            raise ConfigError(f"give at least one choice of {name}", name)
        chosen = tuple(dict.fromkeys(choices)) if choices else tuple(spec["choices"])
        return Param(name, "categorical", choices=tuple(check_field(name, c) for c in chosen))
    if choices is not None:  # a list of numbers, such as powers of two: 16|32|64
        if not choices:
            raise ConfigError(f"give at least one value of {name}", name)
        values = tuple(dict.fromkeys(check_field(name, c) for c in choices))
        return Param(name, "categorical", choices=values)
    kind = spec["type"]
    default_low, default_high = DEFAULT_RANGES.get(name, spec["range"])
    low = default_low if low is None else low
    high = default_high if high is None else high
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{name} must be a whole number, got {low:g}:{high:g}", name)
    for value in (low, high):
        check_field(name, int(value) if kind == "int" else float(value))
    if low > high:
        raise ConfigError(f"{name}'s range {low:g}:{high:g} runs backwards; give low:high", name)
    log = name in LOG_SCALE if log is None else log
    if log and low <= 0:
        raise ConfigError(f"{name} on a log scale must start above 0, got {low:g}", name)
    return Param(name, kind, low=low, high=high, log=log)


def parse_space(text: str) -> SearchSpace:
    """A space from the CLI's form: comma-separated settings, each bare (its default
    range or every choice), `name=lo:hi[:log|:linear]`, or a list `name=a|b|c` (of
    choices, or of numbers such as hidden_size=16|32|64)."""
    params: dict[str, Param] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, spec = (s.strip() for s in item.partition("="))
        if name in params:
            raise ConfigError(f"{name} is searched twice; give it once", name)
        if not spec:
            params[name] = param(name)
        elif ":" in spec:
            parts = spec.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("log", "linear")):
                raise ConfigError(f"read {item!r} as {name}=lo:hi or {name}=lo:hi:log", name)
            try:
                low, high = float(parts[0]), float(parts[1])
            except ValueError:
                raise ConfigError(f"{name}'s range must be numbers, got {spec!r}", name) from None
            log = None if len(parts) == 2 else parts[2] == "log"
            params[name] = param(name, low=low, high=high, log=log)
        else:
            params[name] = param(name, choices=[c.strip() for c in spec.split("|") if c.strip()])
    if not params:
        raise ConfigError("search at least one setting, e.g. --search cell,lr")
    return SearchSpace(params)


def check_space(space: SearchSpace, base: RunConfig) -> None:
    """Refuse a space whose largest run RunConfig refuses (too much work or memory), or
    that leaves no valid combination with the base: the field's message names the cause."""
    largest = {
        name: p.high if p.kind != "int" else int(p.high)
        for name, p in space.params.items()
        if p.kind != "categorical"
        and name in ("hidden_size", "num_layers", "batch_size", "seq_len")
    }
    if largest:
        try:
            base.replace(**largest)
        except ConfigError as error:
            point = ", ".join(f"{k}={v}" for k, v in largest.items())
            raise ConfigError(
                f"the largest run of this space ({point}): {error}", error.field
            ) from None
