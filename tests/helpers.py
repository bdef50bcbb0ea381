"""What the tests of the store, the pool and the live routes share: tiny runs and waiting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rnnlab.config import RunConfig
from rnnlab.jobs import JobManager, Progress
from rnnlab.store import RunStore


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


def interrupt_when_training(
    arguments: list[str], home: Path, *, runs: int | None = None, steps: int = 5
) -> tuple[int, str, str]:
    """Run `python -m rnnlab ARGUMENTS` with RNNLAB_HOME=home; once `runs` runs (default:
    every run it started) have taken `steps` steps, press Ctrl-C as a terminal does (SIGINT
    to the process group). Returns (exit status, stdout, stderr); the process never
    outlives the call."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rnnlab", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "RNNLAB_HOME": str(home)},
    )
    path = home / "runs.sqlite"

    def training() -> bool:
        if not path.exists():
            return False
        with RunStore(path) as store:
            started = store.list_runs()
        enough = bool(started) if runs is None else len(started) == runs
        return enough and all(run.step >= steps for run in started)

    try:
        until(training, timeout=180, what="the command to train")
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, out, err


def forget_engine() -> None:
    """Shut the process's pool down and drop cached resources: the next app builds anew."""
    import streamlit as st

    from rnnlab import jobs

    manager = jobs.manager._manager
    if manager is not None and not manager.closed:
        manager.shutdown(timeout=60)
    st.cache_resource.clear()


def small_model(cell: str, activation: str, layers: int = 1, task: str = "adding", **options):
    """A small network of `cell` and its task (hidden 8, 12 steps unless given)."""
    from rnnlab import build_model, make_task

    config = RunConfig(
        task=task,
        cell=cell,
        activation=activation,
        num_layers=layers,
        hidden_size=options.pop("hidden_size", 8),
        seq_len=options.pop("seq_len", 12),
        **options,
    )
    task_ = make_task(config)
    return build_model(config, task_), task_
