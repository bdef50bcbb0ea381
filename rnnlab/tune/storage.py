"""Where studies live: one Optuna journal file in RNNLAB_HOME, beside the run store.

A journal (an append-only log of every change to every study) needs nothing beyond
Optuna, takes a file lock for each write so that several processes (the dashboard, the
CLI, a notebook) may add trials to one study at once, and opens unchanged in Optuna's
own tools:

    optuna.load_study(study_name="what-matters", storage=open_storage())
    optuna-dashboard ~/.rnnlab/studies.log

SQLite through Optuna's RDB storage would bring SQLAlchemy and Alembic into the
server, and a schema of their own to migrate.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from ..store.database import rnnlab_home

STUDIES_FILE = "studies.log"

_storages: dict[Path, JournalStorage] = {}
_lock = threading.Lock()


def storage_path(store_path: str | os.PathLike[str] | None = None) -> Path:
    """The journal file: RNNLAB_STUDIES if set, else studies.log beside the run store at
    `store_path` (default: in RNNLAB_HOME)."""
    chosen = os.environ.get("RNNLAB_STUDIES")
    if chosen:
        return Path(chosen).expanduser()
    home = Path(store_path).expanduser().parent if store_path is not None else rnnlab_home()
    return home / STUDIES_FILE


def open_storage(path: str | os.PathLike[str] | None = None) -> JournalStorage:
    """The journal storage at `path` (default storage_path()), one per file per process."""
    path = Path(path if path is not None else storage_path()).expanduser().absolute()
    with _lock:
        storage = _storages.get(path)
        if storage is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            storage = _storages[path] = JournalStorage(JournalFileBackend(str(path)))
        return storage
