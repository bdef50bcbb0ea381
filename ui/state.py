"""Session and URL state: who this tab is, and the settings mirrored in the address bar."""

from __future__ import annotations

import collections
import dataclasses
import math
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from rnnlab.config import ConfigError, RunConfig, field_spec
from rnnlab.jobs import get_manager
from rnnlab.jobs.names import RoomNames

from .i18n import _
from .text import markdown_format

DEFAULTS = RunConfig()
DEFAULT_STRINGS = DEFAULTS.to_strings()
URL_FIELDS = [
    f.name for f in dataclasses.fields(RunConfig) if f.name not in ("text_file", "eval_every")
]
# A link never carries an uploaded file, only this mark that the sender used one.
UPLOAD_MARK = ("text", "upload")
# Query parameters that are not settings but belong to a link: its language, and the
# controls a lesson link hides.
LINK_PARAMS = ("lang", "hide")
HIDE = "hide"
# What a lesson link can hide (?hide=cell,activation), in the settings form's order: the
# preset picker and the settings' widgets.
CONTROLS = (
    "preset",
    "task",
    "word",
    "cell",
    "activation",
    "hidden_size",
    "num_layers",
    "batch_size",
    "seq_len",
    "lr",
    "optimizer",
    "steps",
    "clip",
    "init",
    "seed",
    "device",
    "stop_when_solved",
)
# A setting whose value is valid only with another: a link's init is checked with its cell.
CHECKED_WITH = {"init": "cell"}


@dataclasses.dataclass(frozen=True)
class Lesson:
    """What a lesson link fixes: the controls it hides and the settings behind them, from
    the link or else the defaults. No widget, preset or session state changes those."""

    hidden: tuple[str, ...] = ()
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    unknown: tuple[str, ...] = ()  # names in ?hide= that are no control

    def notes(self) -> list[str]:
        known = ", ".join(CONTROLS)
        return [
            markdown_format(
                _("`hide={name}`: there is no control named `{name}`; known: {known}."),
                name=name,
                known=known,
            )
            for name in self.unknown
        ]


NO_LESSON = Lesson()


_session_ids: dict[str, str] = {}  # owner -> Streamlit session id, for every live session
# Owners whose session was found gone, so that every later question gets False, not None:
# the pool asks first, the room's names later. The oldest are forgotten beyond MAX_GONE.
_gone_owners: collections.OrderedDict[str, None] = collections.OrderedDict()
MAX_GONE = 10_000


def owner() -> str:
    """This browser session's id: runs it starts belong to it, whichever page it is on."""
    if "owner" not in st.session_state:
        st.session_state.owner = uuid.uuid4().hex[:12]
    name = st.session_state.owner
    context = get_script_run_ctx()
    if context is not None:
        _session_ids[name] = context.session_id
        _gone_owners.pop(name, None)  # a session that reconnected
    manager().heartbeat(name)  # seen now; afterwards, the pool asks session_present()
    if "address" not in st.session_state:
        st.session_state.address = st.context.ip_address  # None on localhost
        if st.session_state.address is not None:
            manager().locate(name, st.session_state.address)  # sessions per address are capped
    return name


def session_present(name: str) -> bool | None:
    """Whether the owner's browser session is still connected; None if this cannot tell."""
    if name in _gone_owners:
        return False
    session_id = _session_ids.get(name)
    if session_id is None or not Runtime.exists():
        return None
    present = Runtime.instance().is_active_session(session_id)
    if not present:
        _session_ids.pop(name, None)
        _gone_owners[name] = None
        while len(_gone_owners) > MAX_GONE:
            _gone_owners.popitem(last=False)
    return present


@st.cache_resource(show_spinner=False)
def manager():
    """The process-wide training pool, shared by every session on this server.

    A run belongs to its browser session: it keeps training while the session is
    connected on any page, and stops once the session has been gone for
    RNNLAB_ORPHAN_AFTER_S seconds (a closed tab).
    """
    pool = get_manager()
    pool.admission.presence = session_present
    return pool


def room_names() -> RoomNames:
    """The names sessions go by in the room, one per session still connected, no two alike
    (rnnlab.jobs.names), as the job manager keeps them."""
    return manager().admission.names


def lesson_from_query(query: dict[str, str]) -> Lesson:
    """The lesson a link's query describes: ?hide= names the controls to hide, and the
    link's own settings (checked as settings_from_url checks them) give their values."""
    names = [name.strip() for name in query.get(HIDE, "").split(",") if name.strip()]
    hidden = tuple(name for name in CONTROLS if name in names)
    unknown = tuple(dict.fromkeys(name[:40] for name in names if name not in CONTROLS))
    values = {}
    for name in hidden:
        if name == "preset":
            continue
        value = None
        if name in query:
            value, _note = _checked_value(name, query[name], query)
        values[name] = getattr(DEFAULTS, name) if value is None else value
    return Lesson(hidden=hidden, values=values, unknown=unknown)


def lesson() -> Lesson:
    """This session's lesson: from ?hide= when the address has it, else the one the session
    opened with (going to another page drops the address's query)."""
    if HIDE in st.query_params:
        query = {name: st.query_params[name] for name in st.query_params}
        st.session_state["lesson"] = lesson_from_query(query)
    return st.session_state.get("lesson", NO_LESSON)


def widget_key(name: str, prefix: str) -> str:
    return f"{prefix}_{name}"


def settings_from_url(prefix: str) -> list[str]:
    """Load settings from the query string into the widgets, once per session and page.

    Values are checked one by one: a value out of range is clamped, an unknown choice or
    garbage is ignored; each gets a note for the page to show. Returns the notes, as
    markdown in which the link's values show as text.
    """
    flag = f"{prefix}_url_loaded"
    if st.session_state.get(flag):
        return []
    st.session_state[flag] = True
    notes = lesson().notes()
    query = {name: st.query_params[name] for name in st.query_params}
    for name in URL_FIELDS:
        if name not in query:
            continue
        raw = query[name]
        value, note = _checked_value(name, raw, query)
        if note:
            notes.append(note)
        if value is not None:
            st.session_state[widget_key(name, prefix)] = value
    name, mark = UPLOAD_MARK
    if st.query_params.get(name) == mark and st.query_params.get("task") == "text":
        notes.append(
            _(
                "This link was made with the sender's own text file, which a link cannot "
                "carry: the bundled text is used instead. Upload the file to train on it."
            )
        )
    return notes


def _checked_value(
    name: str, raw: str, link: dict[str, str] | None = None
) -> tuple[Any, str | None]:
    """A link's value for one setting, checked alone (or with the setting it depends on,
    CHECKED_WITH), and a note when it was clamped or ignored."""
    spec = field_spec(name)
    together = {name: raw}
    partner = CHECKED_WITH.get(name)
    if partner and link and partner in link and _checked_value(partner, link[partner])[1] is None:
        together[partner] = link[partner]
    try:
        value = getattr(RunConfig.from_strings(together), name)
        return value, None
    except ConfigError as error:
        if "range" not in spec:
            note = _("Ignored `{name}={value}` from the link: {error}.")
            return None, markdown_format(note, name=name, value=raw[:40], error=str(error)[:200])
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        note = _("Ignored `{name}={value}` from the link: not a number.")
        return None, markdown_format(note, name=name, value=raw[:40])
    lo, hi = spec["range"]
    clamped = min(max(number, lo), hi)
    if spec["type"] == "int":
        clamped = int(round(clamped))
    note = _("`{name}={value}` from the link is outside {low}..{high}; using {used}.")
    return clamped, markdown_format(
        note, name=name, value=raw[:40], low=f"{lo:g}", high=f"{hi:g}", used=f"{clamped:g}"
    )


def url_query(config: RunConfig) -> dict[str, str]:
    """The settings that differ from the defaults, as query parameters; an uploaded
    text file is not among them, only the mark that there was one."""
    query = {
        name: value
        for name, value in config.to_strings().items()
        if name in URL_FIELDS and value != DEFAULT_STRINGS[name]
    }
    if config.task == "text" and config.text_file:
        name, mark = UPLOAD_MARK
        query[name] = mark
    return query


def link_query(config: RunConfig) -> dict[str, str]:
    """url_query(config), plus what the address says that is not a setting: the
    language and the controls this session's lesson hides (LINK_PARAMS)."""
    query = url_query(config)
    query.update({name: st.query_params[name] for name in LINK_PARAMS if name in st.query_params})
    query.pop(HIDE, None)
    hidden = lesson().hidden
    if hidden:
        query[HIDE] = ",".join(hidden)
    return query


def lesson_query(config: RunConfig, hidden: Iterable[str]) -> dict[str, str]:
    """The query of a lesson link: these settings, the language, and ?hide= naming the
    `hidden` controls (in the form's order), whose values the link fixes."""
    query = link_query(config)
    query.pop(HIDE, None)
    names = set(hidden)
    hide = [name for name in CONTROLS if name in names]
    if hide:
        query[HIDE] = ",".join(hide)
    return query


def write_url(config: RunConfig) -> None:
    """Mirror the settings that differ from the defaults into the query string."""
    wanted = link_query(config)
    current = {name: st.query_params[name] for name in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


def selection_by_id(
    remembered: Iterable[str], shown: Sequence[str], rows: Iterable[int]
) -> list[str]:
    """The run ids selected after someone selected `rows` in a table that showed `shown`.

    Rows are positions in that table, translated here into ids at once, so runs added or
    removed later cannot shift the selection onto other runs. Remembered ids the table
    did not show (hidden by a filter) stay selected.
    """
    picked = {shown[row] for row in rows if 0 <= row < len(shown)}
    on_show = set(shown)
    hidden = [run_id for run_id in remembered if run_id not in on_show]
    return hidden + [run_id for run_id in shown if run_id in picked]
