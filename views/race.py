"""Race: vary one or two settings (and seeds), train every combination, compare live."""

import secrets
import threading

import streamlit as st

from rnnlab.config import ConfigError, RunConfig
from rnnlab.sweep import SWEEPABLE, Grid, LocalExecutor, sweep_table
from ui.i18n import N_, _, ngettext, translator
from ui.live import fed_notice, race_view
from ui.state import manager, owner
from ui.text import plain
from ui.widgets import config_form

RACE_PRESET = {
    "base": dict(
        task="adding", hidden_size=32, batch_size=32, seq_len=50, lr=3e-3, clip=1.0, steps=1500
    ),
    "axes": {"cell": "rnn, lstm, gru"},
    "seeds": "0",
}

st.title(_("Race"))
st.caption(
    _(
        "Pick the settings to vary; every combination trains in the shared pool and the "
        "curves fill in as they go. The sidebar sets everything else."
    )
)


def _load_preset() -> None:
    for name, value in RACE_PRESET["base"].items():
        st.session_state[f"race_{name}"] = value
    st.session_state.race_axis_1, st.session_state.race_values_1 = "cell", "rnn, lstm, gru"
    st.session_state.race_axis_2, st.session_state.race_seeds = "(none)", "0"


st.button(
    _("Preset: RNN vs LSTM vs GRU on the adding problem"),
    icon=":material/sports_score:",
    on_click=_load_preset,
    key="race_preset_button",
)
base, notes = config_form(key="race", show_presets=False)
for note in notes:
    st.warning(note)

fields = [name for name in SWEEPABLE if name != "seed"]
columns = st.columns([1, 2, 1, 2, 1])
st.session_state.setdefault("race_axis_1", "cell")
st.session_state.setdefault("race_values_1", "rnn, lstm, gru")
axis_1 = columns[0].selectbox(_("Vary"), fields, key="race_axis_1")
values_1 = columns[1].text_input(_("Values (comma-separated)"), key="race_values_1")
axis_2 = columns[2].selectbox(
    _("and"),
    ["(none)", *fields],
    format_func=translator({"(none)": N_("(none)")}),
    key="race_axis_2",
)
values_2 = columns[3].text_input(_("Values"), key="race_values_2", disabled=axis_2 == "(none)")
st.session_state.setdefault("race_seeds", "0")
seeds_text = columns[4].text_input(_("Seeds"), key="race_seeds")


def _grid(base: RunConfig) -> Grid:
    axes = {axis_1: [v.strip() for v in values_1.split(",") if v.strip()]}
    if axis_2 != "(none)":
        if axis_2 == axis_1:
            raise ConfigError(
                _("vary two different settings, not {setting} twice").format(setting=axis_1),
                axis_2,
            )
        axes[axis_2] = [v.strip() for v in values_2.split(",") if v.strip()]
    seeds = [s.strip() for s in seeds_text.split(",") if s.strip()]
    return Grid(base, axes, seeds=seeds)


grid = None
if base is not None:
    try:
        grid = _grid(base)
        count = len(grid.configs())
        st.caption(ngettext("{n} run.", "{n} runs.", count).format(n=count))
    except ConfigError as error:
        st.error(plain(error))


def _feed(configs: list[RunConfig], race: dict, who: str) -> None:
    """Background thread: hand the runs to the pool a few at a time (no Streamlit here)."""
    try:
        for _event in LocalExecutor(manager()).run(configs, sweep_id=race["sweep_id"], owner=who):
            pass
    except Exception as error:  # shown by the page on its next run
        race["error"] = str(error)
    race["fed"] = True


if st.button(
    _("Start the race"),
    icon=":material/flag:",
    type="primary",
    disabled=grid is None,
    key="race_start",
):
    race = {"sweep_id": secrets.token_hex(4), "axes": list(grid.axes), "total": len(grid.configs())}
    threading.Thread(target=_feed, args=(grid.configs(), race, owner()), daemon=True).start()
    st.session_state.race = race

race = st.session_state.get("race")
if race:
    if "error" in race:
        st.error(_("The race stopped: {error}").format(error=plain(race["error"])))
    fed_notice()
    rows = manager().sweep(race["sweep_id"], {}) or []
    ended = [row for row in rows if row["status"] not in ("queued", "running")]
    active = not race.get("fed") and len(ended) < race["total"]
    race_view(
        race["sweep_id"],
        total=race["total"],
        axes=race["axes"],
        active=active,
        key="race",
        page="race",
    )
    if not active:
        table = sweep_table(race["sweep_id"], manager().store)
        st.subheader(_("Result"))
        st.dataframe(table, hide_index=True, key="race_table")
