"""Runs in and out of the store as files: JSON (everything, importable) and CSV (history)."""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..values import finite_or_none
from .database import StoreError, insert
from .queries import Queries
from .schema import (
    ACTIVE_STATUSES,
    EVALUATION_COLUMNS,
    SCHEMA_VERSION,
    STATUSES,
    STEP_COLUMNS,
)


class Transfer(Queries):
    """RunStore's export and import."""

    def export_run(self, run_id: str, format: str = "json") -> str:
        """The run as text: 'json' (everything; import_run reads it back) or 'csv' (history).

        The CSV has one row per step, with the held-out loss, metric and solved flag on the
        steps that were evaluated; NaN and infinities are written as empty fields / null.
        """
        if format not in EXPORT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}")
        return EXPORT_FORMATS[format](self, run_id)

    def _export_json(self, run_id: str) -> str:
        record = self.get_run(run_id)
        history, evaluations = self.history(run_id), self.evaluations(run_id)
        document = {
            "rnnlab_run": SCHEMA_VERSION,
            "run": record.to_dict(),
            "steps": {c: history[c].tolist() for c in STEP_COLUMNS},
            "evaluations": {c: evaluations[c].tolist() for c in EVALUATION_COLUMNS},
            "snapshot": self.snapshot(run_id),
        }
        return json.dumps(finite_or_none(document), allow_nan=False)

    def _export_csv(self, run_id: str) -> str:
        self.get_run(run_id)
        evaluations = self.evaluations(run_id).drop(columns="elapsed_s")
        evaluations.columns = ["step", "eval_loss", "eval_metric", "eval_solved"]
        table = self.history(run_id).merge(evaluations, on="step", how="outer")
        text = io.StringIO()
        table.to_csv(text, index=False)
        return text.getvalue()

    def import_run(self, document: str | Mapping[str, Any]) -> str:
        """Add a run exported with export_run(..., 'json'); returns its id (kept if free)."""
        data = json.loads(document) if isinstance(document, str) else document
        if not isinstance(data, Mapping) or "run" not in data:
            raise StoreError("not an rnnlab run export (no 'run' object)")
        run = dict(data["run"])
        run_id = str(run.get("id") or "")
        if not run_id or self._exists(run_id):
            run_id = secrets.token_hex(6)
        status = run.get("status")
        if status in ACTIVE_STATUSES:
            status = "interrupted"
        if status not in STATUSES:
            raise StoreError(f"the export has an unknown status {status!r}")
        steps = data.get("steps") or {}
        evaluations = data.get("evaluations") or {}
        now = time.time()
        row = {
            "id": run_id,
            "status": status,
            "owner": run.get("owner") or "",
            "sweep_id": run.get("sweep_id"),
            "study": run.get("study"),
            "trial": run.get("trial"),
            "config": json.dumps(run.get("config") or {}),
            "created_at": run.get("created_at") or now,
            "updated_at": run.get("updated_at") or now,
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
            "step": run.get("step") or 0,
            "info": None if run.get("info") is None else json.dumps(run["info"]),
            "summary": None if run.get("summary") is None else json.dumps(run["summary"]),
            "error": run.get("error"),
            "pid": run.get("pid"),
            "host": run.get("host"),
            "pinned": int(bool(run.get("pinned"))),
        }

        def work(db: sqlite3.Connection) -> None:
            insert(db, "runs", row)
            db.executemany(
                "INSERT INTO steps VALUES (?, ?, ?, ?, ?)",
                ((run_id, *values) for values in _rows(steps, STEP_COLUMNS)),
            )
            db.executemany(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?)",
                ((run_id, *values) for values in _rows(evaluations, EVALUATION_COLUMNS)),
            )
            snapshot = data.get("snapshot")
            if snapshot is not None:
                db.execute(
                    "INSERT INTO snapshots VALUES (?, ?, ?, ?)",
                    (run_id, snapshot.get("step"), json.dumps(snapshot), now),
                )

        self._write(work)
        return run_id


EXPORT_FORMATS: dict[str, Callable[[Transfer, str], str]] = {
    "json": Transfer._export_json,
    "csv": Transfer._export_csv,
}


def _rows(columns: Mapping[str, list], names: tuple[str, ...]) -> Iterator[tuple]:
    """{'step': [1, 2], 'loss': [...]} -> (1, loss1), (2, loss2): columns back into rows."""
    return zip(*(columns.get(name, []) for name in names), strict=True)
