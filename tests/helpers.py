"""What the tests of the store, the pool and the live routes share: tiny runs and waiting."""

from __future__ import annotations

import time

from rnnlab.config import RunConfig
from rnnlab.jobs import JobManager, Progress


def tiny(**changes) -> RunConfig:
    """A run that takes a fraction of a second: hello, plain RNN, four hidden units."""
    return RunConfig(**{"task": "hello", "cell": "rnn", "hidden_size": 4, "steps": 12, **changes})


# Long enough to be caught running; every test that starts one stops it.
ENDLESS = tiny(steps=200_000, eval_every=25)


def until(predicate, timeout: float = 150.0, what: str = "condition"):
    """Poll until predicate() is truthy and return its value; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def running(manager: JobManager, run_id: str, steps: int = 1) -> Progress | None:
    """The run's progress once it trains and has taken `steps` steps; None before."""
    progress = manager.progress(run_id)
    return progress if progress.status == "running" and progress.step >= steps else None


class FakeClock:
    """A clock the test moves by hand: the manager's idea of 'now' for absent owners."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now
