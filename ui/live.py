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
from rnnlab.weights import weights_file_bytes, weights_file_name

from . import charts
from .i18n import _, language
from .state import manager, owner
from .widgets import task_for

POLL_S = 0.4  # the fallback loss fragment's pace
PAGE_POLL_S = 1.0  # pages that still refresh by rerunning: Inside, Race, fallback gates
LIVE_POLL_MS = 200  # the live chart's pace
GATES_POLL_MS = 1000
ROOM_POLL_MS = 1000  # the room's pace
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


def metric_label(name: str | None) -> str:
    """A task's metric name (marked in rnnlab.tasks) as a metric's label: "Accuracy", "MSE"."""
    if not name:
        return _("Metric")
    label = _(name)
    return label[:1].upper() + label[1:]


def _loss_labels(metric_name: str | None) -> dict:
    """What the live loss view says, in the session's language ({name}s filled by live.js)."""
    return {
        "train_loss_trace": _("train loss"),
        "held_out_loss_trace": _("held-out loss"),
        "step_axis": _("step"),
        "loss_axis": _("loss"),
        "solved_at": _("solved at step {step}"),
        "steps_recorded": _("{n} steps recorded"),
        "queued": _("Waiting for a free training worker: position {position} in the queue."),
        "progress": _("Step {step} / {steps} · {rate} · ETA {eta}"),
        "rate": _("{rate} steps/s"),
        "starting": _("starting"),
        "seconds": _("{seconds} s"),
        "minutes": _("{minutes} min"),
        "train_loss": _("Train loss"),
        "held_out_loss": _("Held-out loss"),
        "of_baseline": _("{percent}% of baseline"),
        "chance": _("chance {value}"),
        "solved": _("Solved"),
        "yes": _("yes"),
        "not_yet": _("not yet"),
        "metric": metric_label(metric_name),
    }


def _gates_labels() -> dict:
    """What the live gates view says, in the session's language."""
    return {
        "waiting": _("Gate pictures appear after the first snapshot (about a second)."),
        "inside": _("Inside layer {layer} at step {step} (probe sequence)"),
        "time_step": _("time step"),
        "unit": _("unit"),
        "predictions": _("Predictions on the probe sequence"),
        "value_predictions": _("Predictions on the probe sequences"),
        "input": _("input"),
        "target": _("target"),
        "top_guesses": _("top guesses"),
        "sequences": _("sequences"),
        "perfect": _("perfect"),
        "true_sum": _("true sum"),
        "predicted_sum": _("predicted sum"),
        "true_next_value": _("true next value"),
        "predicted": _("predicted"),
    }


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
            "lang": language(),
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
    baseline, metric_baseline, label, metric_name = _task_info(progress.config)
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
        labels=_loss_labels(metric_name),
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
        titles={name: charts.gate_title(name) for name in names},
        poll_ms=GATES_POLL_MS,
        labels=_gates_labels(),
    )


def live_room(*, key: str, page: str, labels: dict) -> bool:
    """Every run on the server, live: a leaderboard and overlaid curves (live.js RoomView)
    that poll /api/room; False once it reports that the routes cannot be reached."""
    result = _LIVE_VIEW(
        key=f"{key}_room_live",
        data={
            "view": "room",
            "page": page,
            "lang": language(),
            "plotly_url": PLOTLY_ROUTE,
            "active": True,
            "room_url": "api/room",
            "labels": labels,
            "poll_ms": ROOM_POLL_MS,
        },
        on_fallback_change=lambda: None,
    )
    return not getattr(result, "fallback", None)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    if seconds < 120:
        return _("{seconds} s").format(seconds=f"{seconds:.0f}")
    return _("{minutes} min").format(minutes=f"{seconds / 60:.1f}")


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def status_banner(progress: Progress) -> None:
    """One line that says where the run is, and what to do about a bad ending."""
    summary = progress.summary or {}
    status = progress.status
    if status == "queued":
        position = progress.queue_position or 1
        st.info(
            _("Waiting for a free training worker: position {position} in the queue.").format(
                position=position
            ),
            icon=":material/hourglass_top:",
        )
    elif status == "running":
        fraction = min(1.0, progress.step / max(1, progress.steps))
        rate = (
            _("{rate} steps/s").format(rate=f"{progress.steps_per_s:.0f}")
            if progress.steps_per_s
            else _("starting")
        )
        text = _("Step {step} / {steps} · {rate} · ETA {eta}").format(
            step=f"{progress.step:,}",
            steps=f"{progress.steps:,}",
            rate=rate,
            eta=_eta(progress.eta_s),
        )
        st.progress(fraction, text=text)
    elif status == "diverged":
        st.error(
            _(
                "The run diverged at step {step}: the loss or "
                "the gradient became NaN or infinite. Recurrent weights multiply the state at "
                "every step, so activations and gradients can grow exponentially (relu does not "
                "squash them). Turn on gradient clipping (e.g. 1.0), lower the learning rate, "
                "or use tanh."
            ).format(step=summary.get("steps", progress.step) + 1),
            icon=":material/error:",
        )
    elif status == "completed":
        solved = summary.get("solved_at_step")
        verdict = (
            _("solved at step {step}").format(step=solved)
            if solved is not None
            else _("not solved")
        )
        st.success(
            _("Finished {steps} steps in {seconds} s — {verdict}.").format(
                steps=f"{summary.get('steps', progress.step):,}",
                seconds=f"{summary.get('wall_s', 0):.1f}",
                verdict=verdict,
            ),
            icon=":material/check_circle:",
        )
    elif status == "stopped":
        st.warning(
            _("Stopped at step {step}.").format(step=f"{summary.get('steps', progress.step):,}"),
            icon=":material/stop_circle:",
        )
    elif status == "interrupted":
        st.warning(_("The server restarted while this run was training; it was interrupted."))
    elif status == "failed":
        st.error(_("The run failed: {error}").format(error=progress.error or _("unknown error")))


def metrics_row(progress: Progress, baseline: float | None, metric_baseline: float | None) -> None:
    columns = st.columns(4)
    columns[0].metric(_("Train loss"), _number(progress.loss))
    delta = None
    if progress.held_out_loss is not None and baseline:
        percent = f"{100 * progress.held_out_loss / baseline:.2g}"
        delta = _("{percent}% of baseline").format(percent=percent)
    columns[1].metric(
        _("Held-out loss"),
        _number(progress.held_out_loss),
        delta,
        delta_color="off",
        delta_arrow="off",
    )
    chance = None
    if metric_baseline is not None:
        chance = _("chance {value}").format(value=f"{metric_baseline:.3g}")
    columns[2].metric(
        metric_label(progress.metric_name),
        _number(progress.metric),
        chance,
        delta_color="off",
        delta_arrow="off",
    )
    columns[3].metric(_("Solved"), _("yes") if progress.solved else _("not yet"))


def _task_info(config: dict) -> tuple[float | None, float | None, str, str | None]:
    """The task's baseline, chance level of its metric, baseline label and metric name."""
    try:
        task = task_for(RunConfig(**config))
    except (ConfigError, TypeError):
        return None, None, _("baseline"), None
    return task.baseline, task.metric_baseline, _(task.baseline_label), task.metric_name


def loss_chart(progress: Progress, *, key: str) -> None:
    store = manager().store
    steps = store.history(progress.run_id)
    evaluations = store.evaluations(progress.run_id)
    baseline, _metric_baseline, label, _metric_name = _task_info(progress.config)
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
        st.caption(
            _("{n} steps recorded").format(n=f"{len(steps):,}"),
            help=_("Refreshes while the run trains."),
        )


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


def gates_figure(run_id: str, step: int, layer: int, cell: str, snapshot: dict):
    """A run's gate heatmaps at one snapshot: built once per language (about 0.1 s)."""
    return _gates_figure(run_id, step, layer, cell, language(), snapshot)


@st.cache_resource(show_spinner=False, max_entries=64)
def _gates_figure(run_id: str, step: int, layer: int, cell: str, lang: str, _snapshot: dict):
    return charts.gate_heatmaps(_snapshot["layers"][layer], _snapshot["kept"], names=GATES[cell])


def gates_and_predictions(progress: Progress, *, key: str, layer: int = 0) -> None:
    snapshot = snapshot_of(progress)
    if not snapshot:
        st.caption(_("Gate pictures appear after the first snapshot (about half a second)."))
        return
    cell = progress.config["cell"]
    left, right = st.columns([3, 2])
    with left:
        st.markdown(
            _("**Inside layer {layer}** at step {step} (probe sequence)").format(
                layer=layer + 1, step=f"{snapshot['step']:,}"
            )
        )
        figure = gates_figure(progress.run_id, snapshot["step"], layer, cell, snapshot)
        st.plotly_chart(figure, key=f"{key}_gates_{layer}")
    with right:
        st.markdown(_("**Predictions** on the probe sequence"))
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
        st.caption(_("Started in another browser tab: only that tab can stop it."))
        return
    if st.button(_("Stop"), icon=":material/stop:", key=f"{key}_stop"):
        try:
            manager().cancel(progress.run_id, owner=owner())
        except JobError as error:
            st.error(str(error))


def weights_download(run_id: str, *, key: str) -> None:
    """A button that downloads the run's trained weights, if the store kept them."""
    file = _weights_file(run_id)
    if file is None:
        return
    name, data = file
    st.download_button(
        _("Download weights (.pt)"),
        data,
        file_name=name,
        mime="application/octet-stream",
        icon=":material/download:",
        key=f"{key}_weights_{run_id}",
        help=_(
            "The trained network and its settings. In a notebook: "
            "`model, config = rnnlab.load_model(FILE)`; `rnnlab.evaluate(model, config)` "
            "gives its held-out loss again."
        ),
    )


@st.cache_resource(show_spinner=False, max_entries=32)
def _weights_file(run_id: str) -> tuple[str, bytes] | None:
    """(file name, .pt bytes) of a finished run's weights; None if it kept none."""
    store = manager().store
    data = weights_file_bytes(store, run_id)
    if data is None:
        return None
    return weights_file_name(run_id, store.get_run(run_id).config), data


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
        st.info(_("That run is no longer stored."))
        return None
    fallback = "live_routes_unreachable"  # once seen, for the rest of the session
    if not st.session_state.get(fallback):
        if first.active:
            stop_button(first, key=key)
        else:
            status_banner(first)
            weights_download(run_id, key=key)
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
    st.caption(_("Live updates by polling the page (the server's live routes are not reachable)."))

    @st.fragment(run_every=POLL_S if active else None)
    def curve() -> None:
        progress = manager().progress(run_id)
        if progress is None:
            st.info(_("That run was deleted."))
            return
        baseline, metric_baseline, *_task = _task_info(progress.config)
        status_banner(progress)
        stop_button(progress, key=key)
        if not progress.active:
            weights_download(run_id, key=key)
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
