"""rnnlab dashboard: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="rnnlab — recurrent networks, live", page_icon="🔁", layout="wide")

pages = [
    st.Page("pages/train.py", title="Train", icon="🏋️", default=True),
    st.Page("pages/inside.py", title="Inside the cell", icon="🔬", url_path="inside"),
    st.Page("pages/compare.py", title="Compare", icon="📊", url_path="compare"),
    st.Page("pages/race.py", title="Race", icon="🏁", url_path="race"),
    st.Page("pages/learn.py", title="Learn", icon="📖", url_path="learn"),
]
st.navigation(pages).run()
