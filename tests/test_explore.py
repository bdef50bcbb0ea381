"""The Explore page under AppTest and its route (GET /api/studies/NAME) on a bare Starlette
app: real (tiny) studies whose trials train in a real pool.

AppTest never fires the live view's timers: a test waits for the study's runner, then
reruns the page. What the browser draws comes from the route's answer, checked here; the
drawing itself is checked in a real browser (tests/e2e/test_explore_e2e.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("optuna")
from helpers import forget_engine, until  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from test_routes import Client  # noqa: E402

import ui.answers as answers  # noqa: E402
import ui.routes as routes  # noqa: E402
from rnnlab import jobs  # noqa: E402
from rnnlab.config import RunConfig  # noqa: E402
from rnnlab.tune import SearchSpace, StudySettings, param  # noqa: E402

APP = str(ROOT / "dashboard.py")
EXPLORE = "views/explore.py"
STUDY_TIMEOUT_S = 240
# A tiny study: the hello task, plain RNN; hidden_size and lr searched; 4 trials of 60 steps.
TRAIN = {"train_task": "hello", "train_cell": "rnn", "train_hidden_size": 4}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private RNNLAB_HOME (the run store and the studies' journal), a fresh pool."""
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path))
    monkeypatch.delenv("RNNLAB_STUDIES", raising=False)
    forget_engine()
    yield tmp_path
    forget_engine()


def assert_no_exception(at: AppTest) -> None:
    messages = [error.message for error in at.exception]
    assert not messages, f"the page shows an exception: {messages}"


def open_explore(query: dict[str, str] | None = None, state: dict[str, Any] | None = None):
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (state or {}).items():
        at.session_state[name] = value
    if query:
        at.query_params.update(query)
    at.switch_page(EXPLORE).run()  # straight to /explore, as a link opens it
    assert_no_exception(at)
    return at


def study_views(at: AppTest) -> list[dict[str, Any]]:
    mounted = [
        json.loads(element.proto.json)
        for element in at.get("bidi_component")
        if element.proto.component_name == "rnnlab_live"
    ]
    return [data for data in mounted if data["view"] == "study"]


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def start_tiny_study(at: AppTest, *, trials: int = 4, steps: int = 60) -> str:
    at.select_slider(key="explore_range_hidden_size").set_range(2, 16)
    at.checkbox(key="explore_search_cell").uncheck()
    at.number_input(key="explore_trials").set_value(trials)
    at.number_input(key="explore_steps").set_value(steps)
    at.run()
    assert_no_exception(at)
    at.button(key="explore_start").click().run()
    assert_no_exception(at)
    name = at.session_state["explore_study"]
    assert at.query_params["study"] in (name, [name])
    return name


def runner_of(name: str):
    return answers.open_study(jobs.get_manager(), name)


def wait_for_study(name: str):
    runner = runner_of(name)
    assert runner.wait(timeout=STUDY_TIMEOUT_S), f"study {name} still busy"
    return runner


def test_the_page_opens_with_a_search_form_in_both_languages():
    at = open_explore()
    assert at.title[0].value == "Explore: which settings matter?"
    assert at.checkbox(key="explore_search_lr").value
    assert at.select_slider(key="explore_range_lr").value == (1e-4, 1e-1)
    assert at.number_input(key="explore_trials").value == 20
    assert not study_views(at)
    korean = open_explore({"lang": "ko"})
    assert re.search("[\uac00-\ud7a3]", korean.title[0].value)


def test_a_small_study_runs_reopens_from_its_link_and_applies_its_best(home):
    at = open_explore(state=TRAIN)
    name = start_tiny_study(at)
    assert at.session_state["explore_study"] == name
    wait_for_study(name)
    at.run()
    assert_no_exception(at)
    (view,) = study_views(at)
    assert view["study"] == name and view["study_url"] == f"api/studies/{name}"
    assert view["labels"]["counts"] and view["evaluator"] == "main-effect"

    # What the view draws: four trials that ended, the best, what matters and its sentence.
    answer = answers.study_answer(jobs.get_manager(), name, key=answers.viewer_key(owner(at)))
    counts = answer["counts"]
    assert counts["complete"] + counts["pruned"] + counts["failed"] == 4, counts
    assert answer["drawn"] == counts["complete"] + counts["pruned"] >= 1
    assert answer["best"] is not None and set(answer["best"]["params"]) == {"hidden_size", "lr"}
    assert sorted(answer["mine"]) == [t["number"] for t in answer["trials"]]
    assert answer["importances"]["message"]
    assert all(t["who"] == at.session_state["room_name"] for t in answer["trials"])
    assert [p["log"] for p in answer["settings"]["space"]] == [True, True]

    # The link reopens it in another session, which adds trials of its own.
    other = open_explore({"study": name}, state=TRAIN)
    assert other.session_state["explore_study"] == name
    assert [v["study"] for v in study_views(other)] == [name]
    other.number_input(key="explore_add_trials").set_value(1)
    other.button(key="explore_add").click().run()
    assert_no_exception(other)
    wait_for_study(name)
    after = answers.study_answer(jobs.get_manager(), name)
    assert len(after["trials"]) == 5
    assert after["trials"][-1]["who"] == other.session_state["room_name"]
    assert after["mine"] == [], "no key: nobody's trials"

    # Apply the best: the Train page opens with the study's settings and the best's.
    best = answers.study_answer(jobs.get_manager(), name)["best"]
    at.run()
    at.button(key="explore_apply").click().run()
    assert_no_exception(at)
    assert at.title[0].value == "Train a recurrent network"
    assert at.slider(key="train_hidden_size").value == best["params"]["hidden_size"]
    assert at.number_input(key="train_lr").value == pytest.approx(best["params"]["lr"])
    assert at.number_input(key="train_steps").value == 60
    assert at.session_state["train_task"] == "hello"


def owner(at: AppTest) -> str:
    return at.session_state["owner"]


def test_stop_ends_this_sessions_trials():
    at = open_explore(state=TRAIN)
    name = start_tiny_study(at, trials=3, steps=20_000)
    runner = runner_of(name)
    jobs_of = jobs.get_manager()

    def training() -> bool:
        return any(
            f.run_id and jobs_of.progress(f.run_id).status == "running" for f in runner.running()
        )

    until(training, timeout=STUDY_TIMEOUT_S, what="a trial to train")
    at.button(key="explore_stop").click().run()
    assert_no_exception(at)
    assert any("Stopped your trials" in text for text in texts(at.info)), texts(at.info)
    assert runner.wait(timeout=60), "the study still trains after Stop"
    answer = answers.study_answer(jobs_of, name)
    assert answer["counts"]["to_ask"] == 0
    assert answer["counts"]["running"] == answer["counts"]["queued"] == 0


@pytest.mark.parametrize("name", ["nonexistent", "<b>x</b>", "a" * 80, "../studies"])
def test_a_study_that_does_not_exist_gets_a_message(name):
    at = open_explore({"study": name})
    errors = texts(at.error)
    assert any("There is no study named" in text for text in errors), errors
    assert any(f"`{name[:64]}`" in text for text in errors), "the name shows as text, in code"
    assert "explore_study" not in at.session_state
    assert not study_views(at)


def test_a_range_runconfig_refuses_gets_the_fields_message():
    at = open_explore(state={**TRAIN, "train_task": "adding"})
    for setting, value in (("hidden_size", 512), ("batch_size", 512), ("seq_len", 1000)):
        at.checkbox(key=f"explore_search_{setting}").check()
        at.run()
        at.select_slider(key=f"explore_range_{setting}").set_range(value, value)
    at.run()
    assert_no_exception(at)
    errors = texts(at.error)
    assert any("largest run of this space" in e and "hidden_size" in e for e in errors), errors
    assert at.button(key="explore_start").disabled
    for setting in ("cell", "hidden_size", "batch_size", "seq_len", "lr"):
        at.checkbox(key=f"explore_search_{setting}").uncheck()
    at.run()
    assert any("Tick at least one setting" in e for e in texts(at.error)), texts(at.error)


def test_the_preset_sets_the_search_and_the_train_settings():
    at = open_explore()
    at.button(key="explore_preset").click().run()
    assert_no_exception(at)
    assert at.session_state["train_task"] == "adding"
    assert at.session_state["train_seq_len"] == 50
    assert list(at.multiselect(key="explore_range_cell").value) == ["rnn", "lstm", "gru"]
    assert at.select_slider(key="explore_range_hidden_size").value == (8, 64)
    assert at.select_slider(key="explore_range_lr").value == (1e-3, 3e-2)
    assert at.number_input(key="explore_trials").value == 20
    assert at.number_input(key="explore_steps").value == 1500
    assert not at.checkbox(key="explore_search_num_layers").value
    assert not at.button(key="explore_start").disabled


def test_a_lesson_link_fixes_its_settings_here_too():
    at = open_explore({"hide": "cell,lr", "cell": "gru", "lr": "0.01"})
    ticks = {box.key for box in at.checkbox}
    assert "explore_search_cell" not in ticks and "explore_search_lr" not in ticks, ticks
    assert "explore_search_hidden_size" in ticks
    fixed = [c for c in texts(at.caption) if c.startswith("Fixed from the Train page")]
    assert fixed and "cell=gru" in fixed[0] and "lr=0.01" in fixed[0], fixed
    assert any("a lesson or the word sets them" in c for c in texts(at.caption))


def test_the_server_starts_without_optuna():
    """app.py's routes import rnnlab.tune (Optuna, ~30 MB) only once a study is asked for."""
    script = (
        "import sys; import app, ui.routes, ui.answers; "
        "assert 'optuna' not in sys.modules and 'rnnlab.tune' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_a_shared_studys_button_shows_the_sharers_name_as_text():
    at = open_explore(state=TRAIN)
    name = start_tiny_study(at, trials=1, steps=12)
    answers.share_study(jobs.get_manager(), name, "**Bold** [x](http://e.com)")
    wait_for_study(name)
    other = open_explore()
    (button,) = [b for b in other.button if b.key == f"explore_open_{name}"]
    assert "\\*\\*Bold\\*\\*" in button.label and "\\[x\\]" in button.label, button.label
    button.click().run()
    assert_no_exception(other)
    assert other.session_state["explore_study"] == name
    assert [v["study"] for v in study_views(other)] == [name]


# The route ---------------------------------------------------------------------------


@pytest.fixture
def pool(make_manager, monkeypatch):
    made = make_manager(workers=2, max_queued_per_owner=None)
    monkeypatch.setattr(routes, "get_manager", lambda: made)
    return made


def test_the_study_route_answers_from_memory_with_the_askers_own_trials(pool):
    client = Client(Starlette(routes=routes.ROUTES))
    space = SearchSpace({"hidden_size": param("hidden_size", low=2, high=8)})
    base = RunConfig(task="hello", cell="rnn", steps=40)
    answers.open_study(pool, "route-study", StudySettings(space, base, pruner="none"))
    answers.add_trials(pool, "route-study", "ana", 2, "Ana")
    answers.add_trials(pool, "route-study", "bo", 1, "Bo <b>")
    assert answers.open_study(pool, "route-study").wait(timeout=STUDY_TIMEOUT_S)

    reply = client.get("/api/studies/route-study")
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert len(body["trials"]) == 3 and body["mine"] == [] and body["drawn"] == 3
    assert {t["who"] for t in body["trials"]} == {"Ana", "Bo <b>"}
    assert all(t["curve"]["step"] for t in body["trials"])
    ana = client.get("/api/studies/route-study", {"X-Rnnlab-Key": answers.viewer_key("ana")})
    mine = [t["number"] for t in body["trials"] if t["who"] == "Ana"]
    assert sorted(ana.json()["mine"]) == sorted(mine) and len(mine) == 2
    bo = client.get("/api/studies/route-study", {"X-Rnnlab-Key": answers.viewer_key("bo")})
    assert len(bo.json()["mine"]) == 1
    stranger = client.get("/api/studies/route-study", {"X-Rnnlab-Key": "f" * 64})
    assert stranger.json()["mine"] == []
    assert '"ana"' not in reply.body.decode(), "owner ids never leave the server"

    # Nothing new since the version the page has: 204; gzipped when asked and large.
    version = body["version"]
    assert client.get(f"/api/studies/route-study?since={version}").status == 204
    zipped = client.get("/api/studies/route-study", {"Accept-Encoding": "gzip"})
    assert zipped.headers.get("content-encoding") == "gzip"
    other = client.get("/api/studies/route-study?evaluator=ped-anova").json()
    assert other["importances"]["evaluator"] == "ped-anova"
    fanova = client.get("/api/studies/route-study?evaluator=fanova").json()["importances"]
    assert fanova["evaluator"] == "fanova"

    def error(url: str, status: int) -> str:
        reply = client.get(url)
        assert reply.status == status, (url, reply.status)
        return reply.json()["error"]

    assert error("/api/studies/not-opened", 404) == "no such study on this server"
    for bad in ("a" * 65, "-x", "x%20y", "x;drop", ".hidden", "%3Cb%3E"):
        assert error(f"/api/studies/{bad}", 404) == "no such study", bad
    assert "since" in error("/api/studies/route-study?since=abc", 400)
    assert "evaluator" in error("/api/studies/route-study?evaluator=%3Cb%3E", 400)
    assert "evaluator" in error("/api/studies/route-study?evaluator=bogus", 404)


def test_a_studys_answer_is_bounded(pool, monkeypatch):
    monkeypatch.setattr(answers, "MAX_STUDY_TRIALS", 3)
    monkeypatch.setattr(answers, "MAX_BEST_POINTS", 2)
    space = SearchSpace({"hidden_size": param("hidden_size", low=2, high=8)})
    base = RunConfig(task="hello", cell="rnn", steps=12)
    answers.open_study(pool, "bounded", StudySettings(space, base, pruner="none"))
    answers.add_trials(pool, "bounded", "ana", 5, None)
    assert answers.open_study(pool, "bounded").wait(timeout=STUDY_TIMEOUT_S)
    answer = answers.study_answer(pool, "bounded")
    numbers = [t["number"] for t in answer["trials"]]
    assert len(numbers) == 3 and numbers[-2:] == [3, 4]
    assert answer["best"]["number"] in numbers
    assert len(answer["best_so_far"]["trials"]) == 2
    assert answer["best_so_far"]["trials"][-1] == 5
