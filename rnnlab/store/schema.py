"""The store's tables, and the migrations that bring an older file up to date."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

STATUSES = (
    "queued",
    "running",
    "completed",
    "diverged",
    "stopped",
    "interrupted",
    "failed",
    "pruned",  # a study's pruner stopped it early (rnnlab.tune)
)
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)

SCHEMA_VERSION = 4

STEP_COLUMNS = ("step", "loss", "grad_norm", "elapsed_s")
EVALUATION_COLUMNS = ("step", "loss", "metric", "solved", "elapsed_s")


def _schema_v1(connection: sqlite3.Connection) -> None:
    """Runs, their step and evaluation history, and each run's latest snapshot."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES[:7])  # the statuses of schema 1
    # One statement at a time: executescript() would commit the migration's transaction.
    schema = f"""
        CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ({statuses})),
            owner TEXT NOT NULL DEFAULT '',
            sweep_id TEXT,
            config TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            step INTEGER NOT NULL DEFAULT 0,
            info TEXT,
            summary TEXT,
            error TEXT,
            pid INTEGER,
            host TEXT,
            process TEXT
        );
        CREATE INDEX runs_by_created ON runs (created_at);
        CREATE INDEX runs_by_status ON runs (status);
        CREATE INDEX runs_by_sweep ON runs (sweep_id);
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            loss REAL,
            grad_norm REAL,
            elapsed_s REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID;
        CREATE TABLE evaluations (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            loss REAL,
            metric REAL,
            solved INTEGER NOT NULL,
            elapsed_s REAL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID;
        CREATE TABLE snapshots (
            run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """
    for statement in schema.split(";"):
        if statement.strip():
            connection.execute(statement)


def _weights_v2(connection: sqlite3.Connection) -> None:
    """Each finished run's trained weights: a .pt file, as rnnlab.weights writes it."""
    connection.execute(
        """
        CREATE TABLE weights (
            run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            data BLOB NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )


def _retention_v3(connection: sqlite3.Connection) -> None:
    """What rnnlab.store.retention needs: a run its owner pinned keeps its weights and
    history; a thinned run's steps and evaluations were cut to a few hundred points; the
    bytes its history and its snapshot take, as measured when the run was last updated
    at `measured_at` (a run updated since is measured again)."""
    for column in (
        "pinned INTEGER NOT NULL DEFAULT 0",
        "thinned INTEGER NOT NULL DEFAULT 0",
        "history_bytes INTEGER",
        "snapshot_bytes INTEGER",
        "measured_at REAL",
    ):
        connection.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    connection.execute("CREATE INDEX runs_by_owner ON runs (owner, created_at)")


def _studies_v4(connection: sqlite3.Connection) -> None:
    """Runs that are trials of a study (rnnlab.tune): the study's name and the trial's
    number; and the status `pruned`. SQLite cannot alter a CHECK constraint, and rebuilding
    `runs` would cascade into its history: the constraint is widened in the stored schema
    instead, the change SQLite documents for constraints every existing row meets."""
    for column in ("study TEXT", "trial INTEGER"):
        connection.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    connection.execute("CREATE INDEX runs_by_study ON runs (study, trial)")
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    (sql,) = connection.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'runs'"
    ).fetchone()
    widened = re.sub(r"status IN \([^)]*\)", f"status IN ({statuses})", sql, count=1)
    (version,) = connection.execute("PRAGMA schema_version").fetchone()
    connection.execute("PRAGMA writable_schema = ON")
    try:
        connection.execute(
            "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = 'runs'", (widened,)
        )
        connection.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        connection.execute("PRAGMA writable_schema = OFF")


# Schema version -> the change that brings a file from the version before it to this one.
# To change the schema: add a function here, raise SCHEMA_VERSION, never edit an old one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _schema_v1,
    2: _weights_v2,
    3: _retention_v3,
    4: _studies_v4,
}
