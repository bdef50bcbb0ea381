"""The dashboard under Streamlit's AppTest: every page, the settings form, presets, the URL,
real (tiny) training runs in the shared pool, and bad input of every kind.

AppTest runs the scripts in this process, so the app's job manager is this process's
`rnnlab.jobs.get_manager()`: a test waits for a run with its `wait()` and then reruns the
page (AppTest never fires the live view's run_every timer). Every test gets its own
RNNLAB_HOME and a fresh pool.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import torch
from torch import nn

from rnnlab import jobs
from rnnlab.config import ACTIVATION_NAMES, CELL_NAMES, TASK_NAMES, RunConfig, field_spec
from rnnlab.presets import PRESETS
from rnnlab.text import MAX_TEXT_BYTES
from ui import answers

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
from helpers import forget_engine, until
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard.py"
SCRIPT_TIMEOUT_S = 60
RUN_TIMEOUT_S = 240

TRAIN = "views/train.py"
PAGE_TITLES = {
    "views/train.py": "Train",
    "views/inside.py": "Inside the cell",
    "views/compare.py": "Compare",
    "views/race.py": "Race",
    "views/learn.py": "Learn",
}
# The presets the dashboard issue asks for by name.
REQUIRED_PRESETS = [
    "Hello, RNN",
    "Why LSTM? long-range memory",
    "Sigmoid vs tanh: vanishing gradients",
    "Why not relu?",
]
# Settings that have a widget on the Train page for every task (word and seq_len depend
# on the task; text_file and eval_every have none).
ALWAYS_SHOWN = [
    "task",
    "cell",
    "activation",
    "hidden_size",
    "num_layers",
    "lr",
    "optimizer",
    "steps",
    "clip",
    "init",
    "seed",
    "device",
    "stop_when_solved",
]
TINY = {"hidden_size": 4, "steps": 30}


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private RNNLAB_HOME, set before the app makes its job manager and store."""
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT))
    threads = torch.get_num_threads()
    forget_engine()
    yield tmp_path
    forget_engine()
    torch.set_num_threads(threads)


def open_app(page: str = TRAIN, query: dict[str, Any] | None = None) -> AppTest:
    """The whole app (app.py and its st.navigation), run once, then on `page`."""
    at = AppTest.from_file(str(APP), default_timeout=SCRIPT_TIMEOUT_S)
    if query:
        at.query_params.update(query)
    at.run()
    if page != TRAIN:
        at.switch_page(page).run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    messages = [error.message for error in at.exception]
    assert not messages, f"the page shows an exception: {messages}"


def texts(elements) -> list[str]:
    return [element.value for element in elements]


def titles(at: AppTest) -> list[str]:
    return texts(at.title)


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The Plotly figure of the chart with `key`, as the browser would receive it."""
    charts = [chart for chart in at.get("plotly_chart") if chart.key == key]
    assert charts, f"no chart {key!r}; charts: {[c.key for c in at.get('plotly_chart')]}"
    return json.loads(charts[-1].proto.spec)


def values(array: Any) -> list[float]:
    """A Plotly data array: a plain list, or the typed-array form {'dtype', 'bdata'}."""
    if isinstance(array, dict) and "bdata" in array:
        decoded = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        return decoded.astype(float).tolist()
    return [math.nan if v is None else float(v) for v in array]


def trace(spec: dict[str, Any], name: str) -> dict[str, Any]:
    named = [t for t in spec["data"] if t.get("name") == name]
    assert named, f"no trace {name!r}; traces: {[t.get('name') for t in spec['data']]}"
    return named[0]


def live_view(at: AppTest, view: str) -> dict[str, Any]:
    """The data of the last live view of this kind ("loss" or "gates") on the page."""
    mounted = [
        json.loads(element.proto.json)
        for element in at.get("bidi_component")
        if element.proto.component_name == "rnnlab_live"
    ]
    found = [data for data in mounted if data["view"] == view]
    assert found, f"no live {view} view; views: {[data['view'] for data in mounted]}"
    return found[-1]


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; metrics: {[m.label for m in at.metric]}"
    return found[-1]


def form_values(at: AppTest, prefix: str = "train") -> dict[str, Any]:
    """The settings form's widgets by field name: {'hidden_size': 32, ...}."""
    widgets = [
        *at.sidebar.slider,
        *at.sidebar.number_input,
        *at.sidebar.radio,
        *at.sidebar.selectbox,
        *at.sidebar.checkbox,
        *at.sidebar.text_input,
    ]
    start = f"{prefix}_"
    return {w.key[len(start) :]: w.value for w in widgets if w.key and w.key.startswith(start)}


def set_form(at: AppTest, prefix: str = "train", **settings: Any) -> AppTest:
    """Set settings through their widgets (not through session state) and rerun.

    A widget that appears only after another setting changes (seq_len after the task)
    is set on a second pass.
    """
    pending = dict(settings)
    for _ in range(2):
        for name, value in list(pending.items()):
            key = f"{prefix}_{name}"
            for kind in ("slider", "number_input", "radio", "selectbox", "checkbox", "text_input"):
                matches = [w for w in getattr(at.sidebar, kind) if w.key == key]
                if matches:
                    matches[0].set_value(value)
                    del pending[name]
                    break
        at.run()
        assert_no_exception(at)
        if not pending:
            return at
    raise AssertionError(f"no widgets for {sorted(pending)} (prefix {prefix!r})")


def wait_for(run_id: str) -> jobs.Progress:
    progress = jobs.get_manager().wait(run_id, timeout=RUN_TIMEOUT_S)
    assert progress is not None, f"run {run_id} vanished"
    assert not progress.active, f"run {run_id} still {progress.status} after {RUN_TIMEOUT_S} s"
    return progress


def train_once(at: AppTest, **settings: Any) -> str:
    """Set the form, press Train, wait for the run, rerun the page; the run's id."""
    set_form(at, **settings)
    at.button(key="train_start").click().run()
    assert_no_exception(at)
    run_id = at.session_state["train_run"]
    wait_for(run_id)
    at.run()
    assert_no_exception(at)
    return run_id


# Every page ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(PAGE_TITLES))
def test_every_page_opens_without_an_exception(page):
    at = open_app(page)
    assert any(PAGE_TITLES[page] in title for title in titles(at)), titles(at)


@pytest.mark.parametrize("page", ["views/inside.py", "views/compare.py"])
def test_pages_that_need_runs_say_so_when_there_are_none(page):
    at = open_app(page)
    assert any("No runs yet" in text for text in texts(at.info)), texts(at.info)


# Train: the settings form -------------------------------------------------------------


def test_train_form_has_every_setting_with_the_configs_range():
    at = open_app()
    assert titles(at) and "Train" in titles(at)[0]
    hidden = at.slider(key="train_hidden_size")
    assert (hidden.min, hidden.max) == (1, 512)
    for name in ("hidden_size", "num_layers"):
        slider = at.slider(key=f"train_{name}")
        assert (slider.min, slider.max) == field_spec(name)["range"], name
        assert slider.value == field_spec(name)["default"], name
    for name in ("lr", "steps", "clip", "seed"):
        box = at.number_input(key=f"train_{name}")
        assert (box.min, box.max) == field_spec(name)["range"], name
        assert box.value == field_spec(name)["default"], name
    assert at.radio(key="train_cell").options == list(CELL_NAMES)
    assert at.radio(key="train_activation").options == list(ACTIVATION_NAMES)
    task_labels = at.selectbox(key="train_task").options
    assert [label.split()[0] for label in task_labels] == list(TASK_NAMES)
    devices = at.selectbox(key="train_device").options
    assert devices[:2] == ["auto", "cpu"]
    assert set(devices) <= {"auto", "cpu", "cuda", "mps"}
    presets = at.selectbox(key="train_preset").options
    for name in REQUIRED_PRESETS:
        assert name in presets
    assert set(form_values(at)) >= set(ALWAYS_SHOWN) | {"word", "preset"}
    assert at.button(key="train_start")


def test_the_form_shows_what_the_task_needs():
    at = open_app()
    shown = form_values(at)
    assert "seq_len" not in shown, "hello's sequence length is set by its word"
    assert "batch_size" not in shown, "hello trains on its one word"
    set_form(at, task="adding")
    shown = form_values(at)
    assert "word" not in shown
    for name in ("seq_len", "batch_size"):
        slider = at.slider(key=f"train_{name}")
        assert (slider.min, slider.max) == field_spec(name)["range"], name
        assert slider.value == field_spec(name)["default"], name
    set_form(at, task="text")
    assert [u.key for u in at.sidebar.file_uploader] == ["train_upload"]


def _reference_parameters(cell: str, input_dim: int, hidden: int, layers: int, out: int) -> int:
    modules = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    recurrent = modules[cell](input_dim, hidden, num_layers=layers, batch_first=True)
    head = nn.Linear(hidden, out)
    return sum(p.numel() for p in [*recurrent.parameters(), *head.parameters()])


def test_shapes_and_parameter_count_follow_the_sliders():
    at = open_app()
    set_form(at, cell="gru", hidden_size=8, num_layers=2)
    assert_no_exception(at)
    # hello: vocabulary h, e, l, o; 4 input->target pairs; one sequence per batch.
    assert metric(at, "Input (batch, seq_len, input_dim)") == "(1, 4, 4)"
    assert metric(at, "Hidden states per layer") == "(1, 4, 8)"
    assert metric(at, "Layers × cell") == "2 × GRU"
    parameters = int(metric(at, "Parameters").replace(",", ""))
    assert parameters == _reference_parameters("gru", 4, 8, 2, 4)

    set_form(at, task="adding", cell="lstm", num_layers=1, batch_size=16, seq_len=20)
    assert metric(at, "Input (batch, seq_len, input_dim)") == "(16, 20, 2)"
    assert metric(at, "Hidden states per layer") == "(16, 20, 8)"
    parameters = int(metric(at, "Parameters").replace(",", ""))
    assert parameters == _reference_parameters("lstm", 2, 8, 1, 1)


def test_presets_set_the_widgets():
    at = open_app()
    for name in REQUIRED_PRESETS:
        assert name in PRESETS
    for name, preset in PRESETS.items():
        at.selectbox(key="train_preset").set_value(name).run()
        assert_no_exception(at)
        expected = preset.config()
        shown = form_values(at)
        for field_name in ALWAYS_SHOWN:
            wanted = getattr(expected, field_name)
            got = shown[field_name]
            assert got == wanted, f"{name}: {field_name} shows {got!r}, preset has {wanted!r}"
        if expected.task == "hello":
            assert shown["word"] == expected.word, name
        else:
            assert shown["seq_len"] == expected.seq_len, name
        assert any(preset.teaches in text for text in texts(at.info)), name


def test_a_preset_then_a_slider_move_keeps_the_other_settings():
    at = open_app()
    at.selectbox(key="train_preset").set_value("Why LSTM? long-range memory").run()
    set_form(at, cell="rnn")
    shown = form_values(at)
    assert shown["cell"] == "rnn"
    assert (shown["task"], shown["seq_len"], shown["hidden_size"]) == ("adding", 100, 64)


# Train: a real run --------------------------------------------------------------------


def test_a_tiny_training_run_finishes_and_shows_its_curve(home):
    at = open_app()
    run_id = train_once(at, cell="rnn", **TINY)

    assert any("Finished 30 steps" in text for text in texts(at.success)), texts(at.success)
    chart = live_view(at, "loss")
    assert chart["run_id"] == run_id and chart["active"] is False and chart["fed"] is None
    assert chart["points_url"] == f"api/runs/{run_id}"
    assert chart["baseline"] == pytest.approx(math.log(4))  # 4 letters: h, e, l, o
    # What the view fetches: the whole curve, its evaluations and the final numbers.
    answer = answers.run_answer(jobs.get_manager(), run_id)
    assert answer["points"]["step"] == list(range(1, 31))
    losses = answer["points"]["loss"]
    assert len(losses) == 30 and all(math.isfinite(v) and v > 0 for v in losses)
    assert answer["evaluations"][-1][0] == 30 and answer["status"] == "completed"
    assert answer["loss"] == pytest.approx(losses[-1]) and math.isfinite(answer["held_out_loss"])
    gates = live_view(at, "gates")
    assert gates["cell"]["states"] == ["pre", "h"] and gates["layer"] == 0
    assert gates["titles"]["h"] == "hidden state h"
    owner_key = answers.viewer_key(jobs.get_manager().store.get_run(run_id).owner)
    view = answers.decoded(answers.gates_bytes(jobs.get_manager(), run_id, 0, -1, key=owner_key))
    assert view["step"] == 30 and set(view["gates"]) == {"pre", "h"}
    assert view["predictions"]["input"] == list("hell")  # the owner sees its word
    public = answers.decoded(answers.gates_bytes(jobs.get_manager(), run_id, 0, -1))
    assert "hell" not in json.dumps(public)  # anyone else does not
    influence = live_view(at, "influence")
    assert influence["influence_url"] == f"api/runs/{run_id}/influence"
    assert influence["active"] is False and influence["labels"]["marked_trace"]
    mine = answers.influence_bytes(jobs.get_manager(), run_id, -1, key=owner_key)
    assert answers.decoded(mine)["symbols"] == list("hell")  # the word's letters, the owner's
    public = answers.decoded(answers.influence_bytes(jobs.get_manager(), run_id, -1))
    assert public["symbols"] is None and public["step"] == 30 and len(public["last"]) == 1

    record = jobs.get_manager().store.get_run(run_id)
    assert record.status == "completed"
    assert record.owner == at.session_state["owner"]
    assert (record.config["cell"], record.config["hidden_size"], record.config["steps"]) == (
        "rnn",
        4,
        30,
    )
    assert (home / "runs.sqlite").exists(), "the store is not under RNNLAB_HOME"


def test_stop_belongs_to_the_tab_that_started_the_run():
    mine = open_app()
    set_form(mine, cell="rnn", hidden_size=4, steps=200_000)
    mine.button(key="train_start").click().run()
    assert_no_exception(mine)
    run_id = mine.session_state["train_run"]

    other = open_app()
    other.session_state["train_run"] = run_id
    other.run()
    assert_no_exception(other)
    assert not [b for b in other.button if b.key == "train_stop"], "another tab may stop it"
    assert any("another browser tab" in text for text in texts(other.caption))

    mine.button(key="train_stop").click().run()
    assert_no_exception(mine)
    assert wait_for(run_id).status == "stopped"
    mine.run()
    assert any("Stopped at step" in text for text in texts(mine.warning)), texts(mine.warning)


def test_a_diverged_run_says_so_and_what_to_do():
    at = open_app()
    at.selectbox(key="train_preset").set_value("Why not relu?").run()
    run_id = train_once(at)
    assert wait_for(run_id).status == "diverged"
    errors = " ".join(texts(at.error))
    assert "diverged" in errors
    assert "clipping" in errors and "learning rate" in errors


# The URL ------------------------------------------------------------------------------


def test_a_fresh_page_has_a_clean_url():
    at = open_app()
    assert dict(at.query_params) == {}


def test_url_parameters_restore_the_settings():
    query = {
        "task": "adding",
        "cell": "gru",
        "activation": "sigmoid",
        "hidden_size": "8",
        "num_layers": "2",
        "batch_size": "16",
        "seq_len": "20",
        "lr": "0.01",
        "optimizer": "sgd",
        "steps": "40",
        "clip": "0.5",
        "init": "orthogonal",
        "seed": "3",
        "stop_when_solved": "true",
    }
    at = open_app(query=query)
    assert not texts(at.warning)
    expected = RunConfig.from_strings(query)
    shown = form_values(at)
    for name in query:
        assert shown[name] == getattr(expected, name), name


def test_settings_go_to_the_url_and_the_url_brings_them_back():
    at = open_app()
    set_form(at, cell="rnn", activation="relu", hidden_size=12, seed=7, word="banana")
    query = {name: at.query_params[name] for name in at.query_params}
    assert query == {
        "cell": "rnn",
        "activation": "relu",
        "hidden_size": "12",
        "seed": "7",
        "word": "banana",
    }
    link = " ".join(texts(at.code))
    for name, value in query.items():
        assert f"{name}={value}" in link, f"the share link lacks {name}: {link}"
    shared = open_app(query=query)
    assert {k: form_values(shared)[k] for k in query} == {
        "cell": "rnn",
        "activation": "relu",
        "hidden_size": 12,
        "seed": 7,
        "word": "banana",
    }


BAD_QUERIES = {
    "out of range and garbage": (
        {"hidden_size": "99999", "cell": "banana", "lr": "abc"},
        {"hidden_size": 512, "cell": "lstm", "lr": 3e-3},
    ),
    "negative, huge, unknown, too short": (
        {"steps": "-5", "num_layers": "1e9", "task": "<script>", "word": "x"},
        {"steps": 1, "num_layers": 4, "task": "hello", "word": "hello"},
    ),
    "not a finite number (float field)": ({"lr": "nan"}, {"lr": 3e-3}),
    "not a finite number (int field)": ({"seed": "nan"}, {"seed": 0}),
    "infinite (int field)": ({"seed": "inf"}, {}),
    "overflowing (int field)": ({"hidden_size": "1e400"}, {}),
    "fraction for an int": ({"batch_size": "2.5"}, {}),
    "not a boolean": ({"stop_when_solved": "maybe"}, {"stop_when_solved": False}),
    "init for another cell": ({"init": "identity"}, {"init": "default"}),
    "unknown device": ({"device": "tpu"}, {"device": "auto"}),
    "control character in the word": ({"word": "he\x00llo"}, {"word": "hello"}),
    "very long value": ({"word": "w" * 5000}, {"word": "hello"}),
}


@pytest.mark.parametrize("query, expected", BAD_QUERIES.values(), ids=list(BAD_QUERIES))
def test_bad_url_parameters_give_a_note_not_an_exception(query, expected):
    at = open_app(query=query)
    assert_no_exception(at)
    notes = texts(at.warning)
    for name in query:
        assert any(name in note for note in notes), f"no note about {name}: {notes}"
    assert all(len(note) < 600 for note in notes), "a note repeats a huge value"
    shown = form_values(at)
    for name, value in expected.items():
        assert shown[name] == value, name
    for name in ("hidden_size", "num_layers", "batch_size"):
        low, high = field_spec(name)["range"]
        assert name not in shown or low <= shown[name] <= high
    assert at.button(key="train_start"), "the form is unusable after a bad link"


def test_a_run_too_large_for_the_pool_is_refused_with_a_message():
    query = {
        "task": "adding",
        "hidden_size": "512",
        "num_layers": "4",
        "batch_size": "512",
        "seq_len": "1000",
        "steps": "200000",
    }
    at = open_app(query=query)
    assert any("TFLOP" in text or "GiB" in text for text in texts(at.sidebar.error))
    assert not [b for b in at.button if b.key == "train_start"]


# Uploads (text task) ------------------------------------------------------------------

BAD_UPLOADS = {
    "empty": (b"", "empty"),
    "whitespace only": (b" \n\t\n", "empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "binary"),
    "too large": (b"a" * (MAX_TEXT_BYTES + 1), "limit"),
}


@pytest.mark.parametrize("data, says", BAD_UPLOADS.values(), ids=list(BAD_UPLOADS))
def test_a_bad_upload_gives_a_message_and_the_bundled_text_is_used(home, data, says):
    at = open_app(query={"task": "text"})
    bundled_input = metric(at, "Input (batch, seq_len, input_dim)")
    at.file_uploader(key="train_upload").set_value(("notes.txt", data, "text/plain")).run()
    assert_no_exception(at)
    notes = [*texts(at.warning), *texts(at.error), *texts(at.sidebar.error)]
    assert any(says in note and "notes.txt" in note for note in notes), notes
    assert metric(at, "Input (batch, seq_len, input_dim)") == bundled_input
    assert not list((home / "uploads").glob("*")), "a rejected upload was kept"


def test_a_good_upload_is_used_for_the_text_task(home):
    at = open_app(query={"task": "text", "seq_len": "20", "batch_size": "4"})
    text = "the cat sat on the mat. " * 40
    at.file_uploader(key="train_upload").set_value(("cat.txt", text.encode(), "text/plain"))
    at.run()
    assert_no_exception(at)
    vocabulary = len(set(text))
    assert metric(at, "Input (batch, seq_len, input_dim)") == f"(4, 20, {vocabulary})"
    saved = list((home / "uploads").glob("*.txt"))
    assert len(saved) == 1 and saved[0].read_text("utf-8") == text


@pytest.mark.parametrize(
    "encoding, named",
    [("cp949", "CP949"), ("utf-16", "UTF-16"), ("utf-8", "UTF-8")],
)
def test_a_korean_upload_is_read_in_its_encoding_and_the_page_says_which(home, encoding, named):
    at = open_app(query={"task": "text", "seq_len": "20", "batch_size": "4"})
    text = "은닉 상태는 이전 시간 단계의 정보를 담고 있습니다. 망각 게이트가 그것을 지웁니다. " * 20
    upload = ("노트.txt", text.encode(encoding), "text/plain")
    at.file_uploader(key="train_upload").set_value(upload).run()
    assert_no_exception(at)
    assert any(f"read as {named}" in caption for caption in texts(at.sidebar.caption))
    assert metric(at, "Input (batch, seq_len, input_dim)") == f"(4, 20, {len(set(text))})"


UPLOAD_NOT_IN_LINK = "does not carry your uploaded file"


def test_a_share_link_of_an_uploaded_text_says_the_file_is_not_in_it():
    at = open_app(query={"task": "text"})
    assert not any(UPLOAD_NOT_IN_LINK in note for note in texts(at.warning))
    assert "text=upload" not in " ".join(texts(at.code))

    text = "the cat sat on the mat. " * 40
    at.file_uploader(key="train_upload").set_value(("cat.txt", text.encode(), "text/plain"))
    at.run()
    assert_no_exception(at)
    assert any(UPLOAD_NOT_IN_LINK in note for note in texts(at.warning)), texts(at.warning)
    assert "text=upload" in " ".join(texts(at.code))
    assert at.query_params["text"] == "upload"


def test_a_link_made_with_an_upload_says_the_bundled_text_is_used():
    at = open_app(query={"task": "text", "text": "upload"})
    notes = texts(at.warning)
    assert any("sender's own text file" in note and "bundled text" in note for note in notes)
    assert at.selectbox(key="train_task").value == "text"
    assert "text" not in at.query_params, "the mark is gone once the bundled text is used"

    at = open_app(query={"task": "hello", "text": "upload"})
    assert not any("sender's own text file" in note for note in texts(at.warning))


def test_uploads_are_pruned_oldest_first_sparing_the_files_runs_use(tmp_path):
    from rnnlab.store import RunStore
    from ui.widgets import prune_uploads

    folder = tmp_path / "uploads"
    folder.mkdir()
    files = []
    for age in range(6):  # files[0] is the oldest
        path = folder / f"{age}.txt"
        path.write_text("x" * 10)
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
        files.append(path)
    with RunStore(tmp_path / "runs.sqlite") as store:
        run_id = store.create_run(RunConfig(task="text", text_file=str(files[0])))
        store.finish(run_id, "completed")
        in_use = files[1]

        removed = prune_uploads(folder, store, in_use=in_use, max_files=3, max_bytes=10**6)
        assert removed == files[2:5]
        assert sorted(folder.iterdir()) == [files[0], files[1], files[5]]

        removed = prune_uploads(folder, store, in_use=in_use, max_files=10, max_bytes=25)
        assert removed == [files[5]], "over the byte bound"
        assert prune_uploads(folder, store, in_use=in_use, max_files=0, max_bytes=0) == []
        assert sorted(folder.iterdir()) == [files[0], files[1]], "a run's file was removed"

        store.delete_run(run_id)  # no run refers to files[0] any more
        assert prune_uploads(folder, store, in_use=in_use, max_files=1) == [files[0]]


def test_a_new_upload_prunes_the_uploads_folder(home):
    from ui.widgets import UPLOADS_MAX_FILES

    folder = home / "uploads"
    folder.mkdir()
    for number in range(UPLOADS_MAX_FILES + 5):
        old = folder / f"old{number:03}.txt"
        old.write_text("old text " * 10)
        os.utime(old, (1_000_000 + number, 1_000_000 + number))
    at = open_app(query={"task": "text"})
    text = "the cat sat on the mat. " * 40
    at.file_uploader(key="train_upload").set_value(("cat.txt", text.encode(), "text/plain"))
    at.run()
    assert_no_exception(at)
    left = sorted(path.name for path in folder.iterdir())
    assert len(left) == UPLOADS_MAX_FILES
    assert "old000.txt" not in left and "old054.txt" in left
    assert any(path.read_text("utf-8") == text for path in folder.iterdir()), "the new one"


def test_an_upload_too_short_for_the_sequence_length_says_so():
    at = open_app(query={"task": "text"})
    at.file_uploader(key="train_upload").set_value(("tiny.txt", b"ab", "text/plain")).run()
    assert_no_exception(at)
    assert any("seq_len" in text for text in texts(at.error)), texts(at.error)


# Inside the cell ----------------------------------------------------------------------


def test_inside_shows_gates_and_gradients_of_a_run():
    at = open_app()
    run_id = train_once(at, cell="lstm", num_layers=2, **TINY)
    at.switch_page("views/inside.py").run()
    assert_no_exception(at)
    assert at.selectbox(key="inside_run").value == run_id
    inside = live_view(at, "inside")
    assert inside["run_id"] == run_id and inside["layers"] == 2 and inside["active"] is False
    assert inside["cell"] == {"name": "lstm", "states": list("ifgoch"), "sigmoid": list("ifo")}
    assert inside["gradients_url"] == f"api/runs/{run_id}/gradients"
    # What it fetches: each layer's pictures, and the gradient history of the run.
    pool = jobs.get_manager()
    for layer in (0, 1):
        view = answers.decoded(answers.gates_bytes(pool, run_id, layer, -1))
        assert view["layer"] == layer and view["step"] == 30
        assert list(view["gates"]) == list("ifgoch") and set(view["saturation"]) == set("ifo")
    history = answers.decoded(answers.gradients_bytes(pool, run_id, -1))
    assert history["gradient_step"] == 30 and history["history"][-1][0] == 30
    norms = view["gradient_norms"]
    assert len(norms) == 2 and all(v is None or v >= 0 for v in norms[0])
    # Which inputs the predictions use, and where each layer's hidden state travels.
    assert inside["influence_url"] == f"api/runs/{run_id}/influence"
    assert inside["trajectory_url"] == f"api/runs/{run_id}/trajectory"
    assert inside["labels"]["pc_axis"] == "PC{n} ({percent} % of the variance)"
    influence = answers.decoded(answers.influence_bytes(pool, run_id, -1))
    assert influence["step"] == 30 and influence["map"] is not None
    for layer in (0, 1):
        paths = answers.decoded(answers.trajectory_bytes(pool, run_id, layer, -1))
        assert paths["layer"] == layer and paths["snapshots"][-1]["step"] == 30
    assert answers.trajectory_bytes(pool, run_id, 0, 30) is None  # nothing newer


def test_inside_speaks_korean_about_influence_and_paths():
    query = {"lang": "ko", "task": "adding", "cell": "lstm", "seq_len": 10, **TINY}
    at = open_app(query=query)
    at.button(key="train_start").click().run()
    assert_no_exception(at)
    wait_for(at.session_state["train_run"])
    at.switch_page("views/inside.py").run()
    assert_no_exception(at)
    labels = live_view(at, "inside")["labels"]
    for name in ("influence_title", "influence_caption_marked", "trajectory_title",
                 "trajectory_caption", "pc_axis", "marked_trace", "sequence_trace"):  # fmt: skip
        assert HANGUL.search(labels[name]), (name, labels[name])
    assert "은닉 상태" in labels["trajectory_title"] and "관찰용" in labels["sequence_trace"]
    assert "0~1" not in labels["influence_caption"] and "10⁻⁴~1" in labels["influence_caption"]


# Compare ------------------------------------------------------------------------------


def test_compare_lists_overlays_exports_and_deletes_runs():
    at = open_app()
    first = train_once(at, cell="rnn", **TINY)
    second = train_once(at, cell="gru", **TINY)
    at.switch_page("views/compare.py").run()
    assert_no_exception(at)
    table = at.dataframe[0].value
    assert set(table["id"]) == {first, second}
    assert any(text.startswith("2 runs") for text in texts(at.caption))
    assert at.get("download_button"), "no CSV download"
    assert figure(at, "compare_parallel")["data"]

    at.session_state["compare_table_selected"] = [first, second]
    at.run()
    assert_no_exception(at)
    assert len(figure(at, "compare_overlay")["data"]) == 2

    at.button(key="compare_delete").click().run()
    assert_no_exception(at)
    assert jobs.get_manager().store.runs_frame().empty
    assert [toast.value for toast in at.toast] == ["Deleted 2 runs."]


def shown_selection(at: AppTest) -> list[str]:
    """The run ids the Compare table shows as selected (its selection_default)."""
    table = at.dataframe[0]
    rows = json.loads(table.proto.selection_default or "{}").get("selection", {}).get("rows", [])
    return [table.value["id"][row] for row in rows]


def test_compare_deletes_the_selected_run_when_a_new_run_appears_at_the_top():
    at = open_app()
    older = train_once(at, cell="rnn", **TINY)
    newer = train_once(at, cell="gru", **TINY)
    at.switch_page("views/compare.py").run()
    assert list(at.dataframe[0].value["id"]) == [newer, older]
    at.session_state["compare_table_selected"] = [older]  # what the table's on_select keeps
    at.run()
    assert_no_exception(at)
    assert shown_selection(at) == [older]

    store = jobs.get_manager().store
    added = store.create_run(RunConfig(task="hello", steps=5), owner=at.session_state["owner"])
    store.finish(added, "completed")
    at.run()
    assert_no_exception(at)
    assert list(at.dataframe[0].value["id"]) == [added, newer, older]
    assert shown_selection(at) == [older], "the selection moved with the rows"
    assert [t["name"][:8] for t in figure(at, "compare_overlay")["data"]] == [older[:8]]

    at.button(key="compare_delete").click().run()
    assert_no_exception(at)
    assert set(store.runs_frame()["id"]) == {added, newer}


def test_a_table_selection_is_kept_as_run_ids():
    from ui.state import selection_by_id

    assert selection_by_id([], ["c", "b", "a"], [2]) == ["a"]
    assert selection_by_id(["a"], ["n", "c", "b", "a"], [3, 1]) == ["c", "a"]
    assert selection_by_id(["a"], ["n", "c", "b", "a"], []) == [], "a row unticked"
    assert selection_by_id(["x", "a"], ["b", "a"], [0]) == ["x", "b"], "filtered out: kept"
    assert selection_by_id([], ["a"], [5, -1]) == []


# Race ---------------------------------------------------------------------------------


def test_race_preset_runs_and_ends_with_a_grid():
    at = open_app("views/race.py")
    at.button(key="race_preset_button").click().run()
    assert_no_exception(at)
    assert at.text_input(key="race_values_1").value.replace(" ", "") == "rnn,lstm,gru"
    assert at.selectbox(key="race_axis_1").value == "cell"
    set_form(at, "race", steps=20, hidden_size=4, seq_len=5, batch_size=4)
    at.button(key="race_start").click().run()
    assert_no_exception(at)
    race = at.session_state["race"]
    store = jobs.get_manager().store
    run_ids = until(
        lambda: (
            [r.id for r in store.list_runs(sweep_id=race["sweep_id"])]
            if len(store.list_runs(sweep_id=race["sweep_id"])) == race["total"]
            else None
        ),
        what="the race's runs to be queued",
        timeout=RUN_TIMEOUT_S,
    )
    assert len(run_ids) == race["total"] == 3
    for run_id in run_ids:
        wait_for(run_id)
    at.run()
    assert_no_exception(at)
    race_view = live_view(at, "race")
    assert race_view["sweep_id"] == race["sweep_id"] and race_view["total"] == 3
    assert race_view["axes"] == ["cell"]
    # What it draws from: every run with its settings, curve and final loss.
    rows = answers.sweep_answer(jobs.get_manager(), race["sweep_id"], {})["runs"]
    assert sorted(row["cell"] for row in rows) == ["gru", "lstm", "rnn"]
    assert all(row["status"] == "completed" and row["final_loss"] > 0 for row in rows)
    assert all(row["points"]["step"][-1] == 20 for row in rows)
    table = at.dataframe[-1].value
    assert sorted(table["cell"]) == ["gru", "lstm", "rnn"] and len(table) == 3


RACE_BAD_INPUT = {
    "unknown cell": ("race_values_1", "rnn, banana", "banana"),
    "repeated value": ("race_values_1", "rnn, rnn", "repeat"),
    "no values": ("race_values_1", " , ", "cell"),
    "seed not a number": ("race_seeds", "x", "seed"),
    "seed not finite": ("race_seeds", "nan", "seed"),
    "too many runs": ("race_seeds", ",".join(map(str, range(300))), "runs"),
}


@pytest.mark.parametrize("key, text, says", RACE_BAD_INPUT.values(), ids=list(RACE_BAD_INPUT))
def test_race_rejects_bad_values_with_a_message(key, text, says):
    at = open_app("views/race.py")
    at.text_input(key=key).set_value(text).run()
    assert_no_exception(at)
    assert any(says in error for error in texts(at.error)), texts(at.error)
    assert at.button(key="race_start").disabled


# Learn --------------------------------------------------------------------------------


def test_learn_one_hot_table_follows_the_word():
    at = open_app("views/learn.py")
    table = at.dataframe[0].value
    assert list(table.columns) == ["h", "e", "l", "o"] or sorted(table.columns) == list("ehlo")
    assert table.shape == (4, 4)
    assert (table.sum(axis=1) == 1).all(), "each row is one-hot"
    assert any("input_dim = 4" in text for text in texts(at.markdown))

    at.text_input(key="learn_word").set_value("abcab").run()
    assert_no_exception(at)
    assert at.dataframe[0].value.shape == (4, 3)
    at.text_input(key="learn_word").set_value("a").run()
    assert_no_exception(at)
    assert texts(at.warning)


def test_learn_shows_true_activation_ranges_and_derivative_bounds():
    at = open_app("views/learn.py")
    functions = {t["name"]: t for t in figure(at, "learn_activations")["data"]}
    sigmoid = values(functions["sigmoid"]["y"])
    assert min(sigmoid) >= 0 and max(sigmoid) <= 1, "sigmoid's range is 0..1"
    tanh = values(functions["tanh"]["y"])
    assert -1 <= min(tanh) < -0.99 and 0.99 < max(tanh) <= 1
    slopes = {t["name"]: values(t["y"]) for t in figure(at, "learn_derivatives")["data"]}
    assert max(slopes["sigmoid′"]) == pytest.approx(0.25, abs=1e-3)
    assert max(slopes["tanh′"]) == pytest.approx(1.0, abs=1e-3)
    assert len(at.latex) >= 2, "the LSTM and GRU equations"


def test_learn_parameter_counts_match_pytorch():
    at = open_app("views/learn.py")
    at.slider(key="learn_hidden").set_value(16).run()
    at.slider(key="learn_layers").set_value(3).run()  # the diagram's depth: no effect here
    rows = {row["cell"]: row for row in at.dataframe[1].value.to_dict("records")}
    for cell in CELL_NAMES:
        shown = int(str(rows[cell.upper()]["total: 1 layer + 4-way head"]).replace(",", ""))
        assert shown == _reference_parameters(cell, 4, 16, 1, 4), cell
    assert rows["LSTM"]["layer 1, PyTorch"] == "4 × (16·4 + 16·16 + 2·16) = 1,408"
    assert rows["LSTM"]["layer 1, Keras"] == "1,344", "Keras: one bias per gate block"
    assert rows["GRU"]["layer 1, Keras"] == rows["GRU"]["layer 1, PyTorch"].split("= ")[-1]

    at.slider(key="learn_param_layers").set_value(2).run()
    at.text_input(key="learn_word").set_value("abcab").run()  # 3 letters: input and head 3
    rows = {row["cell"]: row for row in at.dataframe[1].value.to_dict("records")}
    for cell in CELL_NAMES:
        shown = int(str(rows[cell.upper()]["total: 2 layers + 3-way head"]).replace(",", ""))
        assert shown == _reference_parameters(cell, 3, 16, 2, 3), cell
    assert rows["RNN"]["W_ih, layer 1"] == "(1·16, 3)"
    assert rows["RNN"]["W_ih, layers 2–2"] == "(1·16, 16)"


def test_learn_reconciles_the_notes_five_steps_with_four_inputs():
    at = open_app("views/learn.py")
    shown = " ".join(texts(at.markdown))
    assert "X_0..X_4" in shown and "X_0..X_3" in shown and "`o`" in shown
    assert at.slider(key="learn_seq_len").value == 4, "the diagram starts at hello's 4 steps"
    assert figure(at, "learn_folded")["layout"]["shapes"], "the folded loop is drawn"
    glossary = at.dataframe[-1].value
    assert {"은닉 상태", "기울기 폭발", "장기 의존성"} <= set(glossary["한국어"])


def test_learn_try_it_opens_train_with_the_preset():
    at = open_app("views/learn.py")
    at.button(key="learn_try_relu").click().run()
    assert_no_exception(at)
    assert titles(at) and "Train" in titles(at)[0]
    expected = PRESETS["Why not relu?"].config()
    shown = form_values(at)
    for name in ALWAYS_SHOWN:
        assert shown[name] == getattr(expected, name), name


# Lesson links (?hide=) and the Korean form ---------------------------------------------

HANGUL = re.compile("[\uac00-\ud7a3]")
DEFAULT_HIDDEN = field_spec("hidden_size")["default"]


def link_of(text: str) -> dict[str, str]:
    """The query of a link shown in an st.code block, as a flat dict."""
    return {name: value for name, value in parse_qsl(urlsplit(text).query)}


def test_a_lesson_link_hides_its_controls_and_trains_with_its_values():
    lesson = {"task": "hello", "cell": "gru", "activation": "sigmoid", "hide": "cell,activation"}
    at = open_app(query=lesson)
    shown = form_values(at)
    assert "cell" not in shown and "activation" not in shown, shown
    assert set(shown) >= set(ALWAYS_SHOWN) - {"cell", "activation"} | {"word"}
    assert "preset" not in shown, "a lesson fixes settings a preset would change"
    assert any("lesson" in text for text in texts(at.sidebar.caption)), texts(at.sidebar.caption)
    assert at.query_params["hide"] == "cell,activation"
    assert "hide=cell,activation" in " ".join(texts(at.code)), "the share link keeps the lesson"

    run_id = train_once(at, **TINY)
    record = jobs.get_manager().store.get_run(run_id)
    assert (record.config["cell"], record.config["activation"]) == ("gru", "sigmoid")
    assert (record.config["hidden_size"], record.config["steps"]) == (4, 30)


def test_a_hidden_control_without_a_value_in_the_link_keeps_its_default():
    at = open_app(query={"hide": "hidden_size,seed"})
    assert not {"hidden_size", "seed"} & set(form_values(at))
    at.session_state["train_hidden_size"] = 300  # as a stale widget value would be
    at.run()
    assert (
        metric(at, "Hidden states per layer") == f"(1, 4, {field_spec('hidden_size')['default']})"
    )


def test_a_lesson_link_names_controls_that_do_not_exist():
    at = open_app(query={"hide": "cell,wings"})
    notes = texts(at.warning)
    assert any(
        "hide=wings" in note and "known:" in note and "hidden_size" in note for note in notes
    )
    assert "cell" not in form_values(at), "the known names are still hidden"
    assert at.query_params["hide"] == "cell"


def test_neither_a_preset_nor_session_state_changes_what_a_lesson_fixes():
    at = open_app(query={"cell": "gru", "hide": "cell"})
    at.session_state["train_cell"] = "rnn"
    at.run()
    assert metric(at, "Layers × cell") == "1 × GRU"

    # Learn's "Try it" loads a preset into the Train page; the query is gone by then.
    at.switch_page("views/learn.py").run()
    at.button(key="learn_try_hello").click().run()
    assert_no_exception(at)
    preset = PRESETS["Hello, RNN"].config()
    assert preset.cell == "rnn" and preset.hidden_size != DEFAULT_HIDDEN
    shown = form_values(at)
    assert "cell" not in shown
    assert shown["hidden_size"] == preset.hidden_size, "the other settings follow the preset"
    assert metric(at, "Layers × cell") == "1 × GRU"
    assert at.query_params["hide"] == "cell" and at.query_params["cell"] == "gru"


def test_the_lesson_link_builder_makes_a_link_that_hides_the_ticked_controls():
    at = open_app(query={"lang": "en"})
    set_form(at, cell="gru", hidden_size=8)
    assert len(at.code) == 1, "no lesson link before a control is ticked"
    at.multiselect(key="share_lesson_hide").set_value(["hidden_size", "cell"]).run()
    assert_no_exception(at)
    query = link_of(texts(at.code)[-1])
    assert query == {"cell": "gru", "hidden_size": "8", "lang": "en", "hide": "cell,hidden_size"}

    student = open_app(query=query)
    assert not {"cell", "hidden_size"} & set(form_values(student))
    assert metric(student, "Hidden states per layer") == "(1, 4, 8)"
    assert metric(student, "Layers × cell") == "1 × GRU"
    assert not [m for m in student.multiselect if m.key == "share_lesson_hide"]


def test_a_links_init_is_checked_with_the_links_cell():
    at = open_app(query={"cell": "rnn", "init": "identity", "activation": "relu"})
    assert not texts(at.warning)
    assert form_values(at)["init"] == "identity"


def test_the_settings_form_speaks_korean():
    at = open_app(query={"lang": "ko"})
    widgets = [
        *at.sidebar.slider,
        *at.sidebar.number_input,
        *at.sidebar.radio,
        *at.sidebar.selectbox,
        *at.sidebar.checkbox,
        *at.sidebar.text_input,
    ]
    form = [w for w in widgets if w.key and w.key.startswith("train_")]
    assert len(form) >= len(ALWAYS_SHOWN)
    english = [w.label for w in form if not HANGUL.search(w.label)]
    assert not english, f"labels left in English: {english}"
    assert at.slider(key="train_hidden_size").label == "은닉 크기"
    assert at.radio(key="train_cell").options == list(CELL_NAMES), "values stay as they are"
    tasks = at.selectbox(key="train_task").options
    assert [label.split()[0] for label in tasks] == list(TASK_NAMES)
    assert all(HANGUL.search(label) for label in tasks)
    presets = at.selectbox(key="train_preset").options
    assert "왜 LSTM인가? 장기 의존성" in presets
    assert all(HANGUL.search(m.label) for m in at.metric), [m.label for m in at.metric]

    # A Korean page is checked on its first run only: AppTest formats the values it sends
    # back outside the session, so in English, which the Korean options do not list.
    chosen = AppTest.from_file(str(APP), default_timeout=SCRIPT_TIMEOUT_S)
    chosen.query_params["lang"] = "ko"
    chosen.session_state["train_preset"] = "Why LSTM? long-range memory"
    chosen.run()
    assert_no_exception(chosen)
    assert any("덧셈 문제" in text for text in texts(chosen.info)), texts(chosen.info)

    lesson = open_app(query={"lang": "ko", "hide": "cell,nope"})
    assert any("이 수업" in text and "셀" in text for text in texts(lesson.sidebar.caption))
    assert any("hide=nope" in note and HANGUL.search(note) for note in texts(lesson.warning))


def test_a_finished_run_offers_its_weights_and_they_reproduce_its_loss(home):
    from rnnlab import evaluate, load_model
    from ui.live import _weights_file

    at = open_app()
    run_id = train_once(at, cell="gru", **TINY)
    at.run()
    assert_no_exception(at)
    labels = [button.proto.label for button in at.get("download_button")]
    assert "Download weights (.pt)" in labels
    data = _weights_file(run_id)  # what the click gets: made by a training worker
    model, config = load_model(data)
    loss, _metric = evaluate(model, config)
    assert loss == pytest.approx(wait_for(run_id).summary["final_loss"], abs=1e-6)


def test_a_crafted_share_link_shows_its_values_as_text_not_markup():
    from test_room import read_markdown

    crafted = "` [CLAIM PRIZE](https://example.com/prize) ![t](https://example.com/t.png)`"
    hidden = "x`\n\n![t](https://example.com/t.png)"
    at = open_app(query={"cell": crafted, "hide": hidden, "hidden_size": "9999<b>"})
    notes = [read_markdown(note) for note in texts(at.warning)]  # fails at any markup
    codes = {
        text.split("=")[0]: text for pieces in notes for kind, text in pieces if kind == "code"
    }
    assert codes["cell"] == f"cell={crafted[:40]}"
    assert codes["hide"] == f"hide={hidden.replace(chr(10), ' ')}"
    assert codes["hidden_size"] == "hidden_size=9999<b>"
    (cell,) = [pieces for pieces in notes if ("code", codes["cell"]) in pieces]
    assert crafted in " ".join(text for _kind, text in cell), "the error quotes it whole"
    assert at.radio(key="train_cell").value == RunConfig().cell


# Compare: weights and pins belong to the run's session ----------------------------------


def record_run(store, owner: str, **settings: Any) -> str:
    """A finished tiny run recorded straight into the app's store, as `owner`'s."""
    from rnnlab.train import train

    config = RunConfig(task="hello", cell="rnn", **{**TINY, **settings})
    run_id = store.create_run(config, owner=owner, status="running")
    for event in train(config):
        store.add(run_id, event)
    return run_id


def weights_buttons(at: AppTest) -> list[str]:
    return [
        button.proto.label
        for button in at.get("download_button")
        if button.proto.label == "Download weights (.pt)"
    ]


def test_compare_offers_a_runs_weights_and_pin_only_to_its_session():
    from rnnlab.store import RetentionPolicy

    at = open_app("views/compare.py")
    store = jobs.get_manager().store
    mine = record_run(store, at.session_state["owner"])
    theirs = record_run(store, "someone-else", seed=1)
    assert store.weights(theirs) is not None

    at.session_state["compare_table_selected"] = [theirs]
    at.run()
    assert_no_exception(at)
    assert weights_buttons(at) == [], "another session's weights are offered"
    assert "Only the session that trained a run can download its weights." in texts(at.caption)
    assert not [b for b in at.button if b.key == "compare_pin"]

    at.session_state["compare_table_selected"] = [mine]
    at.run()
    assert_no_exception(at)
    assert weights_buttons(at) == ["Download weights (.pt)"]
    at.button(key="compare_pin").click().run()
    assert_no_exception(at)
    assert store.get_run(mine).pinned and not store.get_run(theirs).pinned
    assert at.dataframe[0].value.set_index("id")["pinned"].to_dict() == {mine: True, theirs: False}
    assert at.button(key="compare_pin").proto.label == "Unpin 1 of my selected runs"
    at.button(key="compare_pin").click().run()
    assert not store.get_run(mine).pinned

    store.prune(RetentionPolicy(weights_per_owner=0))
    at.run()
    assert_no_exception(at)
    assert weights_buttons(at) == []
    assert any("weights were not kept" in text for text in texts(at.caption))


def test_compare_explains_in_korean_why_weights_are_not_offered():
    at = open_app("views/compare.py", query={"lang": "ko"})
    store = jobs.get_manager().store
    theirs = record_run(store, "someone-else")
    at.session_state["compare_table_selected"] = [theirs]
    at.run()
    assert_no_exception(at)
    assert "가중치는 그 실행을 학습시킨 세션에서만 내려받을 수 있습니다." in texts(at.caption)
