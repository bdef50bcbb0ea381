"""rnnlab dashboard: `streamlit run app.py` serves dashboard.py and the live routes."""

from contextlib import asynccontextmanager

import streamlit as st

from rnnlab.jobs import get_manager
from ui.routes import ROUTES


@asynccontextmanager
async def warm_pool(app):
    """Start the training workers with the server, before the first person presses Train."""
    get_manager()
    yield


app = st.App("dashboard.py", routes=ROUTES, lifespan=warm_pool)
