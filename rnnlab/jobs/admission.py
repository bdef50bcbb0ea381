"""Room rules: how many runs an owner may have, who is still there, who they are.

An owner is a browser session (or a script). It may have at most
`max_queued_per_owner` runs waiting and `max_running_per_owner` training (a Race's runs
count like any other), and one client address may hold at most
`max_owners_per_address` owners with runs; once an owner has been seen (a heartbeat,
or `presence` saying so) and is then absent for `orphan_after_s` (a closed tab), it
loses its runs and cannot submit more until it is seen again. Each owner may go by a
name, which the room shows on its runs.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable

from .names import RoomNames
from .settings import (
    DEFAULT_MAX_OWNERS_PER_ADDRESS,
    DEFAULT_MAX_QUEUED_PER_OWNER,
    DEFAULT_MAX_RUNNING_PER_OWNER,
)

# Names remembered, the least recently set forgotten first.
MAX_NAMED_OWNERS = 2000


class JobError(Exception):
    """The manager refused a request; the message is written for the person who made it."""


class QueueFull(JobError):
    """This owner already has as many jobs waiting as one owner may."""


class TooLarge(JobError):
    """The run would take too long a step, or more memory than a worker has, here."""


class Admission:
    """Who may submit, and who has gone. Methods marked "lock held" are called with the
    manager's lock (`lock`) held; the others take it themselves."""

    def __init__(
        self,
        lock: threading.Lock,
        *,
        max_queued_per_owner: int | None = DEFAULT_MAX_QUEUED_PER_OWNER,
        max_running_per_owner: int | None = DEFAULT_MAX_RUNNING_PER_OWNER,
        max_owners_per_address: int | None = DEFAULT_MAX_OWNERS_PER_ADDRESS,
        orphan_after_s: float | None = None,
        presence: Callable[[str], bool | None] | None = None,
        clock: Callable[[], float],
    ):
        self.lock = lock
        self.max_queued_per_owner = max_queued_per_owner
        self.max_running_per_owner = max_running_per_owner
        self.max_owners_per_address = max_owners_per_address
        self.orphan_after_s = orphan_after_s
        self._presence = presence
        self.clock = clock
        self._reserved: collections.Counter[str] = collections.Counter()
        self._heartbeats: dict[str, float] = {}
        self._gone: set[str] = set()
        self.names = RoomNames(presence=presence)
        self._located: dict[str, str] = {}  # owner -> its client address, if known
        self._addresses: dict[str, set[str]] = {}  # client address -> owners with runs

    @property
    def presence(self) -> Callable[[str], bool | None] | None:
        return self._presence

    @presence.setter
    def presence(self, presence: Callable[[str], bool | None] | None) -> None:
        """Set once the server can tell (ui.state): rooms names heed it too."""
        self._presence = self.names.presence = presence

    def locate(self, owner: str, address: str) -> None:
        """`owner` connects from client `address`. Lock held."""
        self._located[owner] = address
        while len(self._located) > MAX_NAMED_OWNERS:
            del self._located[next(iter(self._located))]

    def reserve(self, owner: str, waiting: int) -> None:
        """Hold a place for one more waiting run of `owner`, who has `waiting` in the
        queue; QueueFull or JobError if it may not. Lock held."""
        if owner in self._gone:
            raise JobError("this session was closed, so its runs were stopped")
        if owner in self._located:
            self._admit_address(owner, self._located[owner])
        waiting += self._reserved[owner]
        cap = self.max_queued_per_owner
        if cap is not None and waiting >= cap:
            raise QueueFull(
                f"You already have {waiting} runs waiting (at most {cap}); "
                "wait for one to start, or cancel one."
            )
        self._reserved[owner] += 1

    def _admit_address(self, owner: str, address: str) -> None:
        owners = self._addresses.setdefault(address, set())
        cap = self.max_owners_per_address
        if owner not in owners and cap is not None and len(owners) >= cap:
            raise JobError(
                f"{len(owners)} sessions from your network address already have runs "
                f"(at most {cap}); close a tab you no longer use, or try again later."
            )
        owners.add(owner)

    def may_start(self, owner: str, running: int) -> bool:
        """Whether one more run of `owner`, who has `running` training, may start now.
        Lock held."""
        cap = self.max_running_per_owner
        return cap is None or running < cap

    def release(self, owner: str) -> None:
        """The reserved run is queued (or was not created). Lock held."""
        self._reserved[owner] -= 1
        if not self._reserved[owner]:
            del self._reserved[owner]

    def heartbeat(self, owner: str) -> None:
        """`owner` is still there. Lock held."""
        self._heartbeats[owner] = self.clock()
        self._gone.discard(owner)

    def name_of(self, owner: str) -> str | None:
        return self.names.name_of(owner)

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
                self._located.pop(owner, None)
                self.names.forget([owner])
                for address, owners in list(self._addresses.items()):
                    owners.discard(owner)
                    if not owners:
                        del self._addresses[address]
        return silent
