"""Inside the cell: gates, states, gradients through time and saturation of one run."""

import streamlit as st

from ui.i18n import _
from ui.labels import status_label
from ui.live import fed_notice, inside_view
from ui.state import manager

st.title(_("Inside the cell"))
st.caption(
    _(
        "Every picture is computed on the same probe sequences throughout a run, so you "
        "can watch them change as the network learns."
    )
)

runs = manager().store.runs_frame()
if runs.empty:
    st.info(_("No runs yet: train one on the **Train** page and come back."))
    st.page_link("views/train.py", label=_("Go to Train"), icon=":material/model_training:")
    st.stop()

labels = {
    row.id: f"{row.id[:8]} · {row.task} · {row.cell}/{row.activation} · h={row.hidden_size} "
    f"· {status_label(row.status)}"
    for row in runs.itertuples()
}
current = st.session_state.get("train_run")
choices = list(labels)
default = choices.index(current) if current in labels else 0
run_id = st.selectbox(_("Run"), choices, index=default, format_func=labels.get, key="inside_run")

progress = manager().progress(run_id)
if progress is None:
    st.info(_("That run was deleted."))
    st.stop()
fed_notice()
inside_view(progress, key="inside", page="inside")
