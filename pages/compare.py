"""Compare: every stored run, their curves overlaid, hyperparameters against results."""

import contextlib

import streamlit as st

from rnnlab.store import RunNotFound
from ui import charts
from ui.state import manager, owner
from ui.widgets import run_table

st.title("Compare runs")
if message := st.session_state.pop("compare_toast", None):
    st.toast(message, icon=":material/delete:")  # said after the rerun that follows a delete
store = manager().store
runs = store.runs_frame()
if runs.empty:
    st.info("No runs yet: every run you train is kept here.")
    st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
    st.stop()

filters = st.columns(3)
tasks = filters[0].multiselect("Task", sorted(runs["task"].unique()), key="compare_tasks")
statuses = filters[1].multiselect("Status", sorted(runs["status"].unique()), key="compare_status")
mine = filters[2].toggle("Only my runs", key="compare_mine")
if tasks:
    runs = runs[runs["task"].isin(tasks)]
if statuses:
    runs = runs[runs["status"].isin(statuses)]
if mine:
    runs = runs[runs["owner"] == owner()]

columns = [
    "id",
    "status",
    "task",
    "cell",
    "activation",
    "hidden_size",
    "num_layers",
    "seq_len",
    "batch_size",
    "lr",
    "clip",
    "init",
    "seed",
    "steps",
    "final_loss",
    "metric_name",
    "metric",
    "solved",
    "solved_at_step",
    "wall_s",
]
table = runs[columns].reset_index(drop=True)
st.caption(f"{len(table)} runs. Select rows to overlay their curves.")
selected = run_table(
    table,
    key="compare_table",
    column_config={
        "id": st.column_config.TextColumn("run", width="small"),
        "final_loss": st.column_config.NumberColumn("held-out loss", format="%.4g"),
        "metric": st.column_config.NumberColumn(format="%.4g"),
        "lr": st.column_config.NumberColumn(format="%g"),
        "wall_s": st.column_config.NumberColumn("seconds", format="%.1f"),
    },
)
chosen = table[table["id"].isin(selected)]

st.download_button(
    "Download table (CSV)",
    table.to_csv(index=False).encode(),
    icon=":material/download:",
    file_name="rnnlab-runs.csv",
    mime="text/csv",
    key="compare_csv",
)

if len(chosen):
    curve = st.radio("Curve", ["train loss", "held-out loss"], horizontal=True, key="compare_curve")
    curves = {}
    for row in chosen.itertuples():
        frame = store.history(row.id) if curve == "train loss" else store.evaluations(row.id)
        curves[f"{row.id[:8]} {row.cell}/{row.activation} h={row.hidden_size}"] = frame
    st.plotly_chart(charts.overlay_figure(curves, title=curve), key="compare_overlay")

    owners = dict(zip(runs["id"], runs["owner"], strict=True))
    own_ids = [
        row.id
        for row in chosen.itertuples()
        if owners.get(row.id) == owner() and row.status not in ("queued", "running")
    ]
    if own_ids and st.button(
        f"Delete {len(own_ids)} of my selected runs", icon=":material/delete:", key="compare_delete"
    ):
        deleted = 0
        for run_id in own_ids:
            with contextlib.suppress(RunNotFound):  # already deleted, from another tab
                store.delete_run(run_id)
                deleted += 1
        st.session_state["compare_toast"] = f"Deleted {deleted} run{'s' * (deleted != 1)}."
        st.rerun()
    if len(own_ids) < len(chosen):
        st.caption("Runs still training, or started in other tabs, can be viewed, not deleted.")

finished = table.dropna(subset=["final_loss"])
if len(finished) >= 2:
    st.subheader("Hyperparameters against the result")
    dimensions = ["cell", "activation", "hidden_size", "num_layers", "seq_len", "lr", "final_loss"]
    st.plotly_chart(
        charts.parallel_coordinates(finished, dimensions, colour="final_loss"),
        key="compare_parallel",
    )
    st.caption("Each line is a run; drag along an axis to filter. Colour: held-out loss.")
