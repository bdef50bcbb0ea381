"""One run of train() recorded in the run store as it goes: the CLI and the workers use it.

    run = RecordedRun(store, run_id, config)
    for event in run:            # each event is in the store before it is yielded
        ...
    run.outcome                  # {"status", "summary", "error"} once it has ended

A run that trains in another process whose events arrive here (a Ray task, see
rnnlab.cluster) is recorded the same way, one event at a time: `Recorder(store, run_id)`
and `recorder.record(event)`.

`stop()` (from any thread, or a signal handler) ends the run at its next step; the run
then finishes as usual (a final evaluation, its last snapshot, the summary), with the
status and reason given to stop(). A run whose training or recording raises (the store
gives up on a write only after retrying for a while) is recorded as `failed` with the
error where the store allows, and the error is raised again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from .config import RunConfig
from .store import FINISHED_STATUSES, RunStore
from .tasks import Task
from .train import Event, Finished, train


class Recorder:
    """Records one run's events in the store as they come, and how the run ended."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.stop_reason: str | None = None
        self.stop_status = "stopped"
        self.outcome: dict[str, Any] | None = None

    def record(self, event: Event) -> Event:
        """Store the event; a Finished one also ends the run (the event returned then
        carries the status the run was stopped as, if it was stopped from outside)."""
        if isinstance(event, Finished):
            return self._finish(event)
        self.store.add(self.run_id, event)
        return event

    def _finish(self, event: Finished) -> Finished:
        """Record the run's end; a run stopped from outside takes the status it was given."""
        summary, error = event.summary, self.stop_reason
        if summary["status"] == "stopped":
            summary = {**summary, "status": self.stop_status}
        status = summary["status"] if summary["status"] in FINISHED_STATUSES else "completed"
        self.outcome = {"status": status, "summary": summary, "error": error}
        self.store.finish(self.run_id, status, summary, error=error)
        return Finished(summary=summary)

    def fail(self, error: BaseException | str) -> None:
        """Record the run as failed with `error` (see record_failure)."""
        message = record_failure(self.store, self.run_id, error)
        self.outcome = {"status": "failed", "summary": None, "error": message}


class RecordedRun(Recorder):
    """Iterate it to train; see the module doc."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        config: RunConfig,
        *,
        task: Task | None = None,
        snapshot_every_s: float | None = 1.0,
    ):
        super().__init__(store, run_id)
        self.cancel = threading.Event()
        self._events: Iterator[Event] = train(
            config, cancel=self.cancel, task=task, snapshot_every_s=snapshot_every_s
        )

    def stop(self, reason: str | None = None, status: str = "stopped") -> None:
        """End the run at its next step as `status`, saying why; the first call decides."""
        if not self.cancel.is_set():
            self.stop_reason, self.stop_status = reason, status
            self.cancel.set()

    def __iter__(self) -> RecordedRun:
        return self

    def __next__(self) -> Event:
        try:
            return self.record(next(self._events))
        except StopIteration:
            raise
        except Exception as error:
            self._events.close()
            self.fail(error)
            raise


def record_failure(store: RunStore, run_id: str, error: BaseException | str) -> str:
    """Mark the run failed with the error's message (or with `error` itself, if it is
    text), and return the message; if the store cannot take it either, the message says
    that too."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    try:
        store.fail(run_id, message)
    except Exception as store_error:
        message += f" (and it could not be recorded: {store_error})"
    return message
