"""rnnlab dashboard: `streamlit run app.py` serves dashboard.py and the live routes.

RNNLAB_LIVE_ROUTES=off serves the pages without the live routes, as a proxy that
forwards only Streamlit's own paths would: the pages then feed their live views
themselves (ui/live.py), and Plotly's script comes from Streamlit's static serving.
"""

import gc
import logging
import os
import shutil
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.concurrency import run_in_threadpool

from rnnlab.jobs import get_manager
from ui.routes import ROUTES, plotly_script, plotly_source

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")  # served at app/static/ (.streamlit/config.toml)


def live_routes_enabled() -> bool:
    return os.environ.get("RNNLAB_LIVE_ROUTES", "on").strip().lower() not in ("off", "0", "no")


@asynccontextmanager
async def warm_pool(app):
    """Start the training workers with the server, before the first person presses Train;
    put Plotly's script where Streamlit's own static serving finds it, and have the live
    route's copies of it (plain and gzipped) ready in memory."""
    copy = STATIC / "plotly.min.js"
    try:
        STATIC.mkdir(exist_ok=True)
        if not copy.exists() or copy.stat().st_size != plotly_source().stat().st_size:
            shutil.copyfile(plotly_source(), copy)
    except OSError as error:  # a read-only checkout: only a proxied page misses it
        log.warning("cannot put Plotly's script in %s (%s)", copy, error)
    if live_routes_enabled():
        for gzipped in (False, True):
            await run_in_threadpool(plotly_script, gzipped)
    get_manager()
    # What the server has loaded so far lives as long as it does: keep it out of the
    # garbage collector's full passes, which otherwise walk all of it (100 ms measured,
    # with the event loop stopped) every few hundred requests.
    gc.freeze()
    yield


app = st.App("dashboard.py", routes=ROUTES if live_routes_enabled() else [], lifespan=warm_pool)
