"""Shared widgets: the settings form, the shapes line, the share link, the preset picker,
the table of runs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from rnnlab.config import ConfigError, RunConfig, field_spec
from rnnlab.models import count_parameters
from rnnlab.presets import PRESETS
from rnnlab.store import RunStore, rnnlab_home
from rnnlab.tasks import MAX_TEXT_BYTES, decode_text, make_task
from rnnlab.train import available_devices

from .state import (
    DEFAULTS,
    link_query,
    manager,
    selection_by_id,
    settings_from_url,
    widget_key,
    write_url,
)

TASK_LABELS = {
    "hello": "hello — next character of a word",
    "text": "text — character language model",
    "adding": "adding — sum two marked numbers",
    "copy": "copy — remember 10 symbols",
    "sine": "sine — forecast a noisy signal",
}
INIT_LABELS = {
    "default": "PyTorch default",
    "orthogonal": "orthogonal W_hh",
    "identity": "identity W_hh (relu RNN)",
    "forget_bias": "forget-gate bias 1 (LSTM)",
}
NO_PRESET = "Custom settings"
# The uploads folder is pruned down to this, oldest first, sparing the files runs use.
UPLOADS_MAX_FILES = 50
UPLOADS_MAX_BYTES = 100 * 2**20


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_task(task: str, seq_len: int, word: str, text_file: str):
    """Tasks are cheap to describe but the text task reads its file: keep them."""
    return make_task(RunConfig(task=task, seq_len=seq_len, word=word, text_file=text_file))


def task_for(config: RunConfig):
    return cached_task(config.task, config.seq_len, config.word, config.text_file)


def load_preset(name: str, prefix: str) -> None:
    """Set every widget of the `prefix` form to the preset's settings."""
    st.session_state[widget_key("preset", prefix)] = name
    for field_name, value in PRESETS[name].config().to_dict().items():
        st.session_state[widget_key(field_name, prefix)] = value


def _apply_preset(prefix: str) -> None:
    name = st.session_state[widget_key("preset", prefix)]
    if name != NO_PRESET:
        load_preset(name, prefix)


def _range(name: str) -> tuple[float, float]:
    return field_spec(name)["range"]


def config_form(*, key: str, show_presets: bool = True) -> tuple[RunConfig | None, list[str]]:
    """The settings form in the sidebar; returns the config (None if invalid) and notes.

    Widgets start from the URL's query string (checked: see state.settings_from_url);
    the form's current settings are written back to the URL on every run.
    """
    notes = settings_from_url(key)
    for name, value in DEFAULTS.to_dict().items():
        st.session_state.setdefault(widget_key(name, key), value)

    def k(name: str) -> str:
        return widget_key(name, key)

    sidebar = st.sidebar
    if show_presets:
        sidebar.selectbox(
            "Preset",
            [NO_PRESET, *PRESETS],
            key=k("preset"),
            persist_state="session",
            on_change=_apply_preset,
            args=(key,),
            help="Each preset sets every slider to demonstrate one point of the note.",
        )
    values = {}
    values["task"] = sidebar.selectbox(
        "Task",
        list(TASK_LABELS),
        format_func=TASK_LABELS.get,
        key=k("task"),
        persist_state="session",
    )
    if values["task"] == "hello":
        values["word"] = sidebar.text_input(
            "Word", key=k("word"), persist_state="session", max_chars=40
        )
    text_file = ""
    if values["task"] == "text":
        text_file, error = _uploaded_text(key)
        if error:
            notes.append(error)
    values["text_file"] = text_file

    sidebar.divider()
    values["cell"] = sidebar.radio(
        "Cell", ["rnn", "lstm", "gru"], key=k("cell"), persist_state="session", horizontal=True
    )
    values["activation"] = sidebar.radio(
        "Activation",
        ["tanh", "sigmoid", "relu"],
        key=k("activation"),
        persist_state="session",
        horizontal=True,
        help="For LSTM and GRU: the candidate and cell-output non-linearity "
        "(Keras's `activation`); gates stay sigmoid.",
    )
    values["hidden_size"] = sidebar.slider(
        "Hidden size", *_range("hidden_size"), key=k("hidden_size"), persist_state="session"
    )
    values["num_layers"] = sidebar.slider(
        "Layers", *_range("num_layers"), key=k("num_layers"), persist_state="session"
    )
    if values["task"] == "hello":
        sidebar.caption(
            "Batch and sequence length: set by the word (one sequence, its length − 1)."
        )
    else:
        values["batch_size"] = sidebar.slider(
            "Batch size", *_range("batch_size"), key=k("batch_size"), persist_state="session"
        )
        seq_label = "Delay T (copy)" if values["task"] == "copy" else "Sequence length"
        values["seq_len"] = sidebar.slider(
            seq_label, *_range("seq_len"), key=k("seq_len"), persist_state="session"
        )

    sidebar.divider()
    values["lr"] = sidebar.number_input(
        "Learning rate", *_range("lr"), key=k("lr"), persist_state="session", format="%g", step=1e-3
    )
    values["optimizer"] = sidebar.selectbox(
        "Optimizer", ["adam", "sgd"], key=k("optimizer"), persist_state="session"
    )
    values["steps"] = sidebar.number_input(
        "Steps", *_range("steps"), key=k("steps"), persist_state="session", step=100
    )
    values["clip"] = sidebar.number_input(
        "Gradient clipping (0 = off)",
        *_range("clip"),
        key=k("clip"),
        persist_state="session",
        step=0.5,
        format="%g",
    )
    values["init"] = sidebar.selectbox(
        "Initialisation",
        list(INIT_LABELS),
        format_func=INIT_LABELS.get,
        key=k("init"),
        persist_state="session",
    )
    values["seed"] = sidebar.number_input(
        "Seed", *_range("seed"), key=k("seed"), persist_state="session", step=1
    )
    devices = available_devices()
    if st.session_state[k("device")] not in devices:
        notes.append(f"Device `{st.session_state[k('device')]}` is not available here; using auto.")
        st.session_state[k("device")] = "auto"
    values["device"] = sidebar.selectbox(
        "Device", devices, key=k("device"), persist_state="session"
    )
    values["stop_when_solved"] = sidebar.checkbox(
        "Stop when solved", key=k("stop_when_solved"), persist_state="session"
    )

    try:
        config = DEFAULTS.replace(**values)
    except ConfigError as error:
        sidebar.error(str(error))
        return None, notes
    write_url(config)
    return config, notes


def _uploaded_text(key: str) -> tuple[str, str | None]:
    """Save an uploaded .txt under RNNLAB_HOME/uploads (by content hash); '' = bundled.

    The file is written again on every rerun if it is gone, so pruning the folder for
    another session's upload never takes a file from under a session still holding it.
    """
    upload = st.sidebar.file_uploader(
        "Your own .txt (UTF-8)",
        type=["txt"],
        key=widget_key("upload", key),
        max_upload_size=MAX_TEXT_BYTES // 2**20,
        help="Leave empty to use the bundled text (Genesis, King James Version).",
    )
    if upload is None:
        return "", None
    data = upload.getvalue()
    try:
        decode_text(data)
    except ConfigError as error:
        return "", f"Upload `{upload.name}` not used: {error}. Using the bundled text."
    folder = rnnlab_home() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.txt"
    if path.exists():
        path.touch()  # recently used: pruned last
    else:
        path.write_bytes(data)
        prune_uploads(folder, manager().store, in_use=path)
    return str(Path(path)), None


def prune_uploads(
    folder: Path,
    store: RunStore,
    *,
    in_use: Path | None = None,
    max_files: int = UPLOADS_MAX_FILES,
    max_bytes: int = UPLOADS_MAX_BYTES,
) -> list[Path]:
    """Remove the least recently used uploads until `folder` holds at most `max_files`
    files and `max_bytes` bytes; returns the files removed.

    A file that a stored run's config names (`text_file`) is never removed, nor
    `in_use` (the upload just saved), so the folder exceeds the bounds only when the
    runs kept in the store refer to more than that.
    """
    named = (run.config.get("text_file") for run in store.list_runs())
    spared = {Path(name).resolve() for name in named if name}
    if in_use is not None:
        spared.add(in_use.resolve())
    files = []
    for path in folder.glob("*.txt"):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile by another session's pruning
            continue
        files.append((stat.st_mtime, stat.st_size, path))
    files.sort()  # oldest first
    count, total = len(files), sum(size for _, size, _ in files)
    removed = []
    for _, size, path in files:
        if count <= max_files and total <= max_bytes:
            break
        if path.resolve() in spared:
            continue
        path.unlink(missing_ok=True)
        count, total = count - 1, total - size
        removed.append(path)
    return removed


def shapes_line(config: RunConfig) -> None:
    """Input and hidden shapes and the parameter count, as the sliders move."""
    try:
        task = task_for(config)
    except ConfigError as error:
        st.error(str(error))
        return
    batch = config.sequences_per_step()
    T, H = config.time_steps(), config.hidden_size
    columns = st.columns(4)
    columns[0].metric("Input (batch, seq_len, input_dim)", f"({batch}, {T}, {task.input_dim})")
    columns[1].metric("Hidden states per layer", f"({batch}, {T}, {H})")
    columns[2].metric("Layers × cell", f"{config.num_layers} × {config.cell.upper()}")
    columns[3].metric("Parameters", f"{count_parameters(config, task):,}")


def share_link(config: RunConfig) -> None:
    """The link that reopens the app with these settings (and so reproduces the run)."""
    query = link_query(config)
    base = st.context.url or ""
    with st.popover("Share link", icon=":material/link:"):
        st.caption("Anyone opening this link gets the same sliders; same seed, same curve.")
        st.code(base + ("?" + urlencode(query) if query else ""), language=None)
        if config.task == "text" and config.text_file:
            st.warning(
                "The link does not carry your uploaded file; it opens with the bundled "
                "text. Send the file along for the same run.",
                icon=":material/warning:",
            )


def run_table(
    table: pd.DataFrame, *, key: str, column_config: dict[str, Any] | None = None
) -> list[str]:
    """A table of runs with selectable rows; returns the selected run ids in table order.

    The selection lives in session state as run ids (`{key}_selected`), never as row
    positions: a table whose runs changed (someone else trained, a filter moved) is a
    new widget, its selection set again from the ids, so rows never shift under it.
    """
    shown = tuple(table["id"])
    remembered = f"{key}_selected"
    st.session_state.setdefault(remembered, [])
    widget = f"{key}_{hashlib.sha256(' '.join(shown).encode()).hexdigest()[:12]}"

    def remember() -> None:  # runs before the rerun, with the ids this table showed
        rows = st.session_state[widget].selection.rows
        st.session_state[remembered] = selection_by_id(st.session_state[remembered], shown, rows)

    selected = set(st.session_state[remembered])
    st.dataframe(
        table,
        hide_index=True,
        on_select=remember,
        selection_mode="multi-row",
        selection_default={
            "selection": {"rows": [row for row, run_id in enumerate(shown) if run_id in selected]}
        },
        key=widget,
        column_config=column_config,
    )
    return [run_id for run_id in shown if run_id in selected]
