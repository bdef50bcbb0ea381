"""Live views of runs: one browser renderer (live.js) for every live and finished picture.

Each picture is a small JavaScript view that polls the server's JSON routes
(ui/routes.py, answered by ui/answers.py from the job manager's memory) and redraws in
place: watching costs the server no page rerun per update. Where those routes cannot be
reached (a proxy that forwards only Streamlit's own paths), a view says so once, and the
page feeds the same views the same answers from a fragment instead (`_fed`).

Each view gets this session's viewer key (ui/answers.viewer_key) and sends it with its
requests: only its owner's views are answered a run's word, uploaded text and the
predictions on them; a page that feeds its views answers them by the same rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from rnnlab.cells import CELLS
from rnnlab.config import ConfigError, RunConfig
from rnnlab.downloads import weights_file_name
from rnnlab.jobs import JobError, Progress

from . import answers
from .i18n import _, language
from .labels import (
    gate_titles,
    gates_labels,
    influence_labels,
    inside_labels,
    loss_labels,
    race_labels,
    room_labels,
    study_labels,
)
from .state import manager, owner
from .text import plain
from .widgets import task_for

FED_POLL_S = 1.0  # a page that feeds its views itself refreshes them this often
LIVE_POLL_MS = 200  # the live loss chart's pace
PICTURE_POLL_MS = 1000  # gate pictures, Inside, a race and the room
PLOTLY_ROUTE = "api/plotly.js"  # routes are relative: live.js resolves them (see apiUrl)
PLOTLY_STATIC = "app/static/plotly.min.js"  # Streamlit's own static serving (see app.py)
UNREACHABLE = "live_routes_unreachable"  # session flag: once seen, for the whole session

_LIVE_VIEW = st.components.v2.component(
    "rnnlab_live",
    js=(Path(__file__).with_name("live.js")).read_text(encoding="utf-8"),
    css=(Path(__file__).with_name("live.css")).read_text(encoding="utf-8"),
    isolate_styles=False,  # in the page's DOM: Plotly's styles apply, tests can follow it
)


def _mount(view: str, *, key: str, page: str, active: bool, fed: Any = None, **data) -> bool:
    """Mount one live.js view; False once it reports that the routes cannot be reached.
    `page` is the page's url_path ("" on the default page); `fed`, the route's answer
    for a page that feeds its views itself."""
    result = _LIVE_VIEW(
        key=f"{key}_{view}_live",
        data={
            "view": view,
            "page": page,
            "plotly_url": PLOTLY_ROUTE,
            "plotly_fallback_url": PLOTLY_STATIC,
            "lang": language(),
            "active": active,
            "poll_ms": LIVE_POLL_MS if view == "loss" else PICTURE_POLL_MS,
            "fed": fed,
            "viewer_key": viewer_key(),
            **data,
        },
        on_ended_change=lambda: None,  # the run ended: rerun the page to show its result
        on_fallback_change=lambda: None,
    )
    return not getattr(result, "fallback", None)


def _live(
    mount: Callable[[Any], bool], answer: Callable[[], Any], *, active: bool, ends: bool = True
) -> None:
    """Mount a view that polls the routes; if they cannot be reached, a fragment that
    feeds it `answer()` every FED_POLL_S while `active`, and reruns the page once what it
    shows has ended (if it `ends`)."""
    if not st.session_state.get(UNREACHABLE):
        if mount(None):
            return
        st.session_state[UNREACHABLE] = True
        st.rerun()

    @st.fragment(run_every=FED_POLL_S if active else None)
    def fed() -> None:
        value = answer()
        mount(value)
        if ends and active and not _still_active(value):
            st.rerun()  # the whole page: the run or race ended, so stop feeding

    fed()


def viewer_key() -> str:
    """This session's key: the routes answer its own runs' private inputs to it."""
    return answers.viewer_key(owner())


def _still_active(answer: Any) -> bool:
    progress = answer.get("progress", answer) if isinstance(answer, dict) else None
    if isinstance(progress, dict) and "runs" in progress:
        return any(row["status"] in ("queued", "running") for row in progress["runs"])
    return isinstance(progress, dict) and progress.get("status") in ("queued", "running")


def fed_notice() -> None:
    if st.session_state.get(UNREACHABLE):
        st.caption(
            _("Live updates by polling the page (the server's live routes are not reachable).")
        )


def preload_live_view(*, key: str, page: str = "") -> None:
    """Load Plotly's script into the page now, so the first run's chart draws at once."""
    _LIVE_VIEW(
        key=f"{key}_preload",
        data={
            "view": "preload",
            "page": page,
            "plotly_url": PLOTLY_ROUTE,
            "plotly_fallback_url": PLOTLY_STATIC,
        },
        height=0,
    )


def _task_info(config: dict) -> tuple[float | None, float | None, str, str | None]:
    """The task's baseline, chance level of its metric, baseline label and metric name."""
    try:
        task = task_for(RunConfig(**config))
    except (ConfigError, TypeError):
        return None, None, _("baseline"), None
    return task.baseline, task.metric_baseline, _(task.baseline_label), task.metric_name


def _cell(config: dict) -> dict[str, Any]:
    spec = CELLS[config["cell"]]
    return spec.to_dict(), gate_titles(spec.states)


def _run_view(
    view: str, progress: Progress, answer: Callable[[], Any], *, key: str, page: str, **data
) -> None:
    """Mount a live.js view of one run; where the routes are out of reach, feed it
    `answer()` (what its route would answer) instead."""

    def mount(fed: Any) -> bool:
        return _mount(
            view,
            key=f"{key}_{progress.run_id}",
            page=page,
            active=progress.active,
            fed=fed,
            run_id=progress.run_id,
            **data,
        )

    _live(mount, answer, active=progress.active)


def loss_view(progress: Progress, *, key: str, page: str = "") -> None:
    """The loss chart, progress and metrics of a run, live while it trains."""
    baseline, metric_baseline, label, metric_name = _task_info(progress.config)
    if baseline is None:  # measured on the task's data (sine): the run says what it was
        baseline = progress.baseline
    run_id = progress.run_id
    _run_view(
        "loss",
        progress,
        lambda: answers.run_answer(manager(), run_id, key=viewer_key()),
        key=key,
        page=page,
        points_url=f"api/runs/{run_id}",
        steps=progress.steps,
        baseline=baseline,
        baseline_label=label,
        metric_baseline=metric_baseline,
        labels=loss_labels(metric_name),
    )


def gates_view(progress: Progress, *, key: str, page: str = "", layer: int = 0) -> None:
    """A layer's gate and state heatmaps and the predictions on the probe sequence."""
    run_id = progress.run_id
    cell, titles = _cell(progress.config)
    _run_view(
        "gates",
        progress,
        lambda: answers.decoded(
            answers.gates_bytes(manager(), run_id, layer, -1, key=viewer_key())
        ),
        key=f"{key}_{layer}",
        page=page,
        gates_url=f"api/runs/{run_id}/gates",
        layer=layer,
        cell=cell,
        titles=titles,
        labels={
            **gates_labels(),
            "private": _(
                "The predictions show the run's word or text, so only the tab that "
                "started it sees them."
            ),
        },
    )


def influence_view(progress: Progress, *, key: str, page: str = "") -> None:
    """Which input steps the predictions use, and how that grew during training: live
    while the run trains (the probe's characters on the axes for its owner only)."""
    run_id = progress.run_id
    _run_view(
        "influence",
        progress,
        lambda: answers.decoded(answers.influence_bytes(manager(), run_id, -1, key=viewer_key())),
        key=key,
        page=page,
        influence_url=f"api/runs/{run_id}/influence",
        labels=influence_labels(),
    )


def inside_view(progress: Progress, *, key: str, page: str) -> None:
    """Every layer's gates and states, gradients through time and saturation of a run;
    the layer and unit range are chosen in the browser."""
    run_id, config = progress.run_id, progress.config
    cell, titles = _cell(config)
    layers = config["num_layers"]

    def answer() -> dict[str, Any]:
        pool, key = manager(), viewer_key()
        return {
            "progress": answers.run_answer(pool, run_id, progress.steps, key=key),
            "views": {
                str(layer): answers.decoded(answers.gates_bytes(pool, run_id, layer, -1, key=key))
                for layer in range(layers)
            },
            "gradients": answers.decoded(answers.gradients_bytes(pool, run_id, -1)),
            "influence": answers.decoded(answers.influence_bytes(pool, run_id, -1, key=key)),
            "trajectories": {
                str(layer): answers.decoded(answers.trajectory_bytes(pool, run_id, layer, -1))
                for layer in range(layers)
            },
        }

    _run_view(
        "inside",
        progress,
        answer,
        key=key,
        page=page,
        points_url=f"api/runs/{run_id}",
        gates_url=f"api/runs/{run_id}/gates",
        gradients_url=f"api/runs/{run_id}/gradients",
        influence_url=f"api/runs/{run_id}/influence",
        trajectory_url=f"api/runs/{run_id}/trajectory",
        layers=layers,
        cell=cell,
        titles=titles,
        settings={
            "cell": config["cell"],
            "activation": config["activation"],
            "num_layers": layers,
            "hidden_size": config["hidden_size"],
            "steps": config["steps"],
        },
        labels=inside_labels(),
    )


def race_view(sweep_id: str, *, total: int, axes: list[str], active: bool, key: str, page: str):
    """A race's runs as small multiples filling in live, and its result grid at the end."""

    def mount(fed: Any) -> bool:
        return _mount(
            "race",
            key=f"{key}_{sweep_id}",
            page=page,
            active=active,
            fed=fed,
            sweep_id=sweep_id,
            sweep_url=f"api/sweeps/{sweep_id}",
            total=total,
            axes=axes,
            labels=race_labels(),
        )

    def answer() -> dict[str, Any]:
        return answers.sweep_answer(manager(), sweep_id, {}, key=viewer_key()) or {"runs": []}

    _live(mount, answer, active=active)


def room_view(*, key: str, page: str) -> None:
    """Every run on the server, live: a leaderboard and overlaid curves."""

    def mount(fed: Any) -> bool:
        return _mount(
            "room",
            key=key,
            page=page,
            active=True,
            fed=fed,
            room_url="api/room",
            labels=room_labels(),
        )

    _live(mount, lambda: answers.room_answer(manager(), {}), active=True, ends=False)


def study_view(
    name: str, *, active: bool, evaluator: str, objective: str, key: str, page: str
) -> None:
    """A study (rnnlab.tune) drawn live: best so far, every trial's curve, parallel
    coordinates, slices and what matters; `objective` is its label in words."""

    def mount(fed: Any) -> bool:
        return _mount(
            "study",
            key=key,
            page=page,
            active=True,
            fed=fed,
            study=name,
            study_url=f"api/studies/{name}",
            evaluator=evaluator,
            objective=objective,
            labels=study_labels(),
        )

    def answer() -> Any:
        return answers.study_answer(manager(), name, evaluator=evaluator, key=viewer_key())

    _live(mount, answer, active=active, ends=False)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    if seconds < 120:
        return _("{seconds} s").format(seconds=f"{seconds:.0f}")
    return _("{minutes} min").format(minutes=f"{seconds / 60:.1f}")


def status_banner(progress: Progress) -> None:
    """One line that says how a run ended, and what to do about a bad ending."""
    summary = progress.summary or {}
    status = progress.status
    if status == "diverged":
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
        error = progress.error or _("unknown error")
        st.error(_("The run failed: {error}").format(error=plain(error)))


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
            st.error(plain(error))


def weights_download(run_id: str, *, key: str) -> None:
    """A button that downloads the run's trained weights: for the session that trained
    it, if the store kept them. A training worker makes the file when the button is
    pressed (JobManager.export_weights): the server itself never loads PyTorch."""
    store = manager().store
    run = store.get_run(run_id)
    if run.owner != owner() or store.weights_size(run_id) is None:
        return
    st.download_button(
        _("Download weights (.pt)"),
        functools.partial(_weights_file, run_id),
        file_name=weights_file_name(run_id, run.config),
        mime="application/octet-stream",
        icon=":material/download:",
        key=f"{key}_weights_{run_id}",
        help=_(
            "The trained network and its settings. In a notebook: "
            "`model, config = rnnlab.load_model(FILE)`; `rnnlab.evaluate(model, config)` "
            "gives its held-out loss again."
        ),
    )


def _weights_file(run_id: str) -> bytes:
    """A finished run's .pt file, made by a worker at each download (up to 30 MB: not
    kept in the server's memory)."""
    return manager().export_weights(run_id) or b""


def run_panel(
    run_id: str, *, key: str, page: str = "", show_inside: bool = True
) -> Progress | None:
    """Stop button or ending, loss chart, progress and metrics, and (optionally) the
    first layer's gates and the inputs' influence of one run: live while it trains, then
    its final pictures.

    `page` is the url_path of the page it is on ("" for the default page). The views
    rerun the page once, when the run ends.
    """
    progress = manager().progress(run_id)
    if progress is None:
        st.info(_("That run is no longer stored."))
        return None
    fed_notice()
    if progress.active:
        stop_button(progress, key=key)
    else:
        status_banner(progress)
        weights_download(run_id, key=key)
    loss_view(progress, key=key, page=page)
    if show_inside:
        gates_view(progress, key=key, page=page)
        influence_view(progress, key=key, page=page)
    return progress
