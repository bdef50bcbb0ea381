"""What the live routes answer, as plain values: the routes send them as JSON, and a
page that cannot reach the routes feeds the same values to the same browser views.

No Streamlit here: ui/routes.py runs on the server's event loop. Every answer comes
from the job manager's memory, or for a run that has left it, from the store read once.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from rnnlab.jobs import JobManager

RUN_ID = re.compile(r"[0-9a-f]{6,32}")
SWEEP_ID = re.compile(r"[0-9a-f]{4,32}")
ROOM_RUNS = 60  # rows at most: every active run first, then the latest that ended
ROOM_ENDED = 30  # ended runs kept in the room


def run_answer(manager: JobManager, run_id: str, since: int = 0) -> dict[str, Any] | None:
    """Progress and the points after step `since` (rnnlab.jobs.feed.LiveRun.live); None
    if there is no such run."""
    answer = manager.answer(run_id, since=since)
    if answer is None or not since:
        return answer
    steps, losses = answer["points"]["step"], answer["points"]["loss"]
    start = bisect.bisect_right(steps, since)  # 0 but for a stored run's whole curve
    return {
        **answer,
        "points": {"step": steps[start:], "loss": losses[start:]},
        "evaluations": [e for e in answer["evaluations"] if e[0] > since],
    }


def gates_bytes(manager: JobManager, run_id: str, layer: int, after: int) -> bytes | None:
    """One layer's view of the newest snapshot as JSON bytes, if newer than step `after`;
    None if there is none newer. KeyError if there is no such run."""
    view = manager.gates_view(run_id, layer)
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


def room_answer(manager: JobManager, since: dict[str, int]) -> dict[str, Any]:
    """Every active run and the latest ended ones, with the new points of their curves."""
    return {"runs": manager.room(since, runs=ROOM_RUNS, ended=ROOM_ENDED)}


def sweep_answer(manager: JobManager, sweep_id: str, since: dict[str, int]):
    """Every run of a sweep so far, with the new points of their curves; None if unknown."""
    rows = manager.sweep(sweep_id, since)
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
