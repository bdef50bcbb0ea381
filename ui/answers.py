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


def influence_bytes(
    manager: JobManager, run_id: str, after: int, *, key: str | None = None
) -> bytes | None:
    """Which input steps the predictions use, and how that grew, as JSON bytes if newer
    than step `after` (the probe's symbols only for the owner's `key`); as gates_bytes."""
    view = manager.influence_view(run_id, asker_is=asker_is(key))
    if view is None:
        raise KeyError(run_id)
    step, payload = view
    return payload if payload is not None and step > after else None


def trajectory_bytes(manager: JobManager, run_id: str, layer: int, after: int) -> bytes | None:
    """Where one layer's hidden state travels, on the latest axes, as JSON bytes if newer
    than step `after`; as gates_bytes (no input text: the same for everyone)."""
    view = manager.trajectory_view(run_id, layer)
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


# A study (rnnlab.tune) as the Explore page draws it. rnnlab.tune brings Optuna (~30 MB):
# it is imported here only once a page has opened a study, never as the server starts.
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_STUDY_TRIALS = 300  # trials in an answer at most: the latest, and the best one
MAX_BEST_POINTS = 1000  # points of the best-so-far series at most (evenly thinned)


@dataclass
class _OpenStudy:
    runner: Any  # rnnlab.tune.StudyRunner
    contributors: set[str] = field(default_factory=set)  # owners who added trials here
    shared: tuple[int, Encoded] | None = None  # (version, answer for a non-contributor)
    importances: dict[str, tuple[int, Any]] = field(default_factory=dict)  # evaluator ->
    lock: threading.Lock = field(default_factory=threading.Lock)


_studies: dict[tuple[int, str], _OpenStudy] = {}  # (id(manager), name) -> what a page opened
_studies_lock = threading.Lock()


def open_study(manager: JobManager, name: str, settings: Any = None) -> Any:
    """The study `name` on `manager` (rnnlab.tune.runner_for: made with `settings` if it
    does not exist), from now on answered by the study route. StudyNotFound if it does not
    exist and no settings are given; ConfigError for a name the route would refuse."""
    from rnnlab.config import ConfigError
    from rnnlab.tune import runner_for

    if not STUDY_NAME.fullmatch(name):
        raise ConfigError(f"a study name is 1 to 64 letters, digits, '.', '_' or '-', not {name!r}")
    runner = runner_for(name, manager, settings)
    with _studies_lock:
        opened = _studies.get((id(manager), name))
        if opened is None or opened.runner is not runner:
            opened = _studies[(id(manager), name)] = _OpenStudy(runner)
    return runner


def _opened(manager: JobManager, name: str) -> _OpenStudy | None:
    return _studies.get((id(manager), name))


def add_trials(manager: JobManager, name: str, owner: str, trials: int, label: str | None) -> int:
    """`owner` adds `trials` trials to an open study under their room name `label`;
    how many were added (a grid stops at its last point)."""
    opened = _opened(manager, name)
    if opened is None:
        raise KeyError(name)
    with opened.lock:
        opened.contributors.add(owner)
    return opened.runner.add(owner, trials, label=label)


def _asker(opened: _OpenStudy, key: str | None) -> str | None:
    """The contributor whose viewer key `key` is, if any."""
    if key is None or not VIEWER_KEY.fullmatch(key):
        return None
    with opened.lock:
        owners = list(opened.contributors)
    return next((o for o in owners if hmac.compare_digest(viewer_key(o), key)), None)


def _bounded(view: dict[str, Any]) -> dict[str, Any]:
    """A study view with at most MAX_STUDY_TRIALS trials (the latest, and the best) and
    MAX_BEST_POINTS points of best-so-far."""
    trials = view["trials"]
    if len(trials) > MAX_STUDY_TRIALS:
        best = view["best"]["number"] if view["best"] else None
        kept = trials[-MAX_STUDY_TRIALS:]
        if best is not None and all(t["number"] != best for t in kept):
            kept = [next(t for t in trials if t["number"] == best), *kept[1:]]
        view = {**view, "trials": kept}
    series = view["best_so_far"]
    count = len(series["trials"])
    if count > MAX_BEST_POINTS:
        picked = sorted(
            {round(i * (count - 1) / (MAX_BEST_POINTS - 1)) for i in range(MAX_BEST_POINTS)}
        )
        view = {**view, "best_so_far": {k: [v[i] for i in picked] for k, v in series.items()}}
    return view


def _importances(opened: _OpenStudy, complete: int, evaluator: str) -> Any:
    """What matters by `evaluator` (not the default): computed once per count of
    complete trials. KeyError for an evaluator that does not exist; a plain reason (str)
    for one that cannot run here."""
    from rnnlab.tune.importance import EVALUATORS, evaluator_available
    from rnnlab.tune.view import study_importances

    if evaluator not in EVALUATORS:
        raise KeyError(f"no evaluator {evaluator!r}; known: {', '.join(EVALUATORS)}")
    reason = evaluator_available(evaluator)
    if reason is not None:
        return {"evaluator": evaluator, "unavailable": reason}
    with opened.lock:  # fANOVA takes seconds: one viewer computes, the others wait for it
        cached = opened.importances.get(evaluator)
        if cached is None or cached[0] != complete:
            found = study_importances(opened.runner, evaluator)
            cached = opened.importances[evaluator] = (complete, found)
        return cached[1]


def _study(manager: JobManager, name: str) -> _OpenStudy:
    opened = _opened(manager, name)
    if opened is None:
        raise KeyError("no such study on this server")
    return opened


def study_answer(
    manager: JobManager,
    name: str,
    *,
    since: int = -1,
    evaluator: str | None = None,
    key: str | None = None,
) -> dict[str, Any] | None:
    """The study as everyone sees it (rnnlab.tune.study_view, at most MAX_STUDY_TRIALS
    trials), with what matters by `evaluator` (default: the view's own, main-effect) and
    `mine`: the numbers of the trials the holder of `key` asked for. None if nothing
    changed since version `since`; KeyError if no page of this process has opened the
    study, or for an evaluator that does not exist."""
    from rnnlab.tune import study_view
    from rnnlab.tune.importance import DEFAULT_EVALUATOR
    from rnnlab.tune.view import mine

    opened = _study(manager, name)
    runner = opened.runner
    if since >= 0 and runner.version == since:
        return None
    view = _bounded(study_view(runner))
    # "status" as a run's: a page that feeds its views itself (ui/live.py) reads it.
    answer = {**view, "status": "running" if view["busy"] else "completed"}
    if evaluator and evaluator != DEFAULT_EVALUATOR:
        answer["importances"] = _importances(opened, view["counts"]["complete"], evaluator)
    asker = _asker(opened, key)
    answer["mine"] = mine(runner, asker) if asker is not None else []
    return answer


def study_encoded(
    manager: JobManager,
    name: str,
    *,
    since: int = -1,
    evaluator: str | None = None,
    key: str | None = None,
) -> Encoded | None:
    """study_answer() as JSON bytes: for a viewer who asked for no trial, with the
    default evaluator, encoded (and gzipped) once per version of the study."""
    from rnnlab.tune.importance import DEFAULT_EVALUATOR

    opened = _study(manager, name)
    chosen = evaluator not in (None, "", DEFAULT_EVALUATOR)
    if chosen or _asker(opened, key) is not None:
        answer = study_answer(manager, name, since=since, evaluator=evaluator, key=key)
        return None if answer is None else Encoded.of(answer)
    version = opened.runner.version
    if since >= 0 and version == since:
        return None
    shared = opened.shared
    if shared is None or shared[0] != version:
        answer = study_answer(manager, name)
        shared = opened.shared = (answer["version"], Encoded.of(answer))
    return shared[1]


SHARED_STUDIES = 12  # studies in the room's list at most, the latest shared first
_shared_studies: dict[int, dict[str, str | None]] = {}  # id(manager) -> name -> by whom


def share_study(manager: JobManager, name: str, label: str | None) -> None:
    """Put an open study at the top of the room's list (shared_studies)."""
    _study(manager, name)
    with _studies_lock:
        shared = _shared_studies.setdefault(id(manager), {})
        shared.pop(name, None)
        shared[name] = label
        while len(shared) > SHARED_STUDIES:
            del shared[next(iter(shared))]


def shared_studies(manager: JobManager) -> list[tuple[str, str | None]]:
    """The studies shared with the room, latest first: (name, the sharer's room name)."""
    with _studies_lock:
        return list(reversed(_shared_studies.get(id(manager), {}).items()))
