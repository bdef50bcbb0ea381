"""Room: every run on this server as it trains — who, which settings, how far, how well."""

import streamlit as st

from ui.i18n import _
from ui.live import fed_notice, room_view
from ui.room import room_name
from ui.text import markdown_format

st.title(_("The room's runs"))
st.caption(
    _(
        "Every run on this server, live: a leaderboard (solved runs first, by the step "
        "they solved at) and the training loss of each run on one chart. Put it on the "
        "projector and race RNN against LSTM."
    )
)
st.markdown(
    markdown_format(
        _("Your runs appear as **{name}**; change the name in the sidebar."), name=room_name()
    )
)
fed_notice()
room_view(key="room", page="room")
