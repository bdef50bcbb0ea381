"""Reading runs back: one run, lists of runs as records or a table, history, snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

from ..config import RunConfig
from .database import RunNotFound, json_or_none
from .liveness import Liveness
from .schema import ACTIVE_STATUSES, EVALUATION_COLUMNS, STEP_COLUMNS


@dataclass(frozen=True)
class RunRecord:
    """One run as the store holds it (history and snapshot are read separately)."""

    id: str
    status: str
    owner: str
    sweep_id: str | None
    config: dict[str, Any]
    created_at: float  # seconds since the epoch
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    step: int = 0  # the latest step recorded
    info: dict[str, Any] | None = None  # the Started event: device, parameters, baseline, ...
    summary: dict[str, Any] | None = None  # the Finished event's summary
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    pinned: bool = False  # its owner asked to keep its weights and history (retention)
    study: str | None = None  # the study it is a trial of (rnnlab.tune), and which trial
    trial: int | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_RUN_FIELDS = tuple(f.name for f in fields(RunRecord))
_JSON_FIELDS = ("config", "info", "summary")


def _record(row: tuple) -> RunRecord:
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    for name in _JSON_FIELDS:
        values[name] = json_or_none(values[name])
    values["pinned"] = bool(values["pinned"])
    return RunRecord(**values)


class Queries(Liveness):
    """RunStore's reading part: each thread reads on its own connection."""

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; RunNotFound if there is none."""
        row = (
            self._reader()
            .execute(f"SELECT {', '.join(_RUN_FIELDS)} FROM runs WHERE id = ?", (run_id,))
            .fetchone()
        )
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return _record(row)

    def resolve_id(self, prefix: str) -> str:
        """The id of the one run whose id starts with `prefix` (as git does with commits)."""
        if not prefix or not all(c in "0123456789abcdef" for c in prefix.lower()):
            raise RunNotFound(f"no run with id {prefix!r}")
        rows = (
            self._reader()
            .execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? LIMIT 2",
                (prefix.lower(), prefix.lower() + "g"),
            )
            .fetchall()
        )
        if not rows:
            raise RunNotFound(f"no run with id {prefix!r}")
        if len(rows) > 1:
            raise RunNotFound(f"{prefix!r} matches several runs; give more of the id")
        return rows[0][0]

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        owner: str | None = None,
        sweep_id: str | None = None,
        study: str | None = None,
        config: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by status, owner, sweep, study and config values.

        `config={"task": "adding", "cell": "lstm"}` keeps runs whose config has those values.
        """
        self._recover_now_and_then()
        where, parameters = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            parameters += statuses
        if owner is not None:
            where.append("owner = ?")
            parameters.append(owner)
        if sweep_id is not None:
            where.append("sweep_id = ?")
            parameters.append(sweep_id)
        if study is not None:
            where.append("study = ?")
            parameters.append(study)
        known = {f.name for f in fields(RunConfig)}
        for name, value in (config or {}).items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            where.append("json_extract(config, ?) = ?")
            parameters += [f"$.{name}", value]
        query = f"SELECT {', '.join(_RUN_FIELDS)} FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY created_at DESC, id"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(int(limit))
        return [_record(row) for row in self._reader().execute(query, parameters)]

    def runs_frame(self, **filters: Any) -> pd.DataFrame:
        """list_runs(**filters) as a table: one row per run, config and summary flattened."""
        rows = []
        for run in self.list_runs(**filters):
            summary = run.summary or {}
            rows.append(
                {
                    "id": run.id,
                    "status": run.status,
                    "owner": run.owner,
                    "pinned": run.pinned,
                    "sweep_id": run.sweep_id,
                    "study": run.study,
                    "trial": run.trial,
                    "created_at": run.created_at,
                    "finished_at": run.finished_at,
                    **run.config,
                    "step": run.step,
                    "final_loss": summary.get("final_loss"),
                    "best_loss": summary.get("best_loss"),
                    "metric_name": summary.get("metric_name"),
                    "metric": summary.get("metric"),
                    "solved": summary.get("solved"),
                    "solved_at_step": summary.get("solved_at_step"),
                    "wall_s": summary.get("wall_s"),
                    "steps_per_s": summary.get("steps_per_s"),
                }
            )
        frame = pd.DataFrame(rows)
        for column in ("created_at", "finished_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
        return frame

    def history(self, run_id: str) -> pd.DataFrame:
        """Every recorded training step: step, loss, grad_norm, elapsed_s."""
        rows = (
            self._reader()
            .execute(
                "SELECT step, loss, grad_norm, elapsed_s FROM steps WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
            .fetchall()
        )
        return pd.DataFrame.from_records(rows, columns=list(STEP_COLUMNS)).astype(
            {"step": "int64", "loss": "float64", "grad_norm": "float64", "elapsed_s": "float64"}
        )

    def evaluations(self, run_id: str) -> pd.DataFrame:
        """Every held-out evaluation: step, loss, metric, solved, elapsed_s."""
        rows = (
            self._reader()
            .execute(
                "SELECT step, loss, metric, solved, elapsed_s FROM evaluations"
                " WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
            .fetchall()
        )
        return pd.DataFrame.from_records(rows, columns=list(EVALUATION_COLUMNS)).astype(
            {
                "step": "int64",
                "loss": "float64",
                "metric": "float64",
                "solved": "bool",
                "elapsed_s": "float64",
            }
        )

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        """The latest snapshot recorded for the run, or None."""
        row = (
            self._reader()
            .execute("SELECT data FROM snapshots WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    def weights(self, run_id: str) -> bytes | None:
        """The run's trained weights as kept (an rnnlab .pt file, see rnnlab.weights), or
        None: only runs that finished keep them. rnnlab.weights_file_bytes adds the run's
        id and summary, for a download."""
        row = (
            self._reader()
            .execute("SELECT data FROM weights WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def weights_size(self, run_id: str) -> int | None:
        """How many bytes the run's kept weights take, or None if it keeps none (read
        without reading the weights)."""
        row = (
            self._reader()
            .execute("SELECT length(data) FROM weights WHERE run_id = ?", (run_id,))
            .fetchone()
        )
        return None if row is None else row[0]

    def _exists(self, run_id: str) -> bool:
        return (
            self._reader().execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
            is not None
        )
