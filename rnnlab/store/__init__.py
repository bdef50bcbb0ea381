"""The run store: every run's config, status, metric history and latest snapshot, in SQLite.

    store = RunStore()                       # $RNNLAB_HOME/runs.sqlite, default ~/.rnnlab
    run_id = store.create_run(config, owner="cli", status="running")
    for event in train(config):
        store.add(run_id, event)
    store.history(run_id)                    # pandas DataFrame, one row per step
    store.prune()                            # keep the file within its disk budget

Many threads and processes may share one file (WAL mode, a busy timeout). RunStore is
one class made of a part per concern, each in its own module:

    schema      the tables, and the migrations that bring an older file up to date
    database    opening the file, connections, transactions, writes that survive faults
    liveness    which runs are really running (a lock per recording process)
    writing     new runs, train()'s events in batches, final statuses, deletions
    queries     one run, lists of runs, history, snapshots and trained weights
    transfer    export to JSON or CSV, and import (weights go out as .pt: rnnlab.weights)
    retention   pinning, and pruning old runs' weights and history to a disk budget
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .database import (
    BUSY_TIMEOUT_MS,
    STORE_FILENAME,
    WRITE_PATIENCE_S,
    RunNotFound,
    StoreError,
    default_store_path,
    rnnlab_home,
)
from .queries import RunRecord
from .retention import DiskUsage, PruneReport, Retention, RetentionPolicy
from .schema import (
    ACTIVE_STATUSES,
    EVALUATION_COLUMNS,
    FINISHED_STATUSES,
    MIGRATIONS,
    SCHEMA_VERSION,
    STATUSES,
    STEP_COLUMNS,
)
from .transfer import EXPORT_FORMATS, Transfer
from .writing import Writing

__all__ = [
    "ACTIVE_STATUSES",
    "BUSY_TIMEOUT_MS",
    "DiskUsage",
    "EVALUATION_COLUMNS",
    "EXPORT_FORMATS",
    "FINISHED_STATUSES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STATUSES",
    "STEP_COLUMNS",
    "STORE_FILENAME",
    "WRITE_PATIENCE_S",
    "PruneReport",
    "RetentionPolicy",
    "RunNotFound",
    "RunRecord",
    "RunStore",
    "StoreError",
    "default_store_path",
    "open_store",
    "rnnlab_home",
]


class RunStore(Writing, Transfer, Retention):
    """Runs, their metric history and latest snapshot, in one SQLite file; thread-safe.

    Opening it marks the runs of processes that died as interrupted (see liveness).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        super().__init__(path)
        self.recover_interrupted()

    def close(self) -> None:
        """Write what is buffered and close this thread's connections."""
        self.flush()
        super().close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_default_stores: dict[Path, RunStore] = {}
_default_stores_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> RunStore:
    """The process's shared RunStore for `path` (default $RNNLAB_HOME/runs.sqlite)."""
    resolved = Path(path if path is not None else default_store_path()).expanduser().absolute()
    with _default_stores_lock:
        store = _default_stores.get(resolved)
        if store is None:
            store = _default_stores[resolved] = RunStore(resolved)
        return store
