"""The room's view: /api/room answered from a real pool's memory, names on the runs, and
the Room page in English and Korean."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("starlette")
pytest.importorskip("plotly")
from helpers import ENDLESS, running, tiny, until  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from test_routes import Client, assert_json_error  # noqa: E402

import ui.answers as answers  # noqa: E402
import ui.routes as routes  # noqa: E402
from rnnlab import jobs  # noqa: E402
from rnnlab.jobs.feed import ROW_POINTS  # noqa: E402

HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.fixture
def manager(make_manager, monkeypatch):
    monkeypatch.delenv("RNNLAB_MAX_RUNNING", raising=False)
    made = make_manager(workers=1, max_running=2, max_queued_per_owner=None)
    monkeypatch.setattr(routes, "get_manager", lambda: made)
    return made


@pytest.fixture
def client(manager) -> Client:
    return Client(Starlette(routes=routes.ROUTES))


def rows_by_id(client: Client, since: str = "") -> dict[str, dict]:
    reply = client.get(f"/api/room?since={since}")
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    return {row["run_id"]: row for row in reply.json()["runs"]}


def test_an_empty_room_and_malformed_since(client):
    assert client.get("/api/room").json() == {"runs": []}
    assert client.get("/api/room?since=").json() == {"runs": []}
    for bad in (
        "abc",
        "0123456789ab",
        "0123456789ab:",
        "0123456789ab:x",
        "0123456789ab:-1",
        "0123456789ab:1.5",
        "0123456789ab:²",
        "ABCDEF012345:1",
        "0123456789ab:1;drop",
        ",".join(f"{i:012x}:1" for i in range(2 * answers.ROOM_RUNS + 1)),
    ):
        assert "since" in assert_json_error(client.get(f"/api/room?since={bad}"), 400)


def test_every_run_with_its_name_settings_and_curve(client, manager, monkeypatch):
    manager.name("cy", "Cy from the sidebar")
    ana = manager.submit(ENDLESS, owner="ana", label="Blue Otter")
    ben = manager.submit(tiny(steps=200_000, cell="lstm", lr=0.01), owner="ben", label="Ben")
    cy = manager.submit(tiny(steps=30, cell="gru", word="memory"), owner="cy")
    stride = ENDLESS.steps // ROW_POINTS  # 500
    until(lambda: running(manager, ana, steps=2 * stride), what=f"{2 * stride} steps")
    until(lambda: running(manager, ben), what="the second run to train")

    rows = rows_by_id(client)
    assert set(rows) == {ana, ben, cy}
    first = rows[ana]
    assert first["name"] == "Blue Otter" and first["status"] == "running"
    assert {k: first[k] for k in ("task", "cell", "activation", "hidden_size", "num_layers")} == {
        "task": "hello",
        "cell": "rnn",
        "activation": "tanh",
        "hidden_size": 4,
        "num_layers": 1,
    }
    assert first["seq_len"] == 4 and first["lr"] == ENDLESS.lr  # hello: the word's length
    assert first["steps"] == ENDLESS.steps and first["step"] >= first["seen"] >= 2 * stride
    # The curve: only the steps on the run's grid, with their losses from the pool.
    points = first["points"]
    assert points["step"] == list(range(stride, first["seen"] + 1, stride))
    curve = manager.live(ana, since=0)["points"]
    assert points["loss"] == [curve["loss"][step - 1] for step in points["step"]]
    assert rows[ben]["name"] == "Ben" and rows[ben]["cell"] == "lstm" and rows[ben]["lr"] == 0.01
    # Started without a label (a race's runs): the name its owner goes by now.
    assert rows[cy]["name"] == "Cy from the sidebar" and rows[cy]["seq_len"] == 5
    assert rows[cy]["status"] == "queued" and rows[cy]["queue_position"] == 1
    assert list(rows)[-1] == cy  # the running runs first, then the waiting ones

    # Asked from the steps seen: only newer points, on the same grid.
    until(lambda: running(manager, ana, steps=first["seen"] + 2 * stride), what="more steps")
    since = ",".join(f"{run_id}:{row['seen']}" for run_id, row in rows.items())
    later = rows_by_id(client, since)
    newer = later[ana]["points"]["step"]
    assert newer and newer[0] == first["seen"] + stride
    assert all(step % stride == 0 for step in newer)
    assert later[ana]["step"] > first["step"]

    for run_id in (ana, ben):
        manager.cancel(run_id)
    stopped = manager.wait(ana, timeout=120)
    ended = manager.wait(cy, timeout=240)
    manager.wait(ben, timeout=120)
    rows = rows_by_id(client, f"{ana}:{later[ana]['seen']}")
    # An ended run's last step is sent even off the grid; a short run's every step is kept.
    assert rows[ana]["status"] == "stopped" and rows[ana]["step"] == stopped.step
    assert rows[ana]["points"]["step"][-1] == stopped.step
    assert rows[cy]["status"] == ended.status == "completed"
    assert rows[cy]["points"]["step"] == list(range(1, 31))
    assert rows[cy]["solved_at"] == manager.live(cy)["solved_at"]
    # Ended runs stay in the room, ROOM_ENDED of them; at most ROOM_RUNS rows in all.
    assert set(rows) == {ana, ben, cy}
    monkeypatch.setattr(answers, "ROOM_ENDED", 1)
    assert len(rows_by_id(client)) == 1
    monkeypatch.setattr(answers, "ROOM_ENDED", 3)
    monkeypatch.setattr(answers, "ROOM_RUNS", 2)
    assert len(rows_by_id(client)) == 2


# The page -------------------------------------------------------------------------------


def _forget_engine() -> None:
    manager = jobs.manager._manager
    if manager is not None and not manager.closed:
        manager.shutdown(timeout=60)
    import streamlit as st

    st.cache_resource.clear()


@pytest.fixture
def fresh_engine():
    _forget_engine()
    yield
    _forget_engine()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_room_page_renders_in_both_languages(fresh_engine, language):
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.query_params["lang"] = language
    at.run()
    at.switch_page("views/room.py").run()
    assert not at.exception, [e.message for e in at.exception]
    title = at.title[0].value
    name = at.session_state["room_name_made_up"]
    assert name and name in " ".join(m.value for m in at.markdown)
    assert bool(HANGUL.search(title)) == (language == "ko"), title
    assert bool(HANGUL.search(name)) == (language == "ko"), name
    assert bool(HANGUL.search(at.caption[0].value)) == (language == "ko")


def test_runs_started_on_train_carry_the_sidebar_name(fresh_engine):
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    at.sidebar.text_input(key="room_name").set_value("  Team   LSTM ").run()
    at.button(key="train_start").click().run()
    assert not at.exception, [e.message for e in at.exception]
    run_id = at.session_state["train_run"]
    manager = jobs.get_manager()
    assert manager.progress(run_id).label == "Team LSTM"
    manager.cancel(run_id)
    manager.wait(run_id, timeout=240)
    # An emptied box: the made-up name again. (AppTest shows the sidebar's box on the
    # first run of a session only, so a new session.)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    at.sidebar.text_input(key="room_name").set_value("Ana").run()
    at.switch_page("views/room.py").run()
    assert "**Ana**" in " ".join(m.value for m in at.markdown)
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
    at.run()
    at.sidebar.text_input(key="room_name").set_value("   ").run()
    at.switch_page("views/room.py").run()
    made_up = at.session_state["room_name_made_up"]
    assert f"**{made_up}**" in " ".join(m.value for m in at.markdown)
