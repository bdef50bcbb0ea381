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
from rnnlab.devices import available_devices
from rnnlab.presets import PRESETS
from rnnlab.specs import TaskSpec, count_parameters, task_spec
from rnnlab.store import RunStore, rnnlab_home
from rnnlab.text import MAX_TEXT_BYTES, decode_text

from .i18n import N_, _, translator
from .labels import CONTROL_LABELS
from .state import (
    CONTROLS,
    DEFAULTS,
    lesson,
    lesson_query,
    link_query,
    manager,
    selection_by_id,
    settings_from_url,
    widget_key,
    write_url,
)
from .text import markdown_format, plain

TASK_LABELS = {
    "hello": N_("hello — next character of a word"),
    "text": N_("text — character language model"),
    "adding": N_("adding — sum two marked numbers"),
    "copy": N_("copy — remember 10 symbols"),
    "sine": N_("sine — forecast a noisy signal"),
}
INIT_LABELS = {
    "default": N_("PyTorch default"),
    "orthogonal": N_("orthogonal W_hh"),
    "identity": N_("identity W_hh (relu RNN)"),
    "forget_bias": N_("forget-gate bias 1 (LSTM)"),
}
NO_PRESET = N_("Custom settings")
# The uploads folder is pruned down to this, oldest first, sparing the files runs use.
UPLOADS_MAX_FILES = 50
UPLOADS_MAX_BYTES = 100 * 2**20


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_task(task: str, seq_len: int, word: str, text_file: str) -> TaskSpec:
    """Tasks are cheap to describe but the text task reads its file: keep them."""
    return task_spec(RunConfig(task=task, seq_len=seq_len, word=word, text_file=text_file))


def task_for(config: RunConfig) -> TaskSpec:
    """What the page shows of the task `config` names: its sizes, metric and baseline."""
    return cached_task(config.task, config.seq_len, config.word, config.text_file)


def control_label(name: str) -> str:
    """A control's label in this session's language."""
    return _(CONTROL_LABELS[name])


def preset_note(name: str) -> str:
    """What a preset demonstrates, with its name, in this session's language."""
    return f"**{_(name)}** — {_(PRESETS[name].teaches)}"


def load_preset(name: str, prefix: str) -> None:
    """Set the widgets of the `prefix` form to the preset's settings, except the ones
    this session's lesson fixes."""
    fixed = set(lesson().hidden)
    st.session_state[widget_key("preset", prefix)] = name
    for field_name, value in PRESETS[name].config().to_dict().items():
        if field_name not in fixed:
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
    the form's current settings are written back to the URL on every run. A lesson link
    (?hide=) leaves its hidden controls out: their settings come from the lesson alone,
    and the preset picker is left out too.
    """
    notes = settings_from_url(key)
    for name, value in DEFAULTS.to_dict().items():
        st.session_state.setdefault(widget_key(name, key), value)
    fixed = lesson()

    def k(name: str) -> str:
        return widget_key(name, key)

    values: dict[str, Any] = {}

    def control(name: str, widget, *args: Any, **options: Any) -> Any:
        """The widget of setting `name`, or the lesson's value when the lesson hides it."""
        if name in fixed.hidden:
            values[name] = fixed.values[name]
        else:
            values[name] = widget(*args, key=k(name), persist_state="session", **options)
        return values[name]

    sidebar = st.sidebar
    if fixed.hidden:
        names = ", ".join(control_label(name) for name in fixed.hidden)
        sidebar.caption(_(":material/lock: Set by this lesson: {controls}.").format(controls=names))
    elif show_presets:
        sidebar.selectbox(
            control_label("preset"),
            [NO_PRESET, *PRESETS],
            format_func=translator(),  # preset keys are their English names
            key=k("preset"),
            persist_state="session",
            on_change=_apply_preset,
            args=(key,),
            help=_("Each preset sets every slider to demonstrate one point of the note."),
        )
    task = control(
        "task",
        sidebar.selectbox,
        control_label("task"),
        list(TASK_LABELS),
        format_func=translator(TASK_LABELS),
    )
    if task == "hello":
        control("word", sidebar.text_input, control_label("word"), max_chars=40)
    text_file = ""
    if task == "text":
        text_file, error = _uploaded_text(key)
        if error:
            notes.append(error)
    values["text_file"] = text_file

    sidebar.divider()
    control("cell", sidebar.radio, control_label("cell"), ["rnn", "lstm", "gru"], horizontal=True)
    control(
        "activation",
        sidebar.radio,
        control_label("activation"),
        ["tanh", "sigmoid", "relu"],
        horizontal=True,
        help=_(
            "For LSTM and GRU: the candidate and cell-output non-linearity "
            "(Keras's `activation`); gates stay sigmoid."
        ),
    )
    control("hidden_size", sidebar.slider, control_label("hidden_size"), *_range("hidden_size"))
    control("num_layers", sidebar.slider, control_label("num_layers"), *_range("num_layers"))
    if task == "hello":
        sidebar.caption(
            _("Batch and sequence length: set by the word (one sequence, its length − 1).")
        )
    else:
        control("batch_size", sidebar.slider, control_label("batch_size"), *_range("batch_size"))
        seq_label = _("Delay T (copy)") if task == "copy" else control_label("seq_len")
        control("seq_len", sidebar.slider, seq_label, *_range("seq_len"))

    sidebar.divider()
    control("lr", sidebar.number_input, control_label("lr"), *_range("lr"), format="%g", step=1e-3)
    control("optimizer", sidebar.selectbox, control_label("optimizer"), ["adam", "sgd"])
    control("steps", sidebar.number_input, control_label("steps"), *_range("steps"), step=100)
    control(
        "clip", sidebar.number_input, control_label("clip"), *_range("clip"), step=0.5, format="%g"
    )
    control(
        "init",
        sidebar.selectbox,
        control_label("init"),
        list(INIT_LABELS),
        format_func=translator(INIT_LABELS),
    )
    control("seed", sidebar.number_input, control_label("seed"), *_range("seed"), step=1)
    devices = available_devices()
    device = fixed.values["device"] if "device" in fixed.hidden else st.session_state[k("device")]
    if device not in devices:
        notes.append(
            markdown_format(
                _("Device `{device}` is not available here; using auto."), device=device
            )
        )
        device = st.session_state[k("device")] = "auto"
    if "device" in fixed.hidden:
        values["device"] = device
    else:
        control("device", sidebar.selectbox, control_label("device"), devices)
    control("stop_when_solved", sidebar.checkbox, control_label("stop_when_solved"))

    try:
        config = DEFAULTS.replace(**values)
    except ConfigError as error:
        sidebar.error(plain(error))
        return None, notes
    write_url(config)
    return config, notes


def _uploaded_text(key: str) -> tuple[str, str | None]:
    """Save an uploaded .txt under RNNLAB_HOME/uploads (by content hash); '' = bundled.

    The file is written again on every rerun if it is gone, so pruning the folder for
    another session's upload never takes a file from under a session still holding it.
    """
    upload = st.sidebar.file_uploader(
        _("Your own .txt"),
        type=["txt"],
        key=widget_key("upload", key),
        max_upload_size=MAX_TEXT_BYTES // 2**20,
        help=_("Leave empty to use the bundled text (Genesis, King James Version)."),
    )
    if upload is None:
        return "", None
    data = upload.getvalue()
    try:
        decoded = decode_text(data)
    except ConfigError as error:
        note = _("Upload `{file}` not used: {error}. Using the bundled text.")
        return "", markdown_format(note, file=upload.name, error=error)
    st.sidebar.caption(
        markdown_format(
            _("`{file}`: {characters} characters, read as {encoding}."),
            file=upload.name,
            characters=f"{len(decoded.text):,}",
            encoding=decoded.encoding,
        )
    )
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
    count, total = len(files), sum(size for _mtime, size, _path in files)
    removed = []
    for _mtime, size, path in files:
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
        st.error(plain(error))
        return
    batch = config.sequences_per_step()
    T, H = config.time_steps(), config.hidden_size
    columns = st.columns(4)
    columns[0].metric(_("Input (batch, seq_len, input_dim)"), f"({batch}, {T}, {task.input_dim})")
    columns[1].metric(_("Hidden states per layer"), f"({batch}, {T}, {H})")
    columns[2].metric(_("Layers × cell"), f"{config.num_layers} × {config.cell.upper()}")
    columns[3].metric(_("Parameters"), f"{count_parameters(config, task):,}")


def _link(query: dict[str, str]) -> str:
    base = st.context.url or ""
    return base + ("?" + urlencode(query, safe=",") if query else "")


def share_link(config: RunConfig, *, key: str = "share") -> None:
    """The link that reopens the app with these settings (and so reproduces the run),
    and a lesson link builder: the same link with the controls students may not touch
    hidden (outside a lesson; inside one, the link above already is the lesson)."""
    with st.popover(_("Share link"), icon=":material/link:"):
        st.caption(_("Anyone opening this link gets the same sliders; same seed, same curve."))
        st.code(_link(link_query(config)), language=None)
        if config.task == "text" and config.text_file:
            st.warning(
                _(
                    "The link does not carry your uploaded file; it opens with the bundled "
                    "text. Send the file along for the same run."
                ),
                icon=":material/warning:",
            )
        if lesson().hidden:
            return
        st.markdown("**" + _("Lesson link") + "**")
        hidden = st.multiselect(
            _("Controls students may not change"),
            CONTROLS,
            format_func=translator(CONTROL_LABELS),
            key=f"{key}_lesson_hide",
            placeholder=_("Pick the controls to hide"),
            help=_(
                "The link opens with these settings; the controls picked here are not shown "
                "and keep the link's values, so students change only the others."
            ),
        )
        if hidden:
            st.code(_link(lesson_query(config, hidden)), language=None)


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
