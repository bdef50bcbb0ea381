"""Live views of a run.

While a run trains, its loss chart and gate pictures are small JavaScript views
(live.js) that poll the server's JSON routes (ui/routes.py) and extend their charts in
place: watching costs the server no rerun per tick. Where those routes cannot be
reached, the views say so and the page falls back to fragments that poll the pool.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from rnnlab.config import ConfigError, RunConfig
from rnnlab.jobs import JobError, Progress

from . import charts
from .state import manager, owner
from .widgets import task_for

POLL_S = 0.4  # the fallback loss fragment's pace
PAGE_POLL_S = 1.0  # pages that still refresh by rerunning: Inside, Race, fallback gates
LIVE_POLL_MS = 200  # the live chart's pace
GATES_POLL_MS = 1000
MOUNT_POINTS = 1500  # at most this many points go into a chart when it is mounted
MAX_PROFILES = 64  # gradient profiles kept per run
MAX_PROFILED_RUNS = 200
GATES = {"lstm": ["i", "f", "g", "o", "c", "h"], "gru": ["r", "z", "n", "h"], "rnn": ["pre", "h"]}


_LIVE_VIEW = st.components.v2.component(
    "rnnlab_live",
    js=(Path(__file__).with_name("live.js")).read_text(encoding="utf-8"),
    css=(Path(__file__).with_name("live.css")).read_text(encoding="utf-8"),
    isolate_styles=False,  # in the page's DOM: Plotly's styles apply, tests can follow it
)


PLOTLY_ROUTE = "api/plotly.js"  # routes are relative: live.js resolves them (see apiUrl)


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _finished_curve(progress: Progress) -> dict:
    """A finished run's curve (thinned), evaluations, solved step and final numbers, from
    the store: what its loss view is mounted with."""
    store = manager().store
    history = charts.thin(store.history(progress.run_id), MOUNT_POINTS)
    evaluations = store.evaluations(progress.run_id)
    solved = evaluations.loc[evaluations["solved"], "step"]
    summary = progress.summary or {}
    return {
        "points": {
            "step": history["step"].astype(int).tolist(),
            "loss": [_finite(v) for v in history["loss"].tolist()],
        },
        "evaluations": [
            [int(row.step), _finite(row.loss), _finite(row.metric), bool(row.solved)]
            for row in evaluations.itertuples()
        ],
        "solved_at": int(solved.iloc[0]) if len(solved) else None,
        "progress": {
            "status": progress.status,
            "step": progress.step,
            "steps": progress.steps,
            "loss": summary.get("final_train_loss", progress.loss),
            "held_out_loss": progress.held_out_loss,
            "metric": progress.metric,
            "metric_name": progress.metric_name,
            "solved": progress.solved,
            "steps_per_s": summary.get("steps_per_s"),
            "eta_s": None,
            "queue_position": None,
        },
    }


def curve_of(run_id: str) -> pd.DataFrame:
    """A run's training loss by step: from memory while the pool holds it, else the store."""
    live = manager().live(run_id, since=0)
    if live is None:
        return manager().store.history(run_id)
    points = live["points"]
    return pd.DataFrame({"step": points["step"], "loss": points["loss"]}, dtype=float)


def _mount(view: str, progress: Progress, /, *, key: str, page: str, **data) -> bool:
    """Mount one live view of a run (live.js); False once it reports that the routes
    cannot be reached, and the page must poll instead. `page` is the page's url_path."""
    result = _LIVE_VIEW(
        key=f"{key}_{view}_live_{progress.run_id}",
        data={
            "view": view,
            "page": page,
            "run_id": progress.run_id,
            "plotly_url": PLOTLY_ROUTE,
            "active": progress.active,
            **data,
        },
        on_ended_change=lambda: None,  # the run ended: rerun the page to show its result
        on_fallback_change=lambda: None,
    )
    return not getattr(result, "fallback", None)


def preload_live_view(*, key: str, page: str = "") -> None:
    """Load Plotly's script into the page now, so the first run's chart draws at once."""
    _LIVE_VIEW(
        key=f"{key}_preload",
        data={"view": "preload", "page": page, "plotly_url": PLOTLY_ROUTE},
        height=0,
    )


def live_loss_chart(progress: Progress, *, key: str, page: str = "") -> bool:
    """The live loss chart, status and metrics of a run; False if the page must poll instead.

    While the run trains, the view asks the route for everything so far: data that stays
    the same lets a rerun of the page (a slider move) leave the view alone.
    """
    baseline, metric_baseline, label = _task_info(progress.config)
    if progress.active:
        curve = {"points": {"step": [], "loss": []}, "evaluations": [], "solved_at": None}
    else:
        curve = _finished_curve(progress)
    return _mount(
        "loss",
        progress,
        key=key,
        page=page,
        points_url=f"api/runs/{progress.run_id}",
        steps=progress.steps,
        baseline=baseline,
        baseline_label=label,
        metric_baseline=metric_baseline,
        poll_ms=LIVE_POLL_MS,
        **curve,
    )


def live_gates(progress: Progress, *, key: str, page: str = "", layer: int = 0) -> bool:
    """Gate heatmaps and predictions that refresh from the route; False to poll instead."""
    names = GATES[progress.config["cell"]]
    return _mount(
        "gates",
        progress,
        key=key,
        page=page,
        gates_url=f"api/runs/{progress.run_id}/gates",
        layer=layer,
        names=names,
        titles={name: charts.GATE_TITLES.get(name, name) for name in names},
        poll_ms=GATES_POLL_MS,
    )


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def status_banner(progress: Progress) -> None:
    """One line that says where the run is, and what to do about a bad ending."""
    summary = progress.summary or {}
    status = progress.status
    if status == "queued":
        position = progress.queue_position or 1
        st.info(
            f"Waiting for a free training worker: position {position} in the queue.",
            icon=":material/hourglass_top:",
        )
    elif status == "running":
        fraction = min(1.0, progress.step / max(1, progress.steps))
        rate = f"{progress.steps_per_s:.0f} steps/s" if progress.steps_per_s else "starting"
        eta = _eta(progress.eta_s)
        st.progress(
            fraction, text=f"Step {progress.step:,} / {progress.steps:,} · {rate} · ETA {eta}"
        )
    elif status == "diverged":
        st.error(
            f"The run diverged at step {summary.get('steps', progress.step) + 1}: the loss or "
            "the gradient became NaN or infinite. Recurrent weights multiply the state at "
            "every step, so activations and gradients can grow exponentially (relu does not "
            "squash them). Turn on gradient clipping (e.g. 1.0), lower the learning rate, "
            "or use tanh.",
            icon=":material/error:",
        )
    elif status == "completed":
        solved = summary.get("solved_at_step")
        verdict = f"solved at step {solved}" if solved is not None else "not solved"
        st.success(
            f"Finished {summary.get('steps', progress.step):,} steps in "
            f"{summary.get('wall_s', 0):.1f} s — {verdict}.",
            icon=":material/check_circle:",
        )
    elif status == "stopped":
        st.warning(
            f"Stopped at step {summary.get('steps', progress.step):,}.",
            icon=":material/stop_circle:",
        )
    elif status == "interrupted":
        st.warning("The server restarted while this run was training; it was interrupted.")
    elif status == "failed":
        st.error(f"The run failed: {progress.error or 'unknown error'}")


def metrics_row(progress: Progress, baseline: float | None, metric_baseline: float | None) -> None:
    columns = st.columns(4)
    columns[0].metric("Train loss", _number(progress.loss))
    delta = None
    if progress.held_out_loss is not None and baseline:
        delta = f"{100 * progress.held_out_loss / baseline:.2g}% of baseline"
    columns[1].metric(
        "Held-out loss",
        _number(progress.held_out_loss),
        delta,
        delta_color="off",
        delta_arrow="off",
    )
    name = progress.metric_name or "metric"
    columns[2].metric(
        name.capitalize(),
        _number(progress.metric),
        f"chance {metric_baseline:.3g}" if metric_baseline is not None else None,
        delta_color="off",
        delta_arrow="off",
    )
    columns[3].metric("Solved", "yes" if progress.solved else "not yet")


def _task_info(config: dict) -> tuple[float | None, float | None, str]:
    try:
        task = task_for(RunConfig(**config))
    except (ConfigError, TypeError):
        return None, None, "baseline"
    return task.baseline, task.metric_baseline, task.baseline_label


def loss_chart(progress: Progress, *, key: str) -> None:
    store = manager().store
    steps = store.history(progress.run_id)
    evaluations = store.evaluations(progress.run_id)
    baseline, _, label = _task_info(progress.config)
    solved = evaluations.loc[evaluations["solved"], "step"]
    figure = charts.loss_figure(
        steps,
        evaluations,
        baseline=baseline,
        baseline_label=label,
        solved_at=int(solved.iloc[0]) if len(solved) else None,
        total_steps=progress.steps,
    )
    st.plotly_chart(figure, key=f"{key}_loss")
    if progress.active or len(steps):
        st.caption(f"{len(steps):,} steps recorded", help="Refreshes while the run trains.")


@st.cache_resource(show_spinner=False)
def _gradient_profiles() -> dict[str, list[tuple[int, list]]]:
    """run id -> (step, layer 1's ‖∂L/∂h_t‖) for every snapshot any page has seen."""
    return {}


def gradient_profile(run_id: str) -> list[tuple[int, list]]:
    return _gradient_profiles().get(run_id, [])


def snapshot_of(progress: Progress) -> dict | None:
    """The run's latest snapshot; remembers its gradient profile for Inside the cell."""
    snapshot = progress.snapshot or manager().store.snapshot(progress.run_id)
    if snapshot:
        profiles = _gradient_profiles()
        profile = profiles.setdefault(progress.run_id, [])
        if not profile or profile[-1][0] < snapshot["step"]:
            profile.append((snapshot["step"], snapshot["gradient_norms"][0]))
            if len(profile) > MAX_PROFILES:
                profile[:] = profile[::2]  # thin out, keeping the whole run covered
        while len(profiles) > MAX_PROFILED_RUNS:
            profiles.pop(next(iter(profiles)))
    return snapshot


@st.cache_resource(show_spinner=False, max_entries=64)
def gates_figure(run_id: str, step: int, layer: int, cell: str, _snapshot: dict):
    """A run's gate heatmaps at one snapshot: built once (about 0.1 s), then reused."""
    return charts.gate_heatmaps(_snapshot["layers"][layer], _snapshot["kept"], names=GATES[cell])


def gates_and_predictions(progress: Progress, *, key: str, layer: int = 0) -> None:
    snapshot = snapshot_of(progress)
    if not snapshot:
        st.caption("Gate pictures appear after the first snapshot (about half a second).")
        return
    cell = progress.config["cell"]
    left, right = st.columns([3, 2])
    with left:
        st.markdown(f"**Inside layer {layer + 1}** at step {snapshot['step']:,} (probe sequence)")
        figure = gates_figure(progress.run_id, snapshot["step"], layer, cell, snapshot)
        st.plotly_chart(figure, key=f"{key}_gates_{layer}")
    with right:
        st.markdown("**Predictions** on the probe sequence")
        predictions = snapshot.get("predictions", {})
        table = charts.next_symbol_table(predictions)
        if table is not None:
            st.dataframe(table, hide_index=True, key=f"{key}_predictions_table")
        else:
            figure = charts.predictions_figure(predictions)
            if figure is not None:
                st.plotly_chart(figure, key=f"{key}_predictions")


def stop_button(progress: Progress, *, key: str) -> None:
    if not progress.active:
        return
    if progress.owner != owner():
        st.caption("Started in another browser tab: only that tab can stop it.")
        return
    if st.button("Stop", icon=":material/stop:", key=f"{key}_stop"):
        try:
            manager().cancel(progress.run_id, owner=owner())
        except JobError as error:
            st.error(str(error))


def run_panel(
    run_id: str, *, key: str, page: str = "", show_inside: bool = True
) -> Progress | None:
    """Status, metrics, loss curve and (optionally) gates of one run, live while it trains.

    `page` is the url_path of the page it is on ("" for the default page). The live
    views poll the server's routes by themselves and rerun the page once, when
    the run ends. If they report that the routes cannot be reached, this page polls
    instead: two fragments, the curve every POLL_S and the gates every PAGE_POLL_S.
    """
    first = manager().progress(run_id)
    if first is None:
        st.info("That run is no longer stored.")
        return None
    fallback = "live_routes_unreachable"  # once seen, for the rest of the session
    if not st.session_state.get(fallback):
        if first.active:
            stop_button(first, key=key)
        else:
            status_banner(first)
        live = live_loss_chart(first, key=key, page=page)
        if live and show_inside:
            if first.active:
                live = live_gates(first, key=key, page=page)
            else:
                gates_and_predictions(first, key=key)
        if live:
            return first
        st.session_state[fallback] = True
        st.rerun()
    return _polled_panel(first, key=key, show_inside=show_inside)


def _polled_panel(first: Progress, *, key: str, show_inside: bool) -> Progress:
    """The same panel for pages that cannot reach the live routes: fragments that poll."""
    run_id, active = first.run_id, first.active
    st.caption("Live updates by polling the page (the server's live routes are not reachable).")

    @st.fragment(run_every=POLL_S if active else None)
    def curve() -> None:
        progress = manager().progress(run_id)
        if progress is None:
            st.info("That run was deleted.")
            return
        baseline, metric_baseline, _ = _task_info(progress.config)
        status_banner(progress)
        stop_button(progress, key=key)
        metrics_row(progress, baseline, metric_baseline)
        loss_chart(progress, key=key)
        if active and not progress.active:
            st.rerun()  # the whole page: the run ended, so stop polling

    @st.fragment(run_every=PAGE_POLL_S if active else None)
    def inside() -> None:
        progress = manager().progress(run_id)
        if progress is not None:
            gates_and_predictions(progress, key=key)

    curve()
    if show_inside:
        inside()
    return first
