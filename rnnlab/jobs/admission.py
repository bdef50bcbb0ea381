"""Room rules: how many runs an owner may have waiting, who is still there, who they are.

An owner is a browser session (or a script). It may have at most
`max_queued_per_owner` runs waiting; once it has been seen (a heartbeat, or `presence`
saying so) and is then absent for `orphan_after_s` (a closed tab), it loses its runs
and cannot submit more until it is seen again. Each owner may go by a name, which the
room shows on its runs.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable

from .settings import DEFAULT_MAX_QUEUED_PER_OWNER

# Names remembered, the least recently set forgotten first.
MAX_NAMED_OWNERS = 2000


class JobError(Exception):
    """The manager refused a request; the message is written for the person who made it."""


class QueueFull(JobError):
    """This owner already has as many jobs waiting as one owner may."""


class Admission:
    """Who may submit, and who has gone. Methods marked "lock held" are called with the
    manager's lock (`lock`) held; the others take it themselves."""

    def __init__(
        self,
        lock: threading.Lock,
        *,
        max_queued_per_owner: int | None = DEFAULT_MAX_QUEUED_PER_OWNER,
        orphan_after_s: float | None = None,
        presence: Callable[[str], bool | None] | None = None,
        clock: Callable[[], float],
    ):
        self.lock = lock
        self.max_queued_per_owner = max_queued_per_owner
        self.orphan_after_s = orphan_after_s
        self.presence = presence
        self.clock = clock
        self._reserved: collections.Counter[str] = collections.Counter()
        self._heartbeats: dict[str, float] = {}
        self._gone: set[str] = set()
        self._names: collections.OrderedDict[str, str] = collections.OrderedDict()

    def reserve(self, owner: str, waiting: int) -> None:
        """Hold a place for one more waiting run of `owner`, who has `waiting` in the
        queue; QueueFull or JobError if it may not. Lock held."""
        if owner in self._gone:
            raise JobError("this session was closed, so its runs were stopped")
        waiting += self._reserved[owner]
        cap = self.max_queued_per_owner
        if cap is not None and waiting >= cap:
            raise QueueFull(
                f"You already have {waiting} runs waiting (at most {cap}); "
                "wait for one to start, or cancel one."
            )
        self._reserved[owner] += 1

    def release(self, owner: str) -> None:
        """The reserved run is queued (or was not created). Lock held."""
        self._reserved[owner] -= 1
        if not self._reserved[owner]:
            del self._reserved[owner]

    def heartbeat(self, owner: str) -> None:
        """`owner` is still there. Lock held."""
        self._heartbeats[owner] = self.clock()
        self._gone.discard(owner)

    def name(self, owner: str, name: str) -> None:
        """What `owner` goes by from now on."""
        with self.lock:
            self._names.pop(owner, None)
            self._names[owner] = name
            while len(self._names) > MAX_NAMED_OWNERS:
                self._names.popitem(last=False)

    def name_of(self, owner: str) -> str | None:
        return self._names.get(owner)

    def names(self) -> set[str]:
        with self.lock:
            return set(self._names.values())

    def absent(self, active_owners: Callable[[], Iterable[str]]) -> list[str]:
        """Owners absent for orphan_after_s, now marked gone (their runs are the caller's
        to stop). Asks `presence` about every owner with active runs or seen before,
        without the lock held."""
        if self.orphan_after_s is None:
            return []
        with self.lock:
            owners = set(active_owners()) | set(self._heartbeats)
        if self.presence is not None:
            for owner in owners:
                try:
                    present = self.presence(owner)
                except Exception:
                    present = None
                if present:
                    with self.lock:
                        self.heartbeat(owner)
        now = self.clock()
        with self.lock:
            silent = [o for o, last in self._heartbeats.items() if now - last > self.orphan_after_s]
            for owner in silent:
                del self._heartbeats[owner]
                self._gone.add(owner)
        return silent
