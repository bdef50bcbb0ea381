"""Inside the cell: gates, states, gradients through time and saturation of one run."""

import streamlit as st

from ui import charts
from ui.live import PAGE_POLL_S, gates_figure, gradient_profile, snapshot_of
from ui.state import manager

st.title("Inside the cell")
st.caption(
    "Every picture is computed on the same probe sequences throughout a run, so you "
    "can watch them change as the network learns."
)

store = manager().store
runs = store.runs_frame()
if runs.empty:
    st.info("No runs yet: train one on the **Train** page and come back.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

labels = {
    row.id: f"{row.id[:8]} · {row.task} · {row.cell}/{row.activation} · h={row.hidden_size} "
    f"· {row.status}"
    for row in runs.itertuples()
}
current = st.session_state.get("train_run")
choices = list(labels)
default = choices.index(current) if current in labels else 0
run_id = st.selectbox("Run", choices, index=default, format_func=labels.get, key="inside_run")

first = manager().progress(run_id)
interval = PAGE_POLL_S if first is not None and first.active else None


@st.fragment(run_every=interval)
def inside() -> None:
    progress = manager().progress(run_id)
    if progress is None:
        st.info("That run was deleted.")
        return
    snapshot = snapshot_of(progress)
    if not snapshot:
        st.info("This run has no snapshot yet.")
        return
    profile = gradient_profile(run_id)

    config = progress.config
    kept = snapshot["kept"]
    st.markdown(
        f"**{config['cell'].upper()} · {config['activation']} · {config['num_layers']} "
        f"layer(s) · hidden {config['hidden_size']}** — snapshot at step "
        f"{snapshot['step']:,} of {progress.steps:,} ({progress.status})"
    )
    if kept["units"] and len(kept["units"]) < kept["hidden_size"]:
        st.caption(f"Showing {len(kept['units'])} of {kept['hidden_size']} units.")

    tabs = st.tabs([f"Layer {i + 1}" for i in range(len(snapshot["layers"]))])
    for layer, tab in enumerate(tabs):
        with tab:
            st.plotly_chart(
                gates_figure(run_id, snapshot["step"], layer, config["cell"], snapshot),
                key=f"inside_gates_{layer}",
            )
            means = snapshot["gate_means"][layer]
            if means:
                st.caption(
                    "Mean gate values: "
                    + ", ".join(f"{k} = {v:.2f}" for k, v in means.items() if v is not None)
                    + ". A forget gate near 1 keeps the past; near 0 it forgets."
                )
            if snapshot["saturation"][layer]:
                st.markdown("**Gate saturation** — one dot per unit")
                st.plotly_chart(
                    charts.saturation_figure(snapshot["saturation"][layer]),
                    key=f"inside_saturation_{layer}",
                )
                st.caption(
                    "Units in the top-left corner are almost always open (> 0.9), in the "
                    "bottom-right almost always closed (< 0.1): gates used as switches. "
                    "Units near the origin work in the soft middle range."
                )
            radius = snapshot["spectral_radius"][layer]
            st.caption(
                "Spectral radius of the recurrent weights: "
                + ", ".join(f"{k} {v:.3g}" for k, v in radius.items() if v is not None)
                + " (above 1, repeated multiplication can blow the state up; far below "
                "1 it fades)."
            )

    left, right = st.columns(2)
    with left:
        st.markdown("**Gradient through time** ‖∂L/∂h_t‖")
        st.plotly_chart(
            charts.gradient_figure(snapshot["gradient_norms"], kept["steps"]),
            key="inside_gradients",
        )
        st.caption(
            "How much the loss depends on the hidden state at each step. Reading right to "
            "left is going back in time: a line that drops steeply is the vanishing "
            "gradient — early steps barely learn (sigmoid′ ≤ 0.25 vanishes faster than "
            "tanh′ ≤ 1)."
        )
    with right:
        st.markdown("**How it changed during training** (layer 1)")
        if len(profile) > 1:
            shown = st.slider(
                "Snapshots shown", 1, len(profile), len(profile), key="inside_profile_count"
            )
            st.plotly_chart(
                charts.gradient_history_figure(profile[:shown], kept["steps"]),
                key="inside_gradient_history",
            )
        else:
            st.caption(
                "Collected while a run trains with the Train or this page open: start one "
                "and the profiles of its snapshots appear here."
            )

    if interval is not None and not progress.active:
        st.rerun()


inside()
