"""The pool's settings: defaults, and what the environment overrides."""

from __future__ import annotations

import math
import os

DEFAULT_MAX_QUEUED_PER_OWNER = 4
DEFAULT_ORPHAN_AFTER_S = 60.0
# Runs one worker trains at once (interleaved) before new ones wait in the queue.
RUNS_PER_WORKER = 16
# Finished runs stay in memory (without their snapshot) so a page's last poll sees the end.
KEEP_FINISHED = 200
# The manager looks for absent owners and dead workers this often.
ORPHAN_CHECK_S = 0.5
# Seconds between the Snapshot events of a live run: a little under one, so that with
# the step it waits for and the time it takes, a page gets about one picture a second.
SNAPSHOT_EVERY_S = 0.8
# Workers that die before they are ready, in a row, after which the pool stops replacing them.
MAX_START_FAILURES = 3

EXECUTORS = ("local", "ray")


def _from_env(name: str, parse: type, kind: str, valid, wanted: str):
    """Environment variable `name` as a `parse` value, None if unset; ValueError saying
    what is wrong (a value that is not `kind`, or one that is not `wanted`)."""
    configured = os.environ.get(name, "").strip()
    if not configured:
        return None
    try:
        value = parse(configured)
    except ValueError:
        raise ValueError(f"{name} must be {kind}, got {configured!r}") from None
    if not valid(value):
        raise ValueError(f"{name} must be {wanted}, got {configured!r}")
    return value


def positive_int_from_env(name: str) -> int | None:
    """The whole number >= 1 in environment variable `name`, None if unset; else ValueError."""
    return _from_env(name, int, "a whole number", lambda v: v >= 1, "at least 1")


def default_workers(cores: int | None = None) -> int:
    """RNNLAB_WORKERS if set, else one worker per core (of this machine, or `cores`)."""
    return positive_int_from_env("RNNLAB_WORKERS") or cores or (os.cpu_count() or 1)


def default_executor() -> str:
    """RNNLAB_EXECUTOR if set (local or ray), else local: worker processes on this machine."""
    configured = os.environ.get("RNNLAB_EXECUTOR", "").strip().lower() or "local"
    if configured not in EXECUTORS:
        raise ValueError(f"RNNLAB_EXECUTOR must be local or ray, got {configured!r}")
    return configured


def default_orphan_after_s() -> float:
    """RNNLAB_ORPHAN_AFTER_S if set, else DEFAULT_ORPHAN_AFTER_S."""
    configured = _from_env(
        "RNNLAB_ORPHAN_AFTER_S",
        float,
        "a number",
        lambda v: math.isfinite(v) and v > 0,
        "a positive number",
    )
    return DEFAULT_ORPHAN_AFTER_S if configured is None else configured
