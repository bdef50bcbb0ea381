"""The room's view: /api/room answered from a real pool's memory, names on the runs, and
the Room page in English and Korean."""

from __future__ import annotations

import collections
import html
import re
import string
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis.strategies import text as hypothesis_text

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
from rnnlab.jobs.names import INSTRUCTOR_MARK, RoomNames, clean_name  # noqa: E402
from ui import charts  # noqa: E402
from ui.text import markdown_format, plain, plotly_text  # noqa: E402

HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.fixture
def manager(make_manager, monkeypatch):
    monkeypatch.delenv("RNNLAB_MAX_RUNNING", raising=False)
    made = make_manager(workers=1, max_running=2, max_queued_per_owner=None)
    monkeypatch.setattr(routes, "get_manager", lambda: made)
    monkeypatch.setattr(answers.ROOM, "every_s", 0.0)  # every request sees the room as it is
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
    # Asked from just before its last step (a run stopped right after an evaluation, at a
    # grid step already seen, has nothing newer): an ended run's last step is sent even
    # off the grid; a short run's every step is kept.
    rows = rows_by_id(client, f"{ana}:{min(later[ana]['seen'], stopped.step - 1)}")
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


# Nothing from a stranger is markup ------------------------------------------------------

# Strings a visitor can type or put in a link, each meant to become markup somewhere.
CRAFTED = [
    "` [CLAIM PRIZE](https://example.com/prize) ![t](https://example.com/t.png)`",
    '<a href="https://example.com">x</a>',
    '<span style="font-size:99px">BIG</span>',
    "**bold** _it_ ~~gone~~ ~one~ $x^2$ $$y$$ # h | t | &lt;b&gt; &#60;",
    "line\n\n# heading\n- item\n> quote\r\n1. one\u2028---",
    "- item",
    "12) item",
    "www.example.com me@example.com <https://example.com> :material/warning: :streamlit:",
    "``double`` ` lone \\` [a]: https://example.com [x][a] [^1] <!-- c -->",
    " spaced `",
    "__init__ snake_case _x_ x_ ",
]
LINE_BREAK = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
WORD_JOINER = "\u2060"
# Where, unescaped outside code, markdown (or Streamlit's reading of the text) begins.
MARKUP = set("[]<>*~$|#&\n\r")


def one_line(text: str) -> str:
    return LINE_BREAK.sub(" ", text)


def read_markdown(source: str) -> list[tuple[str, str]]:
    """A one-line markdown string read as CommonMark reads escapes and code spans:
    [("text", ...), ("code", ...)], word joiners dropped. Fails at anything else that
    would be markup: a character of MARKUP or an underscore not inside a word, a backtick
    run that closes no span, a :, @ or www. left for Streamlit to make a link or icon of."""
    pieces: list[tuple[str, str]] = []
    text: list[str] = []
    index = 0

    def flush() -> None:
        if text:
            pieces.append(("text", "".join(text).replace(WORD_JOINER, "")))
            text.clear()

    while index < len(source):
        character = source[index]
        following = source[index + 1 : index + 2]
        if character == "\\" and following and following in string.punctuation:
            text.append(following)
            index += 2
            continue
        if character == "`":
            run = len(source[index:]) - len(source[index:].lstrip("`"))
            closing = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(source, index + run)
            assert closing, f"a backtick run that closes nothing at {index}: {source!r}"
            content = one_line(source[index + run : closing.start()])
            if content[:1] == content[-1:] == " " and content.strip(" "):
                content = content[1:-1]
            flush()
            pieces.append(("code", content.replace(WORD_JOINER, "")))
            index = closing.end()
            continue
        before, after = source[index - 1 : index], following
        assert character not in MARKUP, f"markup {character!r} at {index}: {source!r}"
        if character == "_":
            assert (before + after).isalnum() and len(before + after) == 2, source
        if character in ":@" and after.strip():
            assert after == WORD_JOINER, f"{character!r} at {index} left as it is: {source!r}"
        if source[index : index + 4].lower() == "www.":
            raise AssertionError(f"www. at {index} left as it is: {source!r}")
        text.append(character)
        index += 1
    flush()
    return pieces


@pytest.mark.parametrize("crafted", CRAFTED)
def test_plain_shows_a_crafted_string_as_its_text(crafted):
    assert read_markdown(plain(crafted)) == [("text", one_line(crafted))]


@given(hypothesis_text())
def test_plain_shows_any_string_as_its_text(anything):
    assert read_markdown(plain(anything)) == ([("text", one_line(anything))] if anything else [])


NOTE = "Ignored `{name}={value}` from the link: {error}."


@pytest.mark.parametrize("crafted", CRAFTED)
def test_a_value_in_a_templates_code_span_stays_in_it(crafted):
    note = markdown_format(NOTE, name="cell", value=crafted, error=repr(crafted))
    assert read_markdown(note) == [
        ("text", "Ignored "),
        ("code", one_line(f"cell={crafted}")),
        ("text", f" from the link: {one_line(repr(crafted))}."),
    ]
    value_alone = markdown_format("`{value}`", value=crafted)
    assert read_markdown(value_alone) == [("code", one_line(crafted))]


@given(hypothesis_text(), hypothesis_text())
def test_any_values_in_a_template_show_as_their_text(value, error):
    note = markdown_format(NOTE, name="cell", value=value, error=error)
    expected = [("text", "Ignored "), ("code", one_line(f"cell={value}"))]
    assert read_markdown(note) == [*expected, ("text", f" from the link: {one_line(error)}.")]
    learnt = markdown_format(
        _KOREAN_HIDE_NOTE, name=value, known="hidden_size, num_layers"
    )  # the Korean catalogue's template, two spans and a value after them
    spans = [content for kind, content in read_markdown(learnt) if kind == "code"]
    assert spans == [one_line(f"hide={value}"), one_line(value) or " "]


_KOREAN_HIDE_NOTE = "`hide={name}`: `{name}`이라는 설정은 없습니다. 있는 설정: {known}."


@pytest.mark.parametrize("crafted", [*CRAFTED, "a&amp;b &quot; 'q' \"d\" <br>"])
def test_plotly_text_leaves_plotly_no_markup(crafted):
    label = plotly_text(crafted)
    assert not set(label) & set("<>\"'")
    # Plotly decodes &amp; &lt; &gt; and numeric entities only (not &quot;).
    assert re.sub(r"&(amp|lt|gt|#\d+);", "", label).count("&") == 0, label
    assert html.unescape(label) == crafted


def test_compare_charts_name_runs_as_text():
    frame = pd.DataFrame({"step": [1, 2], "loss": [1.0, 0.5]})
    overlay = charts.overlay_figure({CRAFTED[1]: frame, CRAFTED[2]: frame})
    assert [trace.name for trace in overlay.data] == [
        plotly_text(CRAFTED[1]),
        plotly_text(CRAFTED[2]),
    ]
    runs = pd.DataFrame({"cell": ["rnn", "lstm"], "final_loss": [0.1, 0.2]})
    parallel = charts.parallel_coordinates(
        runs, ["cell", "final_loss"], "final_loss", labels={"cell": CRAFTED[1]}
    )
    axis = parallel.data[0].dimensions[0]
    assert axis.label == plotly_text(CRAFTED[1])
    assert list(axis.ticktext) == ["lstm", "rnn"], "tick texts are shown as they are"


def room_page_name(at: AppTest) -> str:
    """The name the Room page says this session's runs appear under, as it reads."""
    said = next(m.value for m in at.markdown if "appear as" in m.value)
    return "".join(text for _kind, text in read_markdown(said.split("**")[1]))


def test_a_name_taken_or_alike_gets_a_suffix_and_shows_as_text(fresh_engine):
    sessions = []
    for typed in ["Ann", "ａｎｎ", CRAFTED[0]]:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
        at.run()
        at.sidebar.text_input(key="room_name").set_value(typed).run()
        at.switch_page("views/room.py").run()
        assert not at.exception, [e.message for e in at.exception]
        sessions.append(at)
    first, second, crafted = sessions
    assert room_page_name(first) == first.session_state["room_name"] == "Ann"
    assert room_page_name(second) == second.session_state["room_name"] == "ａｎｎ (2)"
    assert room_page_name(crafted) == crafted.session_state["room_name"] == clean_name(CRAFTED[0])


def test_the_instructor_opens_the_app_with_the_key_and_is_marked(fresh_engine, monkeypatch):
    monkeypatch.setenv("RNNLAB_INSTRUCTOR_KEY", "the key")

    def session(*, key: str | None, name: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=60)
        if key is not None:
            at.query_params["instructor"] = key
        at.run()
        assert "instructor" not in at.query_params, "the key stays in the address"
        at.sidebar.text_input(key="room_name").set_value(name).run()
        at.switch_page("views/room.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    teacher = session(key="the key", name="Prof")
    assert room_page_name(teacher) == f"Prof {INSTRUCTOR_MARK}"
    for key, name in [("the kez", "prof"), (None, f"PROF {INSTRUCTOR_MARK}"), ("", "Ｐrof")]:
        student = session(key=key, name=name)
        assert room_page_name(student).endswith(")") and INSTRUCTOR_MARK not in room_page_name(
            student
        ), name
    # Without the key set, nobody is the instructor, whatever the link says.
    monkeypatch.delenv("RNNLAB_INSTRUCTOR_KEY")
    assert room_page_name(session(key="", name="Dean")) == "Dean"
    assert room_page_name(session(key="the key", name="Dean 2")) == "Dean 2"


def test_a_closed_tabs_name_is_free_though_the_pool_asked_about_it_first(monkeypatch):
    from ui import state

    class Runtime:  # Streamlit's, with session s1 connected and s2 closed
        @staticmethod
        def exists() -> bool:
            return True

        @classmethod
        def instance(cls):
            return cls

        @staticmethod
        def is_active_session(session_id: str) -> bool:
            return session_id == "s1"

    monkeypatch.setattr(state, "Runtime", Runtime)
    monkeypatch.setattr(state, "_session_ids", {"ana": "s1", "ben": "s2"})
    monkeypatch.setattr(state, "_gone_owners", collections.OrderedDict())
    names = RoomNames(presence=state.session_present)
    names.claim("ana", "Ann")
    names.claim("ben", "Ben")
    assert state.session_present("ben") is False  # the pool's question, every half second
    assert names.claim("cy", "BEN") == "BEN", "the closed tab's name is free"
    assert names.claim("dee", "ann") == "ann (2)"
    assert state.session_present("nobody") is None
