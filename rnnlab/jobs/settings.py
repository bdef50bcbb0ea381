"""The pool's settings: defaults, and what the environment overrides."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .resources import Resources, detect, whole_cpus

DEFAULT_MAX_QUEUED_PER_OWNER = 4
# Runs one owner may have training at once (its further runs wait, the room's go first).
DEFAULT_MAX_RUNNING_PER_OWNER = 8
# Owners with runs one client address may hold: a room behind one router shares an
# address, so this is a guard against scripts opening sessions, not against people.
DEFAULT_MAX_OWNERS_PER_ADDRESS = 40
DEFAULT_ORPHAN_AFTER_S = 60.0
# Runs one worker trains at once (interleaved, each owner getting an equal share of its
# time) before new ones wait in the queue; memory may allow fewer (rnnlab.jobs.sizing).
RUNS_PER_WORKER = 32
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


def default_max_running_per_owner() -> int:
    """RNNLAB_MAX_RUNNING_PER_OWNER if set, else DEFAULT_MAX_RUNNING_PER_OWNER."""
    return positive_int_from_env("RNNLAB_MAX_RUNNING_PER_OWNER") or DEFAULT_MAX_RUNNING_PER_OWNER


# What the processes take before any run (proportional set sizes, measured with the app
# serving a room of 30 sessions; bench/bench_workshop.py --memory-limit): the Streamlit
# server, which never imports PyTorch (108 MiB idle); the pages that the fork server
# and every worker forked from it share (PyTorch's, counted once); each worker's own.
SERVER_BYTES = 160 * 2**20
FORK_SERVER_BYTES = 300 * 2**20
WORKER_BYTES = 40 * 2**20
# The least room for runs that makes a worker worth its memory, and what is kept free
# for the page cache and for what the estimates miss.
MIN_RUN_BYTES = 96 * 2**20
HEADROOM = 0.1


@dataclass(frozen=True)
class MemoryPlan:
    """How many workers the server's memory and processors allow, and what is left for
    runs."""

    workers: int
    memory_bytes: int  # the limit the processes share
    fixed_bytes: int  # the server, the fork server and the headroom
    limited: bool  # False for remote workers (Ray): the server cannot see their memory

    def memory_per_worker(self, workers: int) -> int | None:
        """Bytes each of `workers` workers has for its runs; None if not limited."""
        if not self.limited:
            return None
        left = self.memory_bytes - self.fixed_bytes - workers * WORKER_BYTES
        return max(0, left // workers)


def memory_plan(machine: Resources, cluster_cpus: int | None, *, local: bool) -> MemoryPlan:
    """Workers: RNNLAB_WORKERS if set; else one per processor of the Ray cluster, or of
    this container where its memory holds that many (RNNLAB_MEMORY_MB, if set, stands for
    the container's limit)."""
    memory = positive_int_from_env("RNNLAB_MEMORY_MB")
    memory_bytes = memory * 2**20 if memory else machine.memory_bytes
    fixed = SERVER_BYTES + FORK_SERVER_BYTES + int(HEADROOM * memory_bytes)
    configured = positive_int_from_env("RNNLAB_WORKERS")
    if configured or not local:
        workers = configured or cluster_cpus or 1
    else:
        fitting = (memory_bytes - fixed) // (WORKER_BYTES + MIN_RUN_BYTES)
        workers = max(1, min(whole_cpus(machine), fitting))
    return MemoryPlan(workers, memory_bytes, fixed, limited=local)


def positive_float_from_env(name: str) -> float | None:
    """The positive number in environment variable `name`, None if unset; else ValueError."""
    return _from_env(
        name, float, "a number", lambda v: math.isfinite(v) and v > 0, "a positive number"
    )


def default_workers() -> int:
    """The workers a local pool of this server gets (memory_plan)."""
    return memory_plan(detect(), None, local=True).workers


def default_executor() -> str:
    """RNNLAB_EXECUTOR if set (local or ray), else local: worker processes on this machine."""
    configured = os.environ.get("RNNLAB_EXECUTOR", "").strip().lower() or "local"
    if configured not in EXECUTORS:
        raise ValueError(f"RNNLAB_EXECUTOR must be local or ray, got {configured!r}")
    return configured


def default_orphan_after_s() -> float:
    """RNNLAB_ORPHAN_AFTER_S if set, else DEFAULT_ORPHAN_AFTER_S."""
    configured = positive_float_from_env("RNNLAB_ORPHAN_AFTER_S")
    return DEFAULT_ORPHAN_AFTER_S if configured is None else configured
