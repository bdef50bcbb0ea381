"""Which waiting run starts next, and on which worker: fair to people, not to runs, and
never past the memory the server has.

The queue is kept in the order runs would start: the owner with the fewest runs
training goes first (first come, first served between equals), so a session that
queued thirty runs does not hold back the next person's one, and pages show true
positions. A run starts when its owner is under its running cap and a worker has room
for its estimated memory (rnnlab.jobs.sizing); otherwise it waits, visibly, while runs
behind it that do fit may start. Each worker shares its time equally between the
owners it serves (rnnlab.worker), so workers are chosen by how many owners they would
serve, then by how many runs, and told how many workers each owner trains on.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

from .feed import LiveRun
from .sizing import Estimate


def fair_order(waiting: Iterable[LiveRun], running: collections.Counter) -> list[LiveRun]:
    """`waiting` in the order the scheduler would start them, given how many runs each
    owner has `running`: each next one from the owner with the fewest, as if it had
    started."""
    by_owner: dict[str, collections.deque[LiveRun]] = {}
    for job in waiting:
        by_owner.setdefault(job.owner, collections.deque()).append(job)
    counts = collections.Counter({owner: running[owner] for owner in by_owner})
    arrival = {owner: index for index, owner in enumerate(by_owner)}
    order = []
    while by_owner:
        owner = min(by_owner, key=lambda o: (counts[o], arrival[o]))
        order.append(by_owner[owner].popleft())
        counts[owner] += 1
        if not by_owner[owner]:
            del by_owner[owner]
    return order


class Scheduler:
    """The memory each worker has for runs, what its runs are estimated to hold, and the
    choice of the next run and its worker. Every method is called with the job
    manager's lock held."""

    def __init__(self, memory_per_worker: int | None):
        self.memory_per_worker = memory_per_worker  # None: no limit
        # run id -> its estimate (rnnlab.jobs.sizing), while it is active
        self.memory: dict[str, Estimate] = {}
        self._sent: dict[tuple[Any, str], int] = {}  # (worker, owner) -> spread it was told

    def held(self, run_ids: Iterable[str]) -> int:
        """What runs on one worker hold at most: what each keeps, and the largest step
        (a worker steps one run at a time)."""
        estimates = [self.memory[run_id] for run_id in run_ids if run_id in self.memory]
        kept = sum(estimate.kept_bytes for estimate in estimates)
        return kept + max((estimate.step_bytes for estimate in estimates), default=0)

    def fits(self, worker: Any, run_id: str) -> bool:
        if self.memory_per_worker is None:
            return True
        return self.held([*worker.jobs, run_id]) <= self.memory_per_worker

    def worker_for(
        self, workers: list[Any], owner: str, run_id: str, per_worker: int
    ) -> Any | None:
        """The live worker with room for the run that would serve the fewest owners with
        it (then: holds the fewest runs). An owner alone spreads over every worker; in a
        full room its runs gather where it already trains, so that its share of the
        processors stays one owner's."""
        candidates = [
            w for w in workers if not w.lost and len(w.jobs) < per_worker and self.fits(w, run_id)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda w: (len(_owners(w) | {owner}), len(w.jobs)))

    def next_start(
        self,
        queue: Iterable[LiveRun],
        workers: list[Any],
        per_worker: int,
        may_start: Callable[[str, int], bool],
        running: collections.Counter,
    ) -> tuple[LiveRun, Any] | None:
        """The first waiting run (in fair order) whose owner may start one more and for
        which a worker has room, with that worker; None if none can start now."""
        for job in queue:
            if not may_start(job.owner, running[job.owner]):
                continue
            worker = self.worker_for(workers, job.owner, job.run_id, per_worker)
            if worker is not None:
                return job, worker
        return None

    def forget(self, run_id: str) -> None:
        self.memory.pop(run_id, None)

    def spreads(self, workers: list[Any]) -> list[tuple[Any, str, int]]:
        """(worker, owner, how many workers the owner trains on) for every pair whose
        number changed since the last call (0: the owner left that worker). A worker
        charges an owner its time times that number, so an owner spread over two
        workers gets half its turns on each: one owner's share in all."""
        now = {}
        for worker in workers:
            for owner in _owners(worker):
                now[worker, owner] = 0
        spread = collections.Counter(owner for _, owner in now)
        now = {pair: spread[pair[1]] for pair in now}
        changes = [(w, o, k) for (w, o), k in now.items() if self._sent.get((w, o)) != k]
        changes += [(w, o, 0) for (w, o) in self._sent if (w, o) not in now and not w.lost]
        self._sent = now
        return changes


def _owners(worker: Any) -> set[str]:
    return {job.owner for job in worker.jobs.values()}
