"""The store's tables, and the migrations that bring an older file up to date."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

STATUSES = ("queued", "running", "completed", "diverged", "stopped", "interrupted", "failed")
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = tuple(s for s in STATUSES if s not in ACTIVE_STATUSES)

SCHEMA_VERSION = 3

STEP_COLUMNS = ("step", "loss", "grad_norm", "elapsed_s")
EVALUATION_COLUMNS = ("step", "loss", "metric", "solved", "elapsed_s")


def _schema_v1(connection: sqlite3.Connection) -> None:
    """Runs, their step and evaluation history, and each run's latest snapshot."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
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


# Schema version -> the change that brings a file from the version before it to this one.
# To change the schema: add a function here, raise SCHEMA_VERSION, never edit an old one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _schema_v1,
    2: _weights_v2,
    3: _retention_v3,
}
