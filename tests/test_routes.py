"""The live path's HTTP routes (ui/routes.py) on a bare Starlette app, with a real pool.

starlette.testclient needs httpx, which requirements-dev.txt does not install, so the app
is called the way a server calls it: one ASGI request per `get`. The routes' manager is
one from `make_manager` (tiny runs that really train), put in place of get_manager().
"""

from __future__ import annotations

import array
import asyncio
import base64
import concurrent.futures
import gzip
import itertools
import json
import math
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

import ui.answers as answers  # noqa: E402
import ui.routes as routes  # noqa: E402
from rnnlab.jobs import JobManager, feed  # noqa: E402
from rnnlab.jobs.feed import WITHHELD, Progress  # noqa: E402


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

    def get(
        self, url: str, headers: dict[str, str] | None = None, address: str = "testclient"
    ) -> Reply:
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
            "client": (address, 50000),
        }
        sent: list[dict] = []
        asked = []

        async def receive() -> dict:
            if not asked:
                asked.append(True)
                return {"type": "http.request", "body": b"", "more_body": False}
            while not any(  # as a server: the client goes once the whole answer is sent
                m["type"] == "http.response.body" and not m.get("more_body") for m in sent
            ):
                await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}

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


def test_plotly_js_is_served_gzipped_or_plain_from_memory(client, monkeypatch):
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
    assert plain.headers["content-length"] == str(len(script))
    # Both copies stay in memory: neither is read nor decompressed again.
    monkeypatch.setattr(routes, "plotly_source", lambda: Path("/nonexistent/plotly.min.js"))
    monkeypatch.setattr(gzip, "decompress", lambda *a, **k: pytest.fail("decompressed"))
    assert client.get("/api/plotly.js").body == script  # no Accept-Encoding at all
    assert client.get("/api/plotly.js", headers={"Accept-Encoding": "gzip"}).body == reply.body


# A public room: private inputs, shared answers, gzip, a rate limit, bounded answers ------

WORD = "diaryzq"  # a word someone typed: no other session may read it back


def as_owner(owner: str) -> dict[str, str]:
    return {routes.KEY_HEADER: answers.viewer_key(owner)}


def test_a_runs_word_and_predictions_are_answered_only_to_its_owner(client, manager):
    run_id = manager.submit(tiny(steps=200_000, word=WORD), owner="ana", sweep_id="d1a7")
    gates = f"/api/runs/{run_id}/gates"
    until(lambda: client.get(gates).status == 200, what="the first gate pictures")
    strangers = [
        client.get(gates),  # no key
        client.get(gates, headers=as_owner("ben")),  # another session's key
        client.get(gates, headers={routes.KEY_HEADER: "ana"}),  # the owner id is no key
        client.get(gates, headers={routes.KEY_HEADER: "0" * 64}),
    ]
    for reply in strangers:
        view = reply.json()
        assert view["predictions"] is None and view["private"] is True
        assert {"pre", "h"} <= set(view["gates"]) and view["gate_means"] is not None
        assert WORD.encode() not in reply.body and len(reply.body) < 64 * 1024
    owners = client.get(gates, headers=as_owner("ana")).json()
    assert "".join(owners["predictions"]["input"]) == WORD[:-1]  # hello reads word[:-1]
    assert "private" not in owners

    def public_config(headers=None) -> dict:
        (row,) = client.get("/api/sweeps/d1a7", headers=headers).json()["runs"]
        return row["config"]

    assert public_config()["word"] == WITHHELD and public_config(as_owner("ben"))["word"] != WORD
    assert public_config(as_owner("ana"))["word"] == WORD
    room = client.get("/api/room")
    assert WORD.encode() not in room.body and "config" not in room.json()["runs"][0]
    assert WORD.encode() not in client.get(f"/api/runs/{run_id}").body
    assert answers.viewer_key("ana") != answers.viewer_key("ben")
    assert "ana" not in answers.viewer_key("ana")

    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)
    with manager._lock:  # forgotten, as the oldest finished runs are: from the store now
        del manager._jobs[run_id]
    stored = client.get(gates)
    assert stored.json()["predictions"] is None and stored.json()["step"] >= owners["step"]
    owners = client.get(gates, headers=as_owner("ana")).json()
    assert "".join(owners["predictions"]["input"]) == WORD[:-1]
    assert public_config()["word"] == WITHHELD and public_config(as_owner("ana"))["word"] == WORD
    assert client.get(gates).json()["predictions"] is None  # the owner's answer is not shared


def test_an_uploaded_texts_path_and_predictions_are_withheld_from_everyone_else(
    client, manager, tmp_path
):
    diary = tmp_path / "diary.txt"
    diary.write_text("dear diary, today I trained a network. " * 40, encoding="utf-8")
    text = tiny(task="text", text_file=str(diary), seq_len=12, steps=40)
    missing = tiny(task="text", text_file=str(tmp_path / "lost-diary.txt"), seq_len=12)
    text_id = manager.submit(text, owner="ana", sweep_id="7e47")
    missing_id = manager.submit(missing, owner="ana", sweep_id="7e47")
    manager.wait(text_id, timeout=120)
    assert manager.wait(missing_id, timeout=120).status == "failed"

    def body(url: str, owner: str | None = None) -> bytes:
        return client.get(url, headers=as_owner(owner) if owner else None).body

    path = str(tmp_path).encode()
    for url in (f"/api/runs/{missing_id}", "/api/sweeps/7e47", "/api/room"):
        assert path not in body(url) and path not in body(url, "ben")
    assert str(diary).encode() in body("/api/sweeps/7e47", "ana")
    assert b"lost-diary.txt" in body(f"/api/runs/{missing_id}", "ana")  # the owner's error
    public = client.get(f"/api/runs/{missing_id}").json()["error"]
    assert WITHHELD in public and "cannot read" in public
    rows = client.get("/api/sweeps/7e47").json()["runs"]
    assert {row["config"]["text_file"] for row in rows} == {WITHHELD}
    gates = client.get(f"/api/runs/{text_id}/gates").json()
    assert gates["predictions"] is None and gates["private"] is True
    owners = client.get(f"/api/runs/{text_id}/gates", headers=as_owner("ana")).json()
    assert "".join(owners["predictions"]["input"]) in diary.read_text(encoding="utf-8")


def test_a_run_without_private_inputs_shows_its_predictions_to_everyone(client, manager):
    adding = tiny(task="adding", seq_len=10, steps=20)
    run_id = manager.submit(adding, owner="ana")
    manager.wait(run_id, timeout=120)
    view = client.get(f"/api/runs/{run_id}/gates").json()
    assert view["predictions"]["kind"] == "last_value" and "private" not in view


def test_large_answers_are_gzipped_and_the_room_is_computed_once_for_everyone(
    client, manager, monkeypatch
):
    run_id = manager.submit(tiny(steps=100_000), owner="ana")  # a point every 250 steps
    until(lambda: running(manager, run_id, steps=20_000), what="20,000 steps")
    now = [0.0]
    monkeypatch.setattr(answers.ROOM, "clock", lambda: now[0])
    computed = []
    room = manager.room
    monkeypatch.setattr(manager, "room", lambda *a, **k: computed.append(1) or room(*a, **k))
    gzip_ok = {"Accept-Encoding": "gzip, deflate, br"}

    plain = client.get("/api/room")
    zipped = client.get("/api/room", headers=gzip_ok)
    assert "content-encoding" not in plain.headers and zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert gzip.decompress(zipped.body) == plain.body and len(zipped.body) < len(plain.body)
    (row,) = plain.json()["runs"]
    for _ in range(20):
        assert client.get("/api/room", headers=gzip_ok).body == zipped.body
    # A viewer that has seen some of the curve gets the rest, from the same rows.
    seen = row["points"]["step"][0]
    (later,) = client.get(f"/api/room?since={run_id}:{seen}").json()["runs"]
    assert later["points"]["step"] == row["points"]["step"][1:] and later["seen"] == row["seen"]
    (beyond,) = client.get(f"/api/room?since={run_id}:{10**8}").json()["runs"]
    assert beyond["points"] == {"step": [], "loss": []} and beyond["seen"] == 10**8
    assert len(computed) == 1  # 24 answers, one computation
    now[0] += answers.ROOM_EVERY_S
    assert client.get("/api/room").json()["runs"][0]["step"] >= row["step"]
    assert len(computed) == 2

    points = client.get(f"/api/runs/{run_id}", headers=gzip_ok)
    assert points.headers["content-encoding"] == "gzip"
    steps = json.loads(gzip.decompress(points.body))["points"]["step"]
    assert steps[0] == 1 and len(steps) <= feed.LIVE_POINTS + 1
    small = client.get(f"/api/runs/{run_id}?since={10**8}", headers=gzip_ok)
    assert "content-encoding" not in small.headers and small.json()["points"]["step"] == []
    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)


def test_a_room_row_from_a_later_step_is_the_one_row_would_make():
    """The shared room slices rows made from step 0; that equals a row made from `since`."""
    steps = list(range(1, 1001))
    losses = [1 / step for step in steps]
    for status, stride in (("running", 1), ("running", 7), ("stopped", 7)):
        progress = Progress("f00d01", "ana", status, tiny(steps=2800).to_dict(), step=1000)

        def made(since: int, progress=progress, stride=stride) -> dict:
            return feed.row(
                progress, steps, losses, since, "Ana", with_config=False, public=True, stride=stride
            )

        whole = made(0)
        for since in (0, 1, 6, 7, 500, 994, 999, 1000, 5000):
            assert answers._after(whole, since) == made(since), (status, stride, since)


def test_plotly_js_asked_by_many_tabs_at_once_is_compressed_once(client, monkeypatch):
    monkeypatch.setattr(routes, "_PLOTLY", {})
    compressed = []
    compress = gzip.compress
    monkeypatch.setattr(gzip, "compress", lambda *a, **k: compressed.append(1) or compress(*a, **k))
    with concurrent.futures.ThreadPoolExecutor(8) as tabs:
        asked = [
            tabs.submit(client.get, "/api/plotly.js", {"Accept-Encoding": "gzip"}) for _ in range(8)
        ]
        bodies = {future.result().body for future in asked}
    assert len(bodies) == 1 and len(compressed) == 1


def test_a_live_rows_grid_is_read_as_a_slice_and_equals_the_row_of_every_point():
    """LiveRun.row reads its grid without going through every step (76 ms against 4 ms
    for a room of 60 rows, 30 of them 10,000 steps into a 200,000-step run)."""
    for total, count, status, first in itertools.product(
        (400, 7000, 200_000), (0, 1, 399, 1234, 10_000), ("running", "completed"), (1, 3)
    ):
        job = feed.LiveRun("abcdef012345", "ana", tiny(task="adding", steps=total), None)
        job.curve_steps = array.array("l", range(first, first + count))
        job.curve_losses = array.array(
            "d", [math.nan if k % 97 == 0 else 1 / (k + 1) for k in range(count)]
        )
        job.status, job.step = status, first + count - 1
        stride = max(1, math.ceil(total / feed.ROW_POINTS))
        for since in (0, 1, stride - 1, stride, stride + 1, 1000, 10**6):
            steps, losses = job.points(since)
            every = feed.row(
                job.progress(None, with_snapshot=False),
                steps,
                losses,
                since,
                "Ana",
                with_config=False,
                public=True,
                stride=stride,
            )
            assert job.row(since, None, "Ana", with_config=False, public=True) == every


def test_an_address_beyond_its_rate_is_answered_429_with_retry_after(client, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(routes, "LIMIT", routes.RateLimit(2.0, 3.0, clock=lambda: now[0]))
    assert [client.get("/api/room").status for _ in range(3)] == [200] * 3
    refused = client.get("/api/room")
    assert refused.status == 429 and refused.headers["retry-after"] == "1"
    assert "too many" in refused.json()["error"]
    assert client.get("/api/plotly.js").status == 429  # every route counts
    assert client.get("/api/room", address="10.0.0.2").status == 200  # each address its own
    now[0] += 0.5  # one more request a half second later, at 2 a second
    assert [client.get("/api/room").status for _ in range(2)] == [200, 429]
    now[0] += 10
    assert [client.get("/api/room").status for _ in range(4)] == [200, 200, 200, 429]
    # The real limit: 30 tabs behind one address, each at its busiest (6 a second), fit.
    assert routes.RATE_PER_S >= 30 * 6 and routes.BURST >= 2 * routes.RATE_PER_S


def test_the_rate_limit_forgets_idle_addresses(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(routes, "MAX_ADDRESSES", 3)
    limit = routes.RateLimit(1.0, 2.0, clock=lambda: now[0])
    for address in ("a", "b", "c"):
        assert limit.wait_s(address) == 0
    now[0] += 5  # all three full again: forgotten when a fourth comes
    assert limit.wait_s("d") == 0 and set(limit._buckets) == {"d"}


def test_answers_are_bounded(client, manager, monkeypatch):
    monkeypatch.setattr(feed, "LIVE_POINTS", 40)
    run_id = manager.submit(ENDLESS, owner="ana")
    until(lambda: running(manager, run_id, steps=400), what="400 steps")
    live = client.get(f"/api/runs/{run_id}").json()
    steps = live["points"]["step"]
    assert len(steps) <= 41 and steps[0] == 1 and steps == sorted(set(steps))
    assert steps[-1] >= 400 and len(live["evaluations"]) <= 40
    stride = steps[1] - steps[0]
    assert steps[:-1] == list(range(1, steps[-2] + 1, stride))  # every k-th, and the last
    later = client.get(f"/api/runs/{run_id}?since={steps[-1]}").json()["points"]["step"]
    assert not later or later[0] > steps[-1]
    # A since too long to be real is refused before it is read.
    too_long = ",".join(f"{i:032x}:999999999" for i in range(2 * answers.ROOM_RUNS + 1))
    assert "since" in assert_json_error(client.get(f"/api/room?since={too_long}"), 400)
    (row,) = client.get("/api/room").json()["runs"]
    assert len(row["points"]["step"]) <= feed.ROW_POINTS + 1
    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)


# Which inputs the predictions use, and where the hidden state travels ---------------------


def test_influence_and_paths_204_before_a_snapshot_then_grow_and_are_served_after(client, manager):
    config = tiny(task="adding", seq_len=12, steps=200_000, cell="lstm", num_layers=2)
    run_id = manager.submit(config, owner="ana")
    waiting = manager.submit(tiny(cell="lstm"), owner="ben")
    until(lambda: running(manager, run_id), what="the first run to train")
    assert client.get(f"/api/runs/{waiting}/influence").status == 204
    assert client.get(f"/api/runs/{waiting}/trajectory").status == 204

    def part(path: str):
        reply = client.get(path)
        assert reply.status in (200, 204)
        assert reply.headers["cache-control"] == "no-store"
        return reply.json() if reply.status == 200 else None

    first = until(lambda: part(f"/api/runs/{run_id}/influence?after=-1"), what="influence")
    assert set(first) == {
        "step", "seq_len", "steps", "last", "map_steps", "map", "directions", "captured",
        "marked", "symbols", "history",
    }  # fmt: skip
    assert first["seq_len"] == 12 and first["steps"] == list(range(12))
    assert len(first["last"]) == 4 and all(len(row) == 12 for row in first["last"])
    assert first["map"] is None and first["symbols"] is None  # adding: the last step only
    assert [len(marks) for marks in first["marked"]] == [2, 2, 2, 2]
    assert all(marks[0] < 6 <= marks[1] for marks in first["marked"])  # one in each half
    assert first["history"][-1] == [first["step"], first["last"][0]]
    assert part(f"/api/runs/{run_id}/influence?after={first['step']}") is None

    paths = [
        until(lambda path=path: part(path), what="paths")
        for path in (f"/api/runs/{run_id}/trajectory?layer={layer}" for layer in (0, 1))
    ]
    for layer, view in enumerate(paths):
        assert set(view) == {
            "layer", "layers", "step", "reference_step", "reference_explained", "steps",
            "snapshots",
        }  # fmt: skip
        assert (view["layer"], view["layers"], view["steps"]) == (layer, 2, list(range(12)))
        latest = view["snapshots"][-1]
        assert latest["step"] == view["step"] and latest["reference_step"] == view["reference_step"]
        assert len(latest["paths"]) == 4 and all(len(path) == 12 for path in latest["paths"])
        assert all(len(point) == 2 for path in latest["paths"] for point in path)
        assert 0 < sum(latest["explained"]) <= 1 + 1e-6
    assert part(f"/api/runs/{run_id}/trajectory?layer=2") is None  # no such layer
    assert "layer" in assert_json_error(client.get(f"/api/runs/{run_id}/trajectory?layer=x"), 400)
    assert "after" in assert_json_error(client.get(f"/api/runs/{run_id}/influence?after=x"), 400)

    later = until(
        lambda: part(f"/api/runs/{run_id}/influence?after={first['step']}"),
        what="a second snapshot with influence",
    )
    steps = [step for step, _last in later["history"]]
    assert steps == sorted(steps) and steps[0] == first["step"] and steps[-1] == later["step"]
    moved = until(
        lambda: part(f"/api/runs/{run_id}/trajectory?after={paths[0]['step']}"),
        what="a second path",
    )
    axes = moved["reference_step"]
    shared = [shot for shot in moved["snapshots"] if shot["reference_step"] == axes]
    assert shared == moved["snapshots"]  # only the snapshots on the latest axes
    assert [shot["step"] for shot in shared] == sorted({shot["step"] for shot in shared})

    manager.cancel(run_id)
    manager.cancel(waiting)
    manager.wait(run_id, timeout=120)
    manager.wait(waiting, timeout=120)
    stored = manager.store.snapshot(run_id)
    final = part(f"/api/runs/{run_id}/influence")  # the store keeps the last snapshot alone
    assert final["step"] == stored["influence"]["step"] >= later["step"]
    assert final["history"] == [[final["step"], final["last"][0]]]
    assert part(f"/api/runs/{run_id}/influence?after={final['step']}") is None
    final_path = part(f"/api/runs/{run_id}/trajectory?layer=1")
    assert final_path["snapshots"][-1]["paths"] == stored["trajectory"][1]["paths"]


def test_the_probe_characters_on_the_influence_axes_are_answered_only_to_the_owner(client, manager):
    run_id = manager.submit(tiny(steps=200_000, word=WORD), owner="ana")
    influence = f"/api/runs/{run_id}/influence"
    until(lambda: client.get(influence).status == 200, what="the first influence")
    for reply in (
        client.get(influence),
        client.get(influence, headers=as_owner("ben")),
        client.get(f"/api/runs/{run_id}/trajectory"),
        client.get(f"/api/runs/{run_id}/trajectory", headers=as_owner("ana")),
    ):
        assert reply.status == 200 and WORD.encode() not in reply.body
        assert all(f'"{c}"'.encode() not in reply.body for c in set(WORD))
    public = client.get(influence).json()
    assert public["symbols"] is None and public["private"] is True
    assert public["map"] is not None and len(public["map_steps"]) == len(WORD) - 1
    owners = client.get(influence, headers=as_owner("ana")).json()
    assert "".join(owners["symbols"]) == WORD[:-1] and "private" not in owners

    manager.cancel(run_id)
    manager.wait(run_id, timeout=120)
    with manager._lock:  # forgotten, as the oldest finished runs are: from the store now
        del manager._jobs[run_id]
    assert client.get(influence).json()["symbols"] is None
    assert WORD.encode() not in client.get(influence).body
    assert "".join(client.get(influence, headers=as_owner("ana")).json()["symbols"]) == WORD[:-1]
    assert client.get(influence).json()["symbols"] is None  # the owner's answer is not shared


def test_influence_and_path_answers_stay_bounded_with_full_histories():
    """The largest answers: T = 100 kept steps, full histories, a 2-layer run's paths."""
    from rnnlab.events import (
        MAX_INFLUENCE_HISTORY,
        MAX_TRAJECTORY_HISTORY,
        influence_view,
        thinned_append,
        trajectory_point,
        trajectory_view,
    )
    from rnnlab.train import train

    config = tiny(task="text", seq_len=100, hidden_size=32, num_layers=2, steps=2)
    snapshot = [e for e in train(config, snapshot_every_s=0.0) if e.kind == "snapshot"][-1]
    snapshot = snapshot.to_dict()
    influence, history, paths = snapshot["influence"], [], []
    for step in range(200):  # the worker's thinning keeps them within their bounds
        history = thinned_append(history, [step, influence["last"][0]], MAX_INFLUENCE_HISTORY)
        point = trajectory_point({**snapshot["trajectory"][0], "step": step})
        paths = thinned_append(paths, point, MAX_TRAJECTORY_HISTORY)
        assert len(history) <= MAX_INFLUENCE_HISTORY and len(paths) <= MAX_TRAJECTORY_HISTORY
    assert [entry[0] for entry in history][:1] == [0] and history[-1][0] == 199
    history = [[step, influence["last"][0]] for step in range(MAX_INFLUENCE_HISTORY)]
    paths = [{**paths[-1], "step": step} for step in range(MAX_TRAJECTORY_HISTORY)]
    influence_size = len(json.dumps(influence_view(snapshot, history), separators=(",", ":")))
    paths_size = len(json.dumps(trajectory_view(snapshot, 0, paths), separators=(",", ":")))
    print(f"influence {influence_size} B, paths of one layer {paths_size} B")
    assert influence_size < 40_000 and paths_size < 100_000
