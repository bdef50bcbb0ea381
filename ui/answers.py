"""What the live routes answer, as plain values: the routes send them as JSON, and a
page that cannot reach the routes feeds the same values to the same browser views.

No Streamlit here: ui/routes.py calls these off the server's event loop (in its thread
pool). Every answer comes from the job manager's memory, or for a run that has left it,
from the store read once; the room's rows are computed at most every ROOM_EVERY_S and
shared by everyone who asks.

A run's private inputs (a typed word, an uploaded text, the predictions on them) are in
an answer only for the session that owns the run, which proves it with its viewer key:
an HMAC of its owner id under a secret of this server process. The owner id itself never
leaves the server, and a key from another process or another session opens nothing.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rnnlab.jobs import JobManager
from rnnlab.jobs.feed import AskerIs, nobody

RUN_ID = re.compile(r"[0-9a-f]{6,32}")
SWEEP_ID = re.compile(r"[0-9a-f]{4,32}")
VIEWER_KEY = re.compile(r"[0-9a-f]{64}")
ROOM_RUNS = 60  # rows at most: every active run first, then the latest that ended
ROOM_ENDED = 30  # ended runs kept in the room
ROOM_EVERY_S = 0.25  # the room's rows are computed at most this often, for everyone
GZIP_LEVEL = 5  # as Streamlit's own middleware: most of level 9's gain at a third the cost

_SECRET = secrets.token_bytes(32)  # per process: keys of an earlier server open nothing


@functools.lru_cache(maxsize=4096)
def viewer_key(owner: str) -> str:
    """The key a session shows to be answered its own runs' private inputs."""
    return hmac.new(_SECRET, owner.encode(), hashlib.sha256).hexdigest()


def asker_is(key: str | None) -> AskerIs:
    """Whether a run's owner is the session that holds `key`; without a valid key, nobody."""
    if key is None or not VIEWER_KEY.fullmatch(key):
        return nobody
    return lambda owner: hmac.compare_digest(viewer_key(owner), key)


def run_answer(
    manager: JobManager, run_id: str, since: int = 0, *, key: str | None = None
) -> dict[str, Any] | None:
    """Progress and the points after step `since` (rnnlab.jobs.feed.LiveRun.live); None
    if there is no such run."""
    answer = manager.answer(run_id, since=since, asker_is=asker_is(key))
    if answer is None or not since:
        return answer
    steps, losses = answer["points"]["step"], answer["points"]["loss"]
    start = bisect.bisect_right(steps, since)  # 0 but for a stored run's whole curve
    return {
        **answer,
        "points": {"step": steps[start:], "loss": losses[start:]},
        "evaluations": [e for e in answer["evaluations"] if e[0] > since],
    }


def gates_bytes(
    manager: JobManager, run_id: str, layer: int, after: int, *, key: str | None = None
) -> bytes | None:
    """One layer's view of the newest snapshot as JSON bytes, if newer than step `after`
    (the probe's inputs only for the owner's `key`); None if there is none newer.
    KeyError if there is no such run."""
    view = manager.gates_view(run_id, layer, asker_is=asker_is(key))
    if view is None:
        raise KeyError(run_id)
    step, payload = view
    return payload if payload is not None and step > after else None


def gradients_bytes(manager: JobManager, run_id: str, after: int) -> bytes | None:
    """The gradient history as JSON bytes, if its latest step is newer than `after`."""
    view = manager.gradients_view(run_id)
    if view is None:
        raise KeyError(run_id)
    step, payload = view
    return payload if payload is not None and step > after else None


class Encoded:
    """A JSON answer's bytes, gzipped at most once however many ask for it that way."""

    def __init__(self, body: bytes):
        self.body = body
        self._gzipped: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, value: Any) -> Encoded:
        return cls(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            return self._gzipped


@dataclass
class _RoomRows:
    manager: JobManager
    bounds: tuple[int, int]  # (ROOM_RUNS, ROOM_ENDED) it was computed with
    at: float
    rows: list[dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    whole: Encoded | None = None  # the answer for a page that has seen nothing yet


class SharedRoom:
    """The room's rows with every point of their curves, computed at most every
    ROOM_EVERY_S and shared by every viewer; each answer is then a slice of them (the
    points after the step each viewer has), and the whole answer is encoded once."""

    def __init__(self, every_s: float = ROOM_EVERY_S, clock=time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._lock = threading.Lock()
        self._latest: _RoomRows | None = None

    def _current(self, manager: JobManager) -> _RoomRows:
        def usable(rows: _RoomRows | None) -> bool:
            return rows is not None and rows.manager is manager and rows.bounds == bounds

        bounds = (ROOM_RUNS, ROOM_ENDED)
        latest = self._latest
        if usable(latest):
            if self.clock() - latest.at < self.every_s:
                return latest
            if not self._lock.acquire(blocking=False):
                return latest  # another thread is computing the next: this one is recent
        else:
            self._lock.acquire()
        try:
            latest = self._latest
            if not usable(latest) or self.clock() - latest.at >= self.every_s:
                rows = manager.room({}, runs=bounds[0], ended=bounds[1])
                latest = self._latest = _RoomRows(manager, bounds, self.clock(), rows)
            return latest
        finally:
            self._lock.release()

    def answer(self, manager: JobManager, since: dict[str, int]) -> dict[str, Any]:
        """Every active run and the latest ended ones, with the new points of their curves."""
        rows = self._current(manager).rows
        return {"runs": [_after(row, since.get(row["run_id"], 0)) for row in rows]}

    def encoded(self, manager: JobManager, since: dict[str, int]) -> Encoded:
        """answer() as JSON bytes; the whole answer (nothing seen yet) encoded once."""
        rows = self._current(manager)
        if any(since.get(row["run_id"], 0) > 0 for row in rows.rows):
            return Encoded.of(self.answer(manager, since))
        with rows.lock:
            if rows.whole is None:
                rows.whole = Encoded.of({"runs": rows.rows})
            return rows.whole


def _after(row: dict[str, Any], since: int) -> dict[str, Any]:
    """A room row (rnnlab.jobs.feed.row from step 0) as it would be from step `since`."""
    if since <= 0:
        return row
    steps, losses = row["points"]["step"], row["points"]["loss"]
    start = bisect.bisect_right(steps, since)
    kept = steps[start:]
    return {
        **row,
        "points": {"step": kept, "loss": losses[start:]},
        "seen": kept[-1] if kept else since,
    }


ROOM = SharedRoom()


def room_answer(manager: JobManager, since: dict[str, int]) -> dict[str, Any]:
    """Every active run and the latest ended ones, with the new points of their curves;
    the same for everyone (rnnlab.jobs.watch.Watched.room)."""
    return ROOM.answer(manager, since)


def sweep_answer(
    manager: JobManager, sweep_id: str, since: dict[str, int], *, key: str | None = None
) -> dict[str, Any] | None:
    """Every run of a sweep so far, with the new points of their curves (the settings'
    word and uploaded file only for the owner's `key`); None if unknown."""
    rows = manager.sweep(sweep_id, since, asker_is=asker_is(key))
    return None if rows is None else {"runs": rows}


def since_pairs(text: str, limit: int) -> dict[str, int] | None:
    """`ID:N,ID:N,...` as {run id: step}; None if it is not that, or has over `limit` pairs."""
    since: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        run_id, colon, step = part.partition(":")
        digits = step.isascii() and step.isdigit() and len(step) < 10
        if not (colon and digits and RUN_ID.fullmatch(run_id)):
            return None
        since[run_id] = int(step)
    return since if len(since) <= limit else None


def decoded(payload: bytes | None) -> Any:
    """A JSON answer's bytes as values, for a page that feeds its views itself."""
    return None if payload is None else json.loads(payload)
