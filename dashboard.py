"""The dashboard script: page config and navigation (app.py serves it with its routes)."""

import streamlit as st

from ui.state import manager

st.set_page_config(
    page_title="rnnlab — recurrent networks, live", page_icon=":material/cycle:", layout="wide"
)
manager()  # the shared training pool: app.py starts it with the server, else the first visit

pages = [
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page(
        "pages/inside.py", title="Inside the cell", icon=":material/biotech:", url_path="inside"
    ),
    st.Page(
        "pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"
    ),
    st.Page("pages/race.py", title="Race", icon=":material/sports_score:", url_path="race"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:", url_path="learn"),
]
st.navigation(pages).run()
