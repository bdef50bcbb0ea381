"""What pages and routes read of the runs: progress, live points, gate pictures, and the
rows of the room and of a race. Every answer comes from memory (rnnlab.jobs.feed), or for
a run that has left memory, from the store read once (rnnlab.jobs.stored).

A run's private inputs (a typed word, an uploaded text: rnnlab.jobs.feed.private_inputs)
are in an answer only when `asker_is` the run's owner; by default nobody is, and the room
is the same for everyone."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..values import finite_or_none
from .admission import Admission
from .feed import AskerIs, LiveRun, Progress, nobody
from .stored import StoredRuns


class Watched:
    """The reading half of rnnlab.jobs.JobManager: every method takes the manager's lock
    only to find its runs, and none touches the store for a run in memory."""

    _lock: threading.Lock
    _changed: threading.Condition
    _jobs: dict[str, LiveRun]
    _queue: collections.deque[LiveRun]
    _finished: collections.deque[str]
    _sweeps: dict[str, list[str]]
    admission: Admission
    stored: StoredRuns

    def _position(self, job: LiveRun) -> int | None:
        if job.status != "queued":
            return None
        for i, waiting in enumerate(self._queue):
            if waiting is job:
                return i + 1
        return None

    def progress(self, run_id: str) -> Progress | None:
        """The job's progress; for a run this process no longer holds, what the store says.

        None if there is no such run. Cheap: no database access for live jobs.
        """
        with self._lock:
            job = self._jobs.get(run_id)
            position = self._position(job) if job is not None else None
        if job is not None:
            return job.progress(position)
        return Progress.stored(self.store, run_id)

    def evaluations(
        self, run_id: str, *, since: int = 0
    ) -> list[tuple[int, float | None, float | None]]:
        """The held-out evaluations after step `since`: (step, loss, metric), from memory
        while this process holds the run, else from the store (what a study's pruner is
        fed, rnnlab.tune)."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is not None:
                return [e[:3] for e in job.evaluations if e[0] > since]
        table = self.store.evaluations(run_id)
        return [
            (int(step), finite_or_none(loss), finite_or_none(metric))
            for step, loss, metric in zip(
                table["step"].tolist(),
                table["loss"].tolist(),
                table["metric"].tolist(),
                strict=True,
            )
            if step > since
        ]

    def live(
        self, run_id: str, *, since: int = 0, asker_is: AskerIs = nobody
    ) -> dict[str, Any] | None:
        """What a live chart needs after step `since`: progress (Progress.state()), new
        points (at most rnnlab.jobs.feed.LIVE_POINTS), evaluations. Plain JSON-ready
        values; None if this process does not hold the run. Reads memory only, so a page
        may ask several times a second."""
        with self._lock:
            job = self._jobs.get(run_id)
            if job is None:
                return None
            position = self._position(job)
        return job.live(since, position, public=not asker_is(job.owner))

    def answer(
        self, run_id: str, *, since: int = 0, asker_is: AskerIs = nobody
    ) -> dict[str, Any] | None:
        """live(), or for a run that has left memory its whole curve from the store (read
        once); None if there is no such run."""
        live = self.live(run_id, since=since, asker_is=asker_is)
        return live if live is not None else self.stored.live(run_id, asker_is)

    def gates_view(
        self, run_id: str, layer: int = 0, *, asker_is: AskerIs = nobody
    ) -> tuple[int, bytes | None] | None:
        """One layer's view of the latest snapshot as JSON bytes (rnnlab.events.layer_view,
        without the probe's inputs unless `asker_is` the run's owner) and the snapshot's
        training step: (-1, None) before the first snapshot or for a layer the run does not
        have. A finished run's last snapshot comes from the store; None if there is no such
        run."""
        job = self._jobs.get(run_id)
        if job is None or not job.active:
            return self.stored.gates(run_id, layer, asker_is)
        step = job.snapshot_step
        views = job.views_json if asker_is(job.owner) else job.public_views_json
        if views is None or not 0 <= layer < len(views):
            return -1, None
        return step or 0, views[layer]

    def gradients_view(self, run_id: str) -> tuple[int, bytes | None] | None:
        """The run's gradient history (layer 1's ‖∂L/∂h_t‖ at each gradient snapshot) as
        JSON bytes and the step of the latest; as gates_view."""
        job = self._jobs.get(run_id)
        if job is None or not job.active:
            return self.stored.gradients(run_id)
        if job.gradients_json is None:
            return -1, None
        return job.gradient_step or 0, job.gradients_json

    def influence_view(
        self, run_id: str, *, asker_is: AskerIs = nobody
    ) -> tuple[int, bytes | None] | None:
        """Which input steps the predictions use (rnnlab.events.influence_view: the latest
        snapshot's influence and the run's history of it) as JSON bytes, without the
        probe's symbols unless `asker_is` the run's owner, and its training step; as
        gates_view."""
        job = self._jobs.get(run_id)
        if job is None or not job.active:
            return self.stored.influence(run_id, asker_is)
        payload = job.influence_json if asker_is(job.owner) else job.public_influence_json
        if payload is None:
            return -1, None
        return job.influence_step or 0, payload

    def trajectory_view(self, run_id: str, layer: int = 0) -> tuple[int, bytes | None] | None:
        """Where one layer's hidden state travels (rnnlab.events.trajectory_view: the
        paths of the snapshots on the latest axes) as JSON bytes, and its training step;
        as gates_view."""
        job = self._jobs.get(run_id)
        if job is None or not job.active:
            return self.stored.trajectory(run_id, layer)
        views = job.trajectories_json
        if views is None or not 0 <= layer < len(views) or views[layer] is None:
            return -1, None
        return job.trajectory_step or 0, views[layer]

    def room(self, since: dict[str, int], *, runs: int, ended: int) -> list[dict[str, Any]]:
        """Every active run and the latest `ended` that ended (`runs` at most), as rows
        with the new points of their curves after the step `since` gives for each; the
        same for everyone (public rows, without settings beyond row_settings)."""
        with self._lock:
            jobs = [job for job in self._jobs.values() if job.status == "running"]
            jobs += list(self._queue)
            jobs += [self._jobs[i] for i in reversed(self._finished) if i in self._jobs][:ended]
            positions = {job.run_id: self._position(job) for job in jobs[:runs]}
        return [
            job.row(
                since.get(job.run_id, 0),
                positions[job.run_id],
                self.admission.name_of(job.owner),
                with_config=False,
                public=True,
            )
            for job in jobs[:runs]
        ]

    def sweep(
        self, sweep_id: str, since: dict[str, int], *, asker_is: AskerIs = nobody
    ) -> list[dict[str, Any]] | None:
        """Every run of a sweep submitted here so far, as rows with their settings (the
        word and an uploaded file withheld unless `asker_is` the run's owner) and the new
        points of their curves (runs that left memory: from the store, once); None if
        this process started no such sweep."""
        with self._lock:
            run_ids = list(self._sweeps.get(sweep_id, ()))
            jobs = {run_id: self._jobs.get(run_id) for run_id in run_ids}
            positions = {i: self._position(j) for i, j in jobs.items() if j is not None}
        if not run_ids:
            return None
        rows = []
        for run_id, job in jobs.items():
            seen = since.get(run_id, 0)
            if job is None:
                row = self.stored.row(run_id, seen, None, with_config=True, asker_is=asker_is)
            else:
                name = self.admission.name_of(job.owner)
                public = not asker_is(job.owner)
                row = job.row(seen, positions[run_id], name, with_config=True, public=public)
            if row is not None:
                rows.append(row)
        return rows

    def queue(self, *, finished: int = 0) -> list[Progress]:
        """Active jobs: the running ones, then the waiting ones in the order they will start;
        then up to `finished` of the jobs still in memory that ended, latest first.

        Without their snapshots (progress() has a run's): a page may list thirty runs.
        """
        with self._lock:
            running = [job for job in self._jobs.values() if job.status == "running"]
            waiting = list(self._queue)
            ended = [self._jobs[i] for i in self._finished if i in self._jobs] if finished else []
        return (
            [job.progress(None, with_snapshot=False) for job in running]
            + [job.progress(i + 1, with_snapshot=False) for i, job in enumerate(waiting)]
            + [job.progress(None, with_snapshot=False) for job in ended[::-1][:finished]]
        )

    def wait(self, run_id: str, timeout: float | None = None) -> Progress | None:
        """Block until the job finishes (or timeout); its progress then."""
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job.done.wait(timeout)
        return self.progress(run_id)

    def wait_any(self, run_ids: Iterable[str], timeout: float | None = None) -> list[str]:
        """Block until at least one of `run_ids` is no longer active; return those that are not.

        Ids this process does not hold count as finished. Returns [] on timeout.
        """
        run_ids = list(run_ids)
        deadline = None if timeout is None else time.monotonic() + timeout

        def finished() -> list[str]:
            return [
                run_id
                for run_id in run_ids
                if run_id not in self._jobs or self._jobs[run_id].done.is_set()
            ]

        with self._lock:
            while not (done := finished()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._changed.wait(remaining)
            return done
