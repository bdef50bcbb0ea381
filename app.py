"""rnnlab dashboard entry point: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="rnnlab", page_icon="🔁", layout="wide")
st.title("rnnlab")
st.write(
    "Train RNNs, LSTMs and GRUs and look inside them. The dashboard is on its way; "
    "meanwhile the engine runs from Python (`from rnnlab import RunConfig, train`) "
    "and from the command line (`python -m rnnlab train --help`)."
)
