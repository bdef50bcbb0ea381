"""The dashboard script: page config and navigation (app.py serves it with its routes)."""

import streamlit as st

from ui.i18n import _, choose_language, language_picker
from ui.room import name_picker
from ui.state import manager

st.set_page_config(
    page_title="rnnlab — recurrent networks, live", page_icon=":material/cycle:", layout="wide"
)
manager()  # the shared training pool: app.py starts it with the server, else the first visit
choose_language()

pages = [
    st.Page("views/train.py", title=_("Train"), icon=":material/model_training:", default=True),
    st.Page(
        "views/inside.py",
        title=_("Inside the cell"),
        icon=":material/biotech:",
        url_path="inside",
    ),
    st.Page(
        "views/compare.py", title=_("Compare"), icon=":material/compare_arrows:", url_path="compare"
    ),
    st.Page("views/race.py", title=_("Race"), icon=":material/sports_score:", url_path="race"),
    st.Page("views/room.py", title=_("Room"), icon=":material/groups:", url_path="room"),
    st.Page(
        "views/explore.py", title=_("Explore"), icon=":material/travel_explore:", url_path="explore"
    ),
    st.Page("views/learn.py", title=_("Learn"), icon=":material/school:", url_path="learn"),
]
page = st.navigation(pages)
language_picker()
name_picker()
page.run()
