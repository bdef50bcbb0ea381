"""Inside the cell: gates, states, gradients through time and saturation of one run."""

import streamlit as st

from ui import charts
from ui.i18n import N_, _, ngettext
from ui.live import PAGE_POLL_S, gates_figure, gradient_profile, snapshot_of
from ui.state import manager

# A run's status (rnnlab.store.STATUSES) as a reader sees it.
STATUS_LABELS = {
    "queued": N_("queued"),
    "running": N_("running"),
    "completed": N_("completed"),
    "diverged": N_("diverged"),
    "stopped": N_("stopped"),
    "interrupted": N_("interrupted"),
    "failed": N_("failed"),
}


def status_label(status: str) -> str:
    return _(STATUS_LABELS[status]) if status in STATUS_LABELS else status


st.title(_("Inside the cell"))
st.caption(
    _(
        "Every picture is computed on the same probe sequences throughout a run, so you "
        "can watch them change as the network learns."
    )
)

store = manager().store
runs = store.runs_frame()
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

first = manager().progress(run_id)
interval = PAGE_POLL_S if first is not None and first.active else None


@st.fragment(run_every=interval)
def inside() -> None:
    progress = manager().progress(run_id)
    if progress is None:
        st.info(_("That run was deleted."))
        return
    snapshot = snapshot_of(progress)
    if not snapshot:
        st.info(_("This run has no snapshot yet."))
        return
    profile = gradient_profile(run_id)

    config = progress.config
    kept = snapshot["kept"]
    st.markdown(
        ngettext(
            "**{cell} · {activation} · {n} layer · hidden {hidden}** — snapshot at step "
            "{step:,} of {steps:,} ({status})",
            "**{cell} · {activation} · {n} layers · hidden {hidden}** — snapshot at step "
            "{step:,} of {steps:,} ({status})",
            config["num_layers"],
        ).format(
            cell=config["cell"].upper(),
            activation=config["activation"],
            n=config["num_layers"],
            hidden=config["hidden_size"],
            step=snapshot["step"],
            steps=progress.steps,
            status=status_label(progress.status),
        )
    )
    if kept["units"] and len(kept["units"]) < kept["hidden_size"]:
        st.caption(
            _("Showing {shown} of {total} units.").format(
                shown=len(kept["units"]), total=kept["hidden_size"]
            )
        )

    tabs = st.tabs([_("Layer {n}").format(n=i + 1) for i in range(len(snapshot["layers"]))])
    for layer, tab in enumerate(tabs):
        with tab:
            st.plotly_chart(
                gates_figure(run_id, snapshot["step"], layer, config["cell"], snapshot),
                key=f"inside_gates_{layer}",
            )
            means = snapshot["gate_means"][layer]
            if means:
                st.caption(
                    _(
                        "Mean gate values: {values}. A forget gate near 1 keeps the past; "
                        "near 0 it forgets."
                    ).format(
                        values=", ".join(
                            f"{k} = {v:.2f}" for k, v in means.items() if v is not None
                        )
                    )
                )
            if snapshot["saturation"][layer]:
                st.markdown(_("**Gate saturation** — one dot per unit"))
                st.plotly_chart(
                    charts.saturation_figure(snapshot["saturation"][layer]),
                    key=f"inside_saturation_{layer}",
                )
                st.caption(
                    _(
                        "Units in the top-left corner are almost always open (> 0.9), in the "
                        "bottom-right almost always closed (< 0.1): gates used as switches. "
                        "Units near the origin work in the soft middle range."
                    )
                )
            radius = snapshot["spectral_radius"][layer]
            st.caption(
                _(
                    "Spectral radius of the recurrent weights: {radii} (above 1, repeated "
                    "multiplication can blow the state up; far below 1 it fades)."
                ).format(
                    radii=", ".join(f"{k} {v:.3g}" for k, v in radius.items() if v is not None)
                )
            )

    left, right = st.columns(2)
    with left:
        st.markdown(_("**Gradient through time** ‖∂L/∂h_t‖"))
        st.plotly_chart(
            charts.gradient_figure(snapshot["gradient_norms"], kept["steps"]),
            key="inside_gradients",
        )
        st.caption(
            _(
                "How much the loss depends on the hidden state at each step. Reading right to "
                "left is going back in time: a line that drops steeply is the vanishing "
                "gradient — early steps barely learn (sigmoid′ ≤ 0.25 vanishes faster than "
                "tanh′ ≤ 1)."
            )
        )
    with right:
        st.markdown(_("**How it changed during training** (layer 1)"))
        if len(profile) > 1:
            shown = st.slider(
                _("Snapshots shown"), 1, len(profile), len(profile), key="inside_profile_count"
            )
            st.plotly_chart(
                charts.gradient_history_figure(profile[:shown], kept["steps"]),
                key="inside_gradient_history",
            )
        else:
            st.caption(
                _(
                    "Collected while a run trains with the Train or this page open: start one "
                    "and the profiles of its snapshots appear here."
                )
            )

    if interval is not None and not progress.active:
        st.rerun()


inside()
