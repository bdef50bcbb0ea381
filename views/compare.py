"""Compare: every stored run, their curves overlaid, hyperparameters against results."""

import contextlib

import streamlit as st

from rnnlab.store import RunNotFound
from ui import charts
from ui.i18n import N_, _, ngettext, translator
from ui.live import weights_download
from ui.state import manager, owner
from ui.widgets import run_table

# The table's columns, with the headers they are shown under.
COLUMNS = {
    "id": N_("run"),
    "status": N_("status"),
    "pinned": N_("pinned"),
    "task": N_("task"),
    "cell": N_("cell"),
    "activation": N_("activation"),
    "hidden_size": N_("hidden_size"),
    "num_layers": N_("num_layers"),
    "seq_len": N_("seq_len"),
    "batch_size": N_("batch_size"),
    "lr": N_("lr"),
    "clip": N_("clip"),
    "init": N_("init"),
    "seed": N_("seed"),
    "steps": N_("steps"),
    "final_loss": N_("held-out loss"),
    "metric_name": N_("metric_name"),
    "metric": N_("metric"),
    "solved": N_("solved"),
    "solved_at_step": N_("solved_at_step"),
    "wall_s": N_("seconds"),
}
CURVES = [N_("train loss"), N_("held-out loss")]

st.title(_("Compare runs"))
if message := st.session_state.pop("compare_toast", None):
    st.toast(message, icon=":material/delete:")  # said after the rerun that follows a delete
store = manager().store
runs = store.runs_frame()
if runs.empty:
    st.info(_("No runs yet: every run you train is kept here."))
    st.page_link("views/train.py", label=_("Go to Train"), icon=":material/model_training:")
    st.stop()

filters = st.columns(3)
tasks = filters[0].multiselect(_("Task"), sorted(runs["task"].unique()), key="compare_tasks")
statuses = filters[1].multiselect(
    _("Status"), sorted(runs["status"].unique()), key="compare_status"
)
mine = filters[2].toggle(_("Only my runs"), key="compare_mine")
if tasks:
    runs = runs[runs["task"].isin(tasks)]
if statuses:
    runs = runs[runs["status"].isin(statuses)]
if mine:
    runs = runs[runs["owner"] == owner()]

table = runs[list(COLUMNS)].reset_index(drop=True)
st.caption(
    ngettext(
        "{n} run. Select rows to overlay their curves.",
        "{n} runs. Select rows to overlay their curves.",
        len(table),
    ).format(n=len(table))
)
headers = {name: _(header) for name, header in COLUMNS.items()}
selected = run_table(
    table,
    key="compare_table",
    column_config={
        **headers,
        "id": st.column_config.TextColumn(headers["id"], width="small"),
        "pinned": st.column_config.CheckboxColumn(headers["pinned"], width="small"),
        "final_loss": st.column_config.NumberColumn(headers["final_loss"], format="%.4g"),
        "metric": st.column_config.NumberColumn(headers["metric"], format="%.4g"),
        "lr": st.column_config.NumberColumn(headers["lr"], format="%g"),
        "wall_s": st.column_config.NumberColumn(headers["wall_s"], format="%.1f"),
    },
)
chosen = table[table["id"].isin(selected)]

st.download_button(
    _("Download table (CSV)"),
    table.to_csv(index=False).encode(),
    icon=":material/download:",
    file_name="rnnlab-runs.csv",
    mime="text/csv",
    key="compare_csv",
)

if len(chosen):
    curve = st.radio(
        _("Curve"), CURVES, format_func=translator(), horizontal=True, key="compare_curve"
    )
    curves = {}
    for row in chosen.itertuples():
        frame = store.history(row.id) if curve == "train loss" else store.evaluations(row.id)
        curves[f"{row.id[:8]} {row.cell}/{row.activation} h={row.hidden_size}"] = frame
    st.plotly_chart(charts.overlay_figure(curves, title=_(curve)), key="compare_overlay")
    owners = dict(zip(runs["id"], runs["owner"], strict=True))
    if len(chosen) == 1:
        run_id, status = chosen["id"].iloc[0], chosen["status"].iloc[0]
        if owners.get(run_id) != owner():
            st.caption(_("Only the session that trained a run can download its weights."))
        elif status not in ("queued", "running") and store.weights_size(run_id) is None:
            st.caption(
                _(
                    "This run's weights were not kept: to save disk space, only each "
                    "session's newest runs and pinned runs keep theirs."
                )
            )
        else:
            weights_download(run_id, key="compare")

    own_ids = [
        row.id
        for row in chosen.itertuples()
        if owners.get(row.id) == owner() and row.status not in ("queued", "running")
    ]
    unpin = bool(own_ids) and bool(chosen.loc[chosen["id"].isin(own_ids), "pinned"].all())
    pin_label = _("Unpin {n} of my selected runs") if unpin else _("Pin {n} of my selected runs")
    if own_ids and st.button(
        pin_label.format(n=len(own_ids)),
        icon=":material/star:",
        key="compare_pin",
        help=_(
            "Pinned runs keep their trained weights and whole history when old runs are "
            "pruned to save disk space."
        ),
    ):
        for run_id in own_ids:
            with contextlib.suppress(RunNotFound):  # deleted meanwhile, from another tab
                store.pin(run_id, not unpin)
        st.rerun()
    if own_ids and st.button(
        _("Delete {n} of my selected runs").format(n=len(own_ids)),
        icon=":material/delete:",
        key="compare_delete",
    ):
        deleted = 0
        for run_id in own_ids:
            with contextlib.suppress(RunNotFound):  # already deleted, from another tab
                manager().delete_run(run_id)
                deleted += 1
        st.session_state["compare_toast"] = ngettext(
            "Deleted {n} run.", "Deleted {n} runs.", deleted
        ).format(n=deleted)
        st.rerun()
    if len(own_ids) < len(chosen):
        st.caption(_("Runs still training, or started in other tabs, can be viewed, not deleted."))

finished = table.dropna(subset=["final_loss"])
if len(finished) >= 2:
    st.subheader(_("Hyperparameters against the result"))
    dimensions = ["cell", "activation", "hidden_size", "num_layers", "seq_len", "lr", "final_loss"]
    st.plotly_chart(
        charts.parallel_coordinates(finished, dimensions, colour="final_loss", labels=headers),
        key="compare_parallel",
    )
    st.caption(_("Each line is a run; drag along an axis to filter. Colour: held-out loss."))
