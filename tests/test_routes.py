"""The live path's HTTP routes (ui/routes.py) on a bare Starlette app, with a real pool.

starlette.testclient needs httpx, which requirements-dev.txt does not install, so the app
is called the way a server calls it: one ASGI request per `get`. The routes' manager is
one from `make_manager` (tiny runs that really train), put in place of get_manager().
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("starlette")
pytest.importorskip("plotly")
from helpers import ENDLESS, running, tiny, until  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

import ui.routes as routes  # noqa: E402
from rnnlab.jobs import JobManager  # noqa: E402


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # as sent: still gzipped if the route gzipped it

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """GET requests straight into an ASGI app, no network and no httpx."""

    def __init__(self, app: Any):
        self.app = app

    def get(self, url: str, headers: dict[str, str] | None = None) -> Reply:
        parts = urlsplit(url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "server": ("testserver", 80),
            "client": ("testclient", 50000),
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        # In a thread of its own: another test's browser may hold this thread's event loop.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, self.app(scope, receive, send)).result()
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return Reply(start["status"], names, body)


@pytest.fixture
def manager(make_manager, monkeypatch) -> JobManager:
    monkeypatch.delenv("RNNLAB_MAX_RUNNING", raising=False)
    made = make_manager(workers=1, max_running=1, max_queued_per_owner=None)
    monkeypatch.setattr(routes, "get_manager", lambda: made)
    return made


@pytest.fixture
def client(manager) -> Client:
    return Client(Starlette(routes=routes.ROUTES))


def assert_json_error(reply: Reply, status: int) -> str:
    assert reply.status == status
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


def test_unknown_and_malformed_run_ids_are_404_json(client):
    for path in ("/api/runs/{}", "/api/runs/{}/gates", "/api/runs/{}/gradients"):
        unknown = assert_json_error(client.get(path.format("0123456789ab")), 404)
        assert unknown == "no such run"
        for bad in ("NOTHEX", "ABCDEF012345", "abc", "0" * 33, "0123456789ab;drop", "%20"):
            assert assert_json_error(client.get(path.format(bad)), 404) == "no such run"
    assert client.get("/api/runs").status == 404
    assert client.get("/api/runs/0123456789ab/gates/extra").status == 404


def test_malformed_since_and_after_are_400(client, manager):
    run_id = manager.submit(tiny(), owner="ana")
    for url in (
        f"/api/runs/{run_id}?since=abc",
        f"/api/runs/{run_id}?since=1.5",
        f"/api/runs/{run_id}?since=",
        "/api/runs/0123456789ab?since=abc",  # checked before the run is looked up
    ):
        assert "since" in assert_json_error(client.get(url), 400)
    assert "after" in assert_json_error(client.get(f"/api/runs/{run_id}/gates?after=x"), 400)


def test_points_of_a_live_run_and_since_filtering(client, manager, store):
    run_id = manager.submit(ENDLESS, owner="ana")
    until(lambda: running(manager, run_id, steps=30), what="30 steps")

    reply = client.get(f"/api/runs/{run_id}")
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    live = reply.json()
    assert live["run_id"] == run_id and live["status"] == "running"
    assert live["steps"] == ENDLESS.steps and live["error"] is None
    steps = live["points"]["step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 30
    assert len(live["points"]["loss"]) == len(steps)
    evaluated = [e[0] for e in live["evaluations"]]
    assert evaluated == list(range(25, 25 * len(evaluated) + 1, 25)) and evaluated

    later = client.get(f"/api/runs/{run_id}?since=20").json()
    assert later["points"]["step"][:10] == list(range(21, 31))
    assert later["points"]["loss"][:10] == live["points"]["loss"][20:30]
    assert all(e[0] > 20 for e in later["evaluations"])
    assert [e[0] for e in later["evaluations"]][:1] == [25]
    future = client.get(f"/api/runs/{run_id}?since=1000000").json()
    assert future["points"] == {"step": [], "loss": []} and future["evaluations"] == []
    assert future["step"] >= len(steps)

    manager.cancel(run_id)
    final = manager.wait(run_id, timeout=120)
    ended = client.get(f"/api/runs/{run_id}?since=0").json()  # the page's last poll
    assert ended["status"] == "stopped" and ended["step"] == final.step
    assert ended["points"]["step"] == list(range(1, final.step + 1))
    assert ended["points"]["loss"] == store.history(run_id)["loss"].tolist()


def test_gates_204_before_a_snapshot_then_compact_pictures(client, manager):
    blocker = manager.submit(tiny(steps=200_000, cell="lstm", num_layers=2), owner="ana")
    waiting = manager.submit(tiny(cell="lstm"), owner="ben")
    until(lambda: running(manager, blocker), what="the first run to train")
    # Waiting in the queue: live, with no snapshot yet.
    assert manager.progress(waiting).status == "queued"
    nothing = client.get(f"/api/runs/{waiting}/gates")
    assert nothing.status == 204 and nothing.body == b""
    assert client.get(f"/api/runs/{waiting}").json()["queue_position"] == 1

    def gates(query: str = ""):
        reply = client.get(f"/api/runs/{blocker}/gates?after=-1{query}")
        assert reply.status in (200, 204)
        return reply if reply.status == 200 else None

    reply = until(gates, what="the first gate pictures")
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["cache-control"] == "no-store"
    view = reply.json()
    assert view["hidden_size"] == 4 and 0 < len(view["units"]) <= 4
    assert len(view["steps"]) > 0 and view["step"] >= 1
    # One layer per request: ?layer=L, 0 by default.
    assert view["layer"] == 0
    second = until(lambda: gates("&layer=1"), what="the second layer's pictures").json()
    assert second["layer"] == 1 and second["units"] == view["units"]
    pictures = [view["gates"], second["gates"]]
    assert client.get(f"/api/runs/{blocker}/gates?layer=2").status == 204  # no such layer
    assert "layer" in assert_json_error(client.get(f"/api/runs/{blocker}/gates?layer=x"), 400)
    assert len(pictures) == 2
    for layer in pictures:
        assert {"i", "f", "g", "o"} <= set(layer)
        for name, picture in layer.items():
            cells = base64.b64decode(picture["bytes"], validate=True)
            assert len(cells) == len(view["units"]) * len(view["steps"]), name
            assert picture["lo"] < picture["hi"]
            if name in ("i", "f", "o"):
                assert (picture["lo"], picture["hi"]) == (0.0, 1.0)

    # Nothing newer than the step the page has: 204, unless a newer snapshot came since.
    again = client.get(f"/api/runs/{blocker}/gates?after={view['step']}")
    assert again.status == 204 or again.json()["step"] > view["step"]
    assert client.get(f"/api/runs/{blocker}/gates?after={view['step'] - 1}").status == 200

    manager.cancel(blocker)
    manager.cancel(waiting)
    manager.wait(blocker, timeout=120)
    manager.wait(waiting, timeout=120)
    # Finished: its last snapshot, from the store, as the same layer views.
    final = client.get(f"/api/runs/{blocker}/gates?layer=1").json()
    stored = manager.store.snapshot(blocker)
    assert final["step"] == stored["step"] >= view["step"] and final["layer"] == 1
    assert final["gates"] == stored["layers"][1]
    assert client.get(f"/api/runs/{blocker}/gates?after={final['step']}").status == 204
    assert client.get(f"/api/runs/{blocker}").json()["status"] == "stopped"


def test_gradient_history_grows_while_training_and_is_served_after(client, manager):
    run_id = manager.submit(tiny(steps=200_000, cell="gru", num_layers=2), owner="ana")

    def history(after: int = -1):
        reply = client.get(f"/api/runs/{run_id}/gradients?after={after}")
        assert reply.status in (200, 204)
        return reply.json() if reply.status == 200 else None

    first = until(history, what="the first gradients")
    assert first["steps"] == list(range(4)) and first["history"][-1][0] == first["gradient_step"]
    assert all(len(norms) == 4 for _step, norms in first["history"])
    assert history(first["gradient_step"]) is None  # nothing newer yet
    later = until(
        lambda: (h := history(first["gradient_step"])) and len(h["history"]) > 1 and h,
        what="a second gradient profile",
    )
    assert later["gradient_step"] > first["gradient_step"]
    steps = [step for step, _norms in later["history"]]
    assert steps == sorted(steps) and steps[0] == first["history"][0][0]

    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)
    final = history()
    assert final["history"] == manager.store.snapshot(run_id)["gradient_history"]
    assert final["gradient_step"] >= later["gradient_step"]


def test_a_run_that_left_memory_is_answered_from_the_store_once(client, manager, monkeypatch):
    run_id = manager.submit(tiny(steps=40, eval_every=10), owner="ana")
    manager.wait(run_id, timeout=120)
    live = client.get(f"/api/runs/{run_id}").json()
    with manager._lock:  # forgotten, as the oldest finished runs are
        del manager._jobs[run_id]
    reads = []
    history = manager.store.history
    monkeypatch.setattr(manager.store, "history", lambda i: reads.append(i) or history(i))

    stored = client.get(f"/api/runs/{run_id}").json()
    assert stored["points"] == live["points"] and stored["evaluations"] == live["evaluations"]
    for field in ("status", "step", "steps", "held_out_loss", "metric", "solved", "solved_at"):
        assert stored[field] == live[field], field
    later = client.get(f"/api/runs/{run_id}?since=30").json()
    assert later["points"]["step"] == list(range(31, 41))
    assert [e[0] for e in later["evaluations"]] == [40]
    assert client.get(f"/api/runs/{run_id}/gates").json()["step"] == 40
    assert reads == [run_id]  # read once, then answered from memory


def test_a_race_run_that_left_memory_keeps_its_curve_and_a_deleted_run_is_gone(client, manager):
    run_id = manager.submit(tiny(steps=3000), owner="ana", sweep_id="f00d")
    manager.wait(run_id, timeout=120)
    with manager._lock:  # forgotten, as the oldest finished runs are
        del manager._jobs[run_id]
    (row,) = client.get("/api/sweeps/f00d").json()["runs"]
    steps = row["points"]["step"]
    assert len(steps) > 1000 and steps[-1] == 3000 == row["seen"]  # thinned once, not twice
    (later,) = client.get(f"/api/sweeps/f00d?since={run_id}:2990").json()["runs"]
    assert later["points"]["step"] == [s for s in steps if s > 2990]

    assert client.get(f"/api/runs/{run_id}/gates").status == 200
    manager.delete_run(run_id)
    assert client.get(f"/api/runs/{run_id}").status == 404
    assert client.get(f"/api/runs/{run_id}/gates").status == 404
    assert client.get("/api/sweeps/f00d").json() == {"runs": []}


def test_a_race_is_served_from_memory_with_its_settings(client, manager):
    sweep_id = "5ea1"
    configs = [tiny(steps=25, cell=cell) for cell in ("rnn", "gru")]
    run_ids = [manager.submit(c, owner="ana", sweep_id=sweep_id) for c in configs]
    assert client.get("/api/sweeps/beef").status == 404
    assert "since" in assert_json_error(client.get(f"/api/sweeps/{sweep_id}?since=x"), 400)
    for run_id in run_ids:
        manager.wait(run_id, timeout=120)

    rows = client.get(f"/api/sweeps/{sweep_id}").json()["runs"]
    assert [row["run_id"] for row in rows] == run_ids
    assert [row["config"]["cell"] for row in rows] == ["rnn", "gru"]
    for row, run_id in zip(rows, run_ids, strict=True):
        summary = manager.store.get_run(run_id).summary
        assert row["status"] == "completed" and row["final_loss"] == summary["final_loss"]
        assert row["points"]["step"] == list(range(1, 26)) and row["seen"] == 25
    again = client.get(f"/api/sweeps/{sweep_id}?since={run_ids[0]}:25").json()["runs"]
    assert (
        again[0]["points"]["step"] == [] and again[1]["points"]["step"] == rows[1]["points"]["step"]
    )


def test_plotly_js_is_served_gzipped(client):
    reply = client.get("/api/plotly.js", headers={"Accept-Encoding": "gzip, deflate"})
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.headers["content-type"].startswith("text/javascript")
    assert "max-age" in reply.headers["cache-control"]
    assert reply.body[:2] == b"\x1f\x8b"
    script = gzip.decompress(reply.body)
    assert script.startswith(b"/**\n* plotly.js v") and b"plotly" in script[:200]
    assert len(script) > 2 * len(reply.body) > 0  # it really is compressed

    plain = client.get("/api/plotly.js", headers={"Accept-Encoding": "identity"})
    assert plain.status == 200 and "content-encoding" not in plain.headers
    assert plain.body == script
    assert client.get("/api/plotly.js").body == script  # no Accept-Encoding at all
