"""Room: every run on this server as it trains — who, which settings, how far, how well."""

import streamlit as st

from ui.i18n import _
from ui.live import PAGE_POLL_S, live_room
from ui.room import polled_room, room_labels, room_name

st.title(_("The room's runs"))
st.caption(
    _(
        "Every run on this server, live: a leaderboard (solved runs first, by the step "
        "they solved at) and the training loss of each run on one chart. Put it on the "
        "projector and race RNN against LSTM."
    )
)
st.markdown(
    _("Your runs appear as **{name}**; change the name in the sidebar.").format(name=room_name())
)

labels = room_labels()
fallback = "live_routes_unreachable"  # as ui.live.run_panel: once seen, for the session
if not st.session_state.get(fallback) and not live_room(key="room", page="room", labels=labels):
    st.session_state[fallback] = True
    st.rerun()
if st.session_state.get(fallback):
    st.caption(_("Live updates by polling the page (the server's live routes are not reachable)."))
    polled_room(labels, every_s=PAGE_POLL_S)
