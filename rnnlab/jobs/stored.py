"""Runs that have left the server's memory, answered in the live feed's shapes from the
store: read once, then kept for the latest few asked (a finished run does not change).
As in memory, a run's private inputs are answered only to its owner (rnnlab.jobs.feed)."""

from __future__ import annotations

import collections
import json
import math
import threading
from typing import Any

from ..events import influence_view, layer_view, trajectory_view
from ..store import RunStore
from ..values import finite_or_none
from .feed import (
    AskerIs,
    Progress,
    nobody,
    private_inputs,
    row,
    without_inputs,
    without_symbols,
)

# A curve answered from the store keeps at most this many points (every k-th, and the last).
STORED_POINTS = 1500
# Runs no longer in memory whose answers are kept after one read of the store.
STORED_RUNS = 64


class StoredRuns:
    """Answers for runs no longer in memory, in the live shapes, read from the store once
    and kept for the STORED_RUNS latest asked (a finished run does not change)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._lock = threading.Lock()
        self._answers: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._answers.pop(run_id, None)

    def _answer(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            answer = self._answers.get(run_id)
            if answer is not None:
                self._answers.move_to_end(run_id)
                return answer
        progress = Progress.stored(self.store, run_id)
        if progress is None or progress.active:
            return None
        answer = {"progress": progress}
        with self._lock:
            self._answers[run_id] = answer
            while len(self._answers) > STORED_RUNS:
                self._answers.popitem(last=False)
        return answer

    def live(self, run_id: str, asker_is: AskerIs = nobody) -> dict[str, Any] | None:
        """The whole finished curve (at most STORED_POINTS points), as LiveRun.live; its
        error as anyone may see it unless `asker_is` its owner."""
        answer = self._answer(run_id)
        if answer is None:
            return None
        progress = answer["progress"]
        if "live" not in answer:
            history = self.store.history(run_id)
            stride = max(1, math.ceil(len(history) / STORED_POINTS))
            kept = list(range(0, len(history), stride))
            if len(history) and kept[-1] != len(history) - 1:
                kept.append(len(history) - 1)
            steps = history["step"].iloc[kept].astype(int).tolist()
            losses = finite_or_none(history["loss"].iloc[kept].astype(float).tolist())
            evaluations = self.store.evaluations(run_id)
            snapshot = self._snapshot(answer)
            answer["live"] = {
                **progress.state(),
                "snapshot_step": snapshot["step"] if snapshot else None,
                "points": {"step": steps, "loss": losses},
                "evaluations": [
                    [int(e.step), finite_or_none(e.loss), finite_or_none(e.metric), bool(e.solved)]
                    for e in evaluations.itertuples()
                ],
            }
        if progress.error and not asker_is(progress.owner):
            return {**answer["live"], "error": progress.state(public=True)["error"]}
        return answer["live"]

    def row(
        self,
        run_id: str,
        since: int,
        name: str | None,
        *,
        with_config: bool,
        asker_is: AskerIs = nobody,
    ) -> dict[str, Any] | None:
        """A finished run as a row of a race (rnnlab.jobs.feed.row): every point of its
        stored curve (at most STORED_POINTS) after step `since`."""
        live = self.live(run_id)
        if live is None:
            return None
        progress = self._answer(run_id)["progress"]
        points = live["points"]
        public = not asker_is(progress.owner)
        return row(
            progress,
            points["step"],
            points["loss"],
            since,
            name,
            with_config=with_config,
            public=public,
        )

    def _snapshot(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        if "snapshot" not in answer:
            answer["snapshot"] = self.store.snapshot(answer["progress"].run_id)
        return answer["snapshot"]

    def gates(
        self, run_id: str, layer: int, asker_is: AskerIs = nobody
    ) -> tuple[int, bytes | None] | None:
        """One layer's view of the run's last snapshot, as LiveRun's views_json holds it
        (its public_views_json unless `asker_is` the run's owner)."""
        answer = self._answer(run_id)
        if answer is None:
            return None
        snapshot = self._snapshot(answer)
        if snapshot is None or not 0 <= layer < len(snapshot.get("layers", ())):
            return -1, None
        progress = answer["progress"]
        config = progress.config
        public = private_inputs(config["task"], config.get("text_file", ""))
        public = public and not asker_is(progress.owner)
        views = answer.setdefault("public_views" if public else "views", {})
        if layer not in views:
            view = layer_view(snapshot, layer)
            views[layer] = json.dumps(without_inputs(view) if public else view).encode()
        return snapshot["step"], views[layer]

    def _public(self, answer: dict[str, Any], asker_is: AskerIs) -> bool:
        """Whether `answer`'s run has private inputs that the asker may not see."""
        progress = answer["progress"]
        config = progress.config
        private = private_inputs(config["task"], config.get("text_file", ""))
        return private and not asker_is(progress.owner)

    def influence(self, run_id: str, asker_is: AskerIs = nobody) -> tuple[int, bytes | None] | None:
        """The last snapshot's influence view, as LiveRun's influence_json holds it but
        with that snapshot's alone as its history (the store keeps one snapshot)."""
        answer = self._answer(run_id)
        if answer is None:
            return None
        snapshot = self._snapshot(answer)
        view = influence_view(snapshot) if snapshot is not None else None
        if view is None:
            return -1, None
        public = self._public(answer, asker_is)
        name = "public_influence" if public else "influence"
        if name not in answer:
            answer[name] = json.dumps(without_symbols(view) if public else view).encode()
        return view["step"], answer[name]

    def trajectory(self, run_id: str, layer: int) -> tuple[int, bytes | None] | None:
        """One layer's trajectory view of the last snapshot (its paths alone)."""
        answer = self._answer(run_id)
        if answer is None:
            return None
        snapshot = self._snapshot(answer)
        view = trajectory_view(snapshot, layer) if snapshot is not None else None
        if view is None:
            return -1, None
        views = answer.setdefault("trajectories", {})
        if layer not in views:
            views[layer] = json.dumps(view).encode()
        return view["step"], views[layer]

    def gradients(self, run_id: str) -> tuple[int, bytes | None] | None:
        """The run's gradient history, as LiveRun's gradients_json holds it."""
        answer = self._answer(run_id)
        if answer is None:
            return None
        snapshot = self._snapshot(answer)
        if snapshot is None or snapshot.get("gradient_history") is None:
            return -1, None
        if "gradients" not in answer:
            answer["gradients"] = json.dumps(
                {
                    "gradient_step": snapshot.get("gradient_step"),
                    "steps": snapshot["kept"]["steps"],
                    "history": snapshot["gradient_history"],
                }
            ).encode()
        return snapshot.get("gradient_step") or 0, answer["gradients"]
