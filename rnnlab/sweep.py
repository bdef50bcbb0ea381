"""Sweeps: train a grid of configs (one or two settings, times seeds) and tabulate them.

    grid = Grid(RunConfig(task="adding", steps=1500),
                {"cell": ["rnn", "lstm", "gru"], "seq_len": [10, 50, 100]}, seeds=[0, 1])
    result = run_sweep(grid)        # on this process's worker pool
    result.table()                  # one row per run: metric, solved, steps to solve, wall time
    result.summary()                # one row per grid cell, over its seeds

Where the runs train is up to the executor. LocalExecutor feeds them to a JobManager a
few at a time (never more than its owner may have waiting, so a sweep takes turns with
everyone else's runs); RayExecutor feeds them to a job manager of its own whose workers
are Ray actors on a cluster (rnnlab.cluster). Any other needs only the same `run` and
`cancel` methods, and callers do not change.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from .cluster import connect, import_ray
from .config import ConfigError, RunConfig
from .jobs import JobManager, QueueFull, get_manager
from .store import RunStore, open_store
from .values import finite_or_none

MAX_AXES = 2
MAX_RUNS = 256
# Settings a sweep can vary: every one with a range or a list of choices; seeds have
# their own list.
SWEEPABLE = tuple(
    f.name
    for f in dataclasses.fields(RunConfig)
    if ("range" in f.metadata or "choices" in f.metadata) and f.name != "seed"
)
# How long the local executor waits before looking again (and noticing Ctrl-C).
POLL_S = 0.25


@dataclass(frozen=True)
class Grid:
    """The runs of a sweep: `base` with every combination of `axes` values, per seed.

    Values may be given typed or as text ("50"); they are checked like any RunConfig,
    and the error names the combination that is invalid.
    """

    base: RunConfig
    axes: Mapping[str, Sequence[Any]]  # setting -> values, at most two settings
    seeds: Sequence[int | str] = ()  # default: the base config's seed
    _configs: tuple[RunConfig, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.axes) > MAX_AXES:
            raise ConfigError(
                f"a sweep varies at most {MAX_AXES} settings (got {', '.join(self.axes)}); "
                "fix the others to one value",
                next(iter(self.axes)),
            )
        for name, values in self.axes.items():
            if name not in SWEEPABLE:
                allowed = "seeds" if name == "seed" else ", ".join(SWEEPABLE)
                raise ConfigError(f"a sweep cannot vary {name!r}; it can vary {allowed}", name)
            if not values:
                raise ConfigError(f"give at least one value of {name}", name)
        seeds = tuple(self.seeds) or (self.base.seed,)
        runs = math.prod(len(v) for v in self.axes.values()) * len(seeds)
        if runs > MAX_RUNS:
            raise ConfigError(
                f"this sweep has {runs} runs, more than the {MAX_RUNS} allowed; "
                "use fewer values or seeds"
            )
        configs = [
            self._point(dict(zip(self.axes, combination, strict=True)), seed)
            for combination in itertools.product(*self.axes.values())
            for seed in seeds
        ]
        typed_axes = {name: _distinct(getattr(c, name) for c in configs) for name in self.axes}
        typed_seeds = _distinct(c.seed for c in configs)
        for name, values in [*typed_axes.items(), ("seed", typed_seeds)]:
            given = len(self.axes[name]) if name != "seed" else len(seeds)
            if len(values) != given:
                raise ConfigError(f"the values of {name} repeat", name)
        object.__setattr__(self, "axes", typed_axes)
        object.__setattr__(self, "seeds", typed_seeds)
        object.__setattr__(self, "_configs", tuple(configs))

    def _point(self, changes: dict[str, Any], seed: int | str) -> RunConfig:
        values = {**self.base.to_dict(), **changes, "seed": seed}
        try:
            return RunConfig.from_strings(values)
        except ConfigError as error:
            if error.field in changes or error.field == "seed":
                raise
            point = ", ".join(f"{k}={v}" for k, v in changes.items())
            raise ConfigError(f"with {point}: {error}", error.field) from None

    def configs(self) -> list[RunConfig]:
        """Every run, axis by axis and then seed by seed."""
        return list(self._configs)

    def point(self, config: RunConfig) -> dict[str, Any]:
        """The grid coordinates of a config: its axis values and seed."""
        return {**{name: getattr(config, name) for name in self.axes}, "seed": config.seed}

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "axes": {name: list(values) for name, values in self.axes.items()},
            "seeds": list(self.seeds),
        }


def _distinct(values: Any) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class RunResult:
    """How one run of a sweep ended."""

    run_id: str
    config: RunConfig
    status: str
    summary: dict[str, Any] | None = None  # train()'s summary, if the run started
    error: str | None = None


class Executor(Protocol):
    """Where a sweep's runs train. Implement these two methods to add another."""

    def run(
        self, configs: Sequence[RunConfig], *, sweep_id: str, owner: str
    ) -> Iterator[RunResult]:
        """Train every config; yield each result as its run finishes, in any order."""
        ...

    def cancel(self) -> None:
        """Stop the runs under way and drop the rest (callable from any thread)."""
        ...


class LocalExecutor:
    """Trains on a JobManager (this process's shared one unless given).

    Keeps no more runs waiting than the owner may, submitting the next as others start,
    so other people's runs interleave with the sweep's. Ctrl-C while it waits cancels
    the sweep; the runs cut short come back as `stopped`.
    """

    def __init__(self, manager: JobManager | None = None):
        self._manager = manager
        self._active: dict[str, RunConfig] = {}
        self._lock = threading.Lock()
        self._cancelled = False

    @property
    def manager(self) -> JobManager:
        if self._manager is None:
            self._manager = get_manager()
        return self._manager

    @property
    def store(self) -> RunStore:
        return self.manager.store

    def run(
        self, configs: Sequence[RunConfig], *, sweep_id: str, owner: str
    ) -> Iterator[RunResult]:
        manager = self.manager
        pending = collections.deque(configs)
        self._cancelled = False
        cancelled = False
        while pending or self._active:
            if self._cancelled and not cancelled:
                cancelled = True
                pending.clear()
                for run_id in list(self._active):
                    manager.cancel(run_id)
            while pending:
                try:
                    run_id = manager.submit(
                        pending[0], owner=owner, sweep_id=sweep_id, snapshot_every_s=math.inf
                    )
                except QueueFull:
                    if not self._active:
                        raise
                    break
                with self._lock:
                    self._active[run_id] = pending.popleft()
            if not self._active:
                break
            try:
                finished = manager.wait_any(list(self._active), timeout=POLL_S)
            except KeyboardInterrupt:
                self.cancel()
                continue
            for run_id in finished:
                with self._lock:
                    config = self._active.pop(run_id)
                progress = manager.progress(run_id)
                yield RunResult(
                    run_id=run_id,
                    config=config,
                    status=progress.status if progress else "failed",
                    summary=progress.summary if progress else None,
                    error=progress.error if progress else "the run disappeared",
                )

    def cancel(self) -> None:
        """Takes no lock, so a signal handler may call it; run() acts within POLL_S."""
        self._cancelled = True


class RayExecutor(LocalExecutor):
    """Trains on a Ray cluster: a job manager of its own whose workers are Ray actors,
    one per CPU of the cluster (rnnlab.cluster), recording into `store` as the runs go.

    `address` None joins this process's Ray runtime or starts a local one with
    `num_cpus` CPUs (None: every core). The whole sweep is queued at once; the pool
    trains as many runs at a time as a local pool of that size would.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        store: RunStore | None = None,
    ):
        super().__init__()
        self.address, self.num_cpus, self._store = address, num_cpus, store
        self._connected = False

    def connect(self) -> None:
        """Join the cluster or start the local runtime now (run() does it otherwise)."""
        self._connected = connect(self.address, num_cpus=self.num_cpus) or self._connected

    @property
    def manager(self) -> JobManager:
        if self._manager is None:
            self.connect()
            self._manager = JobManager(
                executor="ray",
                ray_address=self.address,
                store=self._store,
                max_queued_per_owner=None,
                orphan_after_s=None,
            )
        return self._manager

    def close(self) -> None:
        """Stop the pool's actors; leave the cluster (a local runtime stops) if this
        executor joined it."""
        if self._manager is not None:
            self._manager.shutdown(timeout=10)
            self._manager = None
        if self._connected:
            import_ray().shutdown()
            self._connected = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class SweepResult:
    """A sweep's grid and the results of the runs that finished, in grid order."""

    sweep_id: str
    grid: Grid
    results: list[RunResult]
    wall_s: float

    def row(self, result: RunResult) -> dict[str, Any]:
        """One run as a flat, JSON-ready row of the result table."""
        return {
            "run_id": result.run_id,
            "sweep_id": self.sweep_id,
            **self.grid.point(result.config),
            **_outcome(result.status, result.summary, result.error),
            "config": result.config.to_dict(),
        }

    def table(self) -> pd.DataFrame:
        """One row per run: grid point, status, final metric, solved, steps to solve, wall s."""
        order = {config: i for i, config in enumerate(self.grid.configs())}
        results = sorted(self.results, key=lambda r: order.get(r.config, len(order)))
        table = pd.DataFrame([self.row(r) for r in results])
        if table.empty:
            return table
        numbers = {"metric": float, "final_loss": float, "wall_s": float}
        return table.drop(columns="config").astype({**numbers, "steps_to_solve": "Int64"})

    def summary(self) -> pd.DataFrame:
        """One row per grid cell: runs, mean final metric, solved count, median steps to solve."""
        table = self.table()
        axes = list(self.grid.axes)
        groups = table.groupby(axes, sort=False) if axes else [((), table)]
        rows = []
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            rows.append(
                {
                    **dict(zip(axes, key, strict=True)),
                    "runs": len(group),
                    "completed": int((group["status"] == "completed").sum()),
                    "metric": _mean(group["metric"]),
                    "solved": int(group["solved"].sum()),
                    "steps_to_solve": _median(group["steps_to_solve"]),
                    "wall_s": _mean(group["wall_s"]),
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """The sweep in one JSON-ready object (the CLI's final `{"summary": ...}` line)."""
        table = self.table()
        statuses = table["status"].value_counts().to_dict() if len(table) else {}
        metric_names = table["metric_name"].dropna().unique().tolist() if len(table) else []
        return {
            "sweep_id": self.sweep_id,
            "runs": len(self.grid.configs()),
            "finished": len(self.results),
            "statuses": {str(k): int(v) for k, v in statuses.items()},
            "solved": int(table["solved"].sum()) if len(table) else 0,
            "wall_s": round(self.wall_s, 3),
            "metric_name": metric_names[0] if len(metric_names) == 1 else None,
            **self.grid.to_dict(),
            "cells": [
                {k: finite_or_none(v) for k, v in row.items()}
                for row in self.summary().to_dict("records")
            ],
        }


def _outcome(status: str, summary: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    """The result-table columns that say how a run ended."""
    summary = summary or {}
    return {
        "status": status,
        "metric_name": summary.get("metric_name"),
        "metric": summary.get("metric"),
        "final_loss": summary.get("final_loss"),
        "solved": bool(summary.get("solved")),
        "steps_to_solve": summary.get("solved_at_step"),
        "steps": summary.get("steps", 0),
        "wall_s": summary.get("wall_s"),
        "error": error,
    }


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _median(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def run_sweep(
    grid: Grid,
    *,
    executor: Executor | None = None,
    owner: str = "sweep",
    on_result: Callable[[RunResult, SweepResult], None] | None = None,
) -> SweepResult:
    """Train every run of `grid` and return the results (runs land in the store too).

    Ctrl-C cancels the sweep and returns what finished, the cut-short runs as `stopped`.
    on_result(result, sweep_so_far) is called as each run finishes, e.g. to print it.
    """
    executor = executor if executor is not None else LocalExecutor()
    sweep = SweepResult(sweep_id=secrets.token_hex(4), grid=grid, results=[], wall_s=0.0)
    start = time.perf_counter()
    results = executor.run(grid.configs(), sweep_id=sweep.sweep_id, owner=owner)
    while True:
        try:
            result = next(results)
        except StopIteration:
            break
        except KeyboardInterrupt:
            executor.cancel()
            continue
        sweep.results.append(result)
        sweep.wall_s = time.perf_counter() - start
        if on_result is not None:
            on_result(result, sweep)
    sweep.wall_s = time.perf_counter() - start
    return sweep


def sweep_table(sweep_id: str, store: RunStore | None = None) -> pd.DataFrame:
    """A past sweep's result table, rebuilt from the store (axes: the settings that vary)."""
    store = store if store is not None else open_store()
    runs = sorted(store.list_runs(sweep_id=sweep_id), key=lambda run: run.created_at)
    varying = [name for name in SWEEPABLE if len({run.config.get(name) for run in runs}) > 1]
    return pd.DataFrame(
        [
            {
                "run_id": run.id,
                **{name: run.config.get(name) for name in varying},
                "seed": run.config.get("seed"),
                **_outcome(run.status, run.summary, run.error),
            }
            for run in runs
        ]
    )
