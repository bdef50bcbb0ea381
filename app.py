"""rnnlab dashboard: `streamlit run app.py` serves dashboard.py and the live routes."""

import streamlit as st

from ui.routes import ROUTES

app = st.App("dashboard.py", routes=ROUTES)
