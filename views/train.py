"""Train: pick settings, press Train, watch the run live."""

import streamlit as st

from rnnlab.jobs import JobError
from ui.i18n import _
from ui.live import preload_live_view, run_panel
from ui.room import room_name
from ui.state import manager, owner
from ui.text import plain
from ui.widgets import NO_PRESET, config_form, preset_note, shapes_line, share_link

config, notes = config_form(key="train")

st.title(_("Train a recurrent network"))
preload_live_view(key="train")
for note in notes:
    st.warning(note)
preset = st.session_state.get("train_preset", NO_PRESET)
if preset != NO_PRESET:
    st.info(preset_note(preset))

if config is not None:
    shapes_line(config)
    train_column, share_column, _space = st.columns([1, 1, 3])
    if train_column.button(
        _("Train"), icon=":material/play_arrow:", type="primary", key="train_start"
    ):
        try:
            st.session_state.train_run = manager().submit(config, owner=owner(), label=room_name())
        except (JobError, ValueError) as error:
            st.error(plain(error))
    with share_column:
        share_link(config)
    st.caption(
        _(
            "The room sees your runs' settings, loss curves and gate pictures, not your "
            "word or uploaded text."
        )
    )

run_id = st.session_state.get("train_run")
if run_id:
    run_panel(run_id, key="train")
else:
    st.caption(
        _(
            "Press **Train** to start. The loss curve, the gates and the predictions update "
            "live while the network learns; every run is kept for the Compare page."
        )
    )
