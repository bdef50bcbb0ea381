"""Every word the browser views (live.js) show, in the session's language.

One function per view returns its `labels`: plain strings, some with {name}
placeholders that live.js fills in, some with **bold**. Plural forms come as `_one` and
`_other` (English and Korean need no more). No Streamlit calls here.
"""

from __future__ import annotations

from typing import Any

from .i18n import N_, _, ngettext

GATE_TITLES = {  # shown with _(): gate_titles()
    "i": N_("input gate i"),
    "f": N_("forget gate f"),
    "g": N_("candidate g"),
    "o": N_("output gate o"),
    "c": N_("cell state c"),
    "h": N_("hidden state h"),
    "r": N_("reset gate r"),
    "z": N_("update gate z"),
    "n": N_("candidate n"),
    "pre": N_("pre-activation"),
}

STATUSES = {  # a run's status (rnnlab.store.STATUSES) as a reader sees it
    "queued": N_("queued"),
    "running": N_("running"),
    "completed": N_("completed"),
    "diverged": N_("diverged"),
    "stopped": N_("stopped"),
    "pruned": N_("pruned"),
    "interrupted": N_("interrupted"),
    "failed": N_("failed"),
}


def gate_titles(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The titles of a cell's gates and states (by their letters): {name: title}."""
    return {name: _(GATE_TITLES[name]) if name in GATE_TITLES else name for name in names}


def status_label(status: str) -> str:
    """A run's status in the session's language ("completed", "diverged", ...)."""
    return _(STATUSES[status]) if status in STATUSES else status


def metric_label(name: str | None) -> str:
    """A task's metric name (marked in rnnlab.tasks) as a metric's label: "Accuracy", "MSE"."""
    if not name:
        return _("Metric")
    label = _(name)
    return label[:1].upper() + label[1:]


def _common() -> dict[str, str]:
    return {
        "no_plotly": _("The charts cannot be drawn: the browser could not load Plotly's script."),
    }


def loss_labels(metric_name: str | None) -> dict[str, str]:
    """The loss view: progress, metrics and the live loss chart."""
    return {
        **_common(),
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


def _heatmap_labels() -> dict[str, str]:
    return {"time_step": _("time step"), "unit": _("unit")}


def gates_labels() -> dict[str, str]:
    """Train's gates view: one layer's heatmaps and the predictions on the probe."""
    return {
        **_common(),
        **_heatmap_labels(),
        "waiting": _("Gate pictures appear after the first snapshot (about a second)."),
        "inside": _("Inside layer {layer} at step {step} (probe sequence)"),
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


def _inside_header(layers: int) -> str:
    return ngettext(
        "**{cell} · {activation} · {n} layer · hidden {hidden}** — snapshot at step "
        "{step:,} of {steps:,} ({status})",
        "**{cell} · {activation} · {n} layers · hidden {hidden}** — snapshot at step "
        "{step:,} of {steps:,} ({status})",
        layers,
    )


def _race_progress(total: int) -> str:
    return ngettext("{done} of {total} run finished", "{done} of {total} runs finished", total)


def inside_labels() -> dict[str, Any]:
    """Inside the cell: states, saturation, spectral radius and gradients through time."""
    return {
        **_common(),
        **_heatmap_labels(),
        "header_one": _inside_header(1),
        "header_other": _inside_header(2),
        "statuses": {status: _(label) for status, label in STATUSES.items()},
        "no_snapshot": _("This run has no snapshot yet."),
        "showing_units": _("Showing {shown} of {total} units."),
        "layer_tab": _("Layer {n}"),
        "units": _("Units"),
        "gate_means": _(
            "Mean gate values: {values}. A forget gate near 1 keeps the past; near 0 it forgets."
        ),
        "saturation_title": _("**Gate saturation** — one dot per unit"),
        "saturation_caption": _(
            "Units in the top-left corner are almost always open (> 0.9), in the "
            "bottom-right almost always closed (< 0.1): gates used as switches. "
            "Units near the origin work in the soft middle range."
        ),
        "closed_axis": _("fraction of time steps < 0.1 (closed)"),
        "open_axis": _("fraction of time steps > 0.9 (open)"),
        "spectral_radius": _(
            "Spectral radius of the recurrent weights: {radii} (above 1, repeated "
            "multiplication can blow the state up; far below 1 it fades)."
        ),
        "gradient_title": _("**Gradient through time** ‖∂L/∂h_t‖"),
        "gradient_caption": _(
            "How much the loss depends on the hidden state at each step. Reading right to "
            "left is going back in time: a line that drops steeply is the vanishing "
            "gradient — early steps barely learn (sigmoid′ ≤ 0.25 vanishes faster than "
            "tanh′ ≤ 1)."
        ),
        "time_step_t": _("time step t"),
        "layer_trace": _("layer {layer}"),
        "history_title": _("**How it changed during training** (layer 1)"),
        "snapshots_shown": _("Snapshots shown"),
        "step_trace": _("step {step}"),
        "history_axis": _("‖∂L/∂h_t‖ (layer 1)"),
        "history_caption": _(
            "One line per snapshot with gradients, from the earliest (light) to the latest (dark)."
        ),
        "history_empty": _(
            "Appears once the gradients have been computed twice: at the first snapshot, "
            "then about every 5 seconds of the run's training."
        ),
        **influence_labels(),
        **trajectory_labels(),
    }


def influence_labels() -> dict[str, str]:
    """Which input steps the predictions use: the influence charts (Train and Inside)."""
    return {
        **_common(),
        "influence_title": _("**Which inputs does the prediction use?** ‖∂ŷ_T/∂x_t‖"),
        "influence_waiting": _(
            "Appears with the first gradients through time (at the first snapshot)."
        ),
        "sequence_trace": _("probe sequence {n}"),
        "marked_trace": _("marked positions"),
        "input_step_axis": _("input time step t"),
        "prediction_step_axis": _("prediction at time step t′"),
        "influence_axis": _("relative influence on the last prediction"),
        "relative_axis": _("relative influence"),
        "training_step_axis": _("training step"),
        "influence_caption": _(
            "How much each input x_t moves the last prediction (training step {step}), each "
            "line divided by its own largest value, log scale 10⁻⁴~1. A tanh RNN's line "
            "falls within a few time steps: it cannot use inputs further back."
        ),
        "influence_caption_marked": _(
            "How much each input x_t moves the last prediction (training step {step}), each "
            "line divided by its own largest value, log scale 10⁻⁴~1. Stars mark the two "
            "values to add: a trained LSTM's lines peak there however far back they are, "
            "while a tanh RNN's influence dies within a few time steps."
        ),
        "influence_private": _(
            "The axes show time steps only: the characters are the run's word or text, "
            "which only the tab that started it sees."
        ),
        "influence_map_title": _("**Every prediction** (probe sequence 1)"),
        "influence_map_caption": _(
            "Row t′: how much each earlier input t moves the prediction at t′, divided by "
            "the row's largest value. A bright diagonal only: the network looks one or "
            "two characters back; brightness further left: it remembers more."
        ),
        "influence_history_title": _("**How the reach grew during training** (probe sequence 1)"),
        "influence_history_caption": _(
            "One row per snapshot with influence, the earliest at the bottom. Colour that "
            "spreads to the left as training goes on: the network learns to use inputs "
            "further back."
        ),
        "influence_history_empty": _(
            "Fills in as training goes on: a row about every 5 seconds of training."
        ),
    }


def trajectory_labels() -> dict[str, str]:
    """Where the hidden state travels: the PCA path chart and its slider (Inside)."""
    return {
        "trajectory_title": _("**Where the hidden state travels** — its path through time"),
        "trajectory_waiting": _(
            "Appears with the first gradients through time (at the first snapshot)."
        ),
        "trajectory_slider": _("Snapshot"),
        "trajectory_position": _("training step {step} ({n} of {count})"),
        "start_trace": _("start (t = 0)"),
        "end_trace": _("end"),
        "pc_axis": _("PC{n} ({percent} % of the variance)"),
        "trajectory_caption": _(
            "The hidden state h_t of each probe sequence projected on the two directions "
            "in which it varied most (principal components, fitted at training step "
            "{reference}: {percent} % of the variance). Colour is the time step. The "
            "slider moves over the {count} snapshots that share these axes; the axes are "
            "fitted again when training has moved the hidden state out of their plane, "
            "and the slider starts again there. As the network learns, the paths "
            "organise by what each sequence must remember."
        ),
    }


def race_labels() -> dict[str, str]:
    """A race: its progress, one small loss chart per run, and the result grid."""
    return {
        **_common(),
        "progress_one": _race_progress(1),
        "progress_other": _race_progress(2),
        "seed": _("seed {seed}"),
        "grid_title": _("held-out loss (lower is better)"),
    }


def room_labels() -> dict[str, Any]:
    """The room: every run on the server in a leaderboard and overlaid curves."""
    return {
        **_common(),
        "columns": {
            "rank": "#",
            "name": _("Name"),
            "status": _("Status"),
            "task": _("Task"),
            "cell": _("Cell"),
            "activation": _("Activation"),
            "hidden_size": _("Hidden size"),
            "num_layers": _("Layers"),
            "seq_len": _("Sequence length"),
            "lr": _("Learning rate"),
            "step": _("Step"),
            "loss": _("Train loss"),
            "held_out_loss": _("Held-out loss"),
            "solved_at": _("Solved at step"),
        },
        "statuses": {
            "queued": _("waiting"),
            "running": _("training"),
            "completed": _("finished"),
            "diverged": _("diverged"),
            "stopped": _("stopped"),
            "pruned": _("pruned"),
            "interrupted": _("interrupted"),
            "failed": _("failed"),
        },
        "queued_at": _("waiting (#{position})"),
        "trial_of": _("trial {number} of {study}"),
        "anonymous": _("anonymous"),
        "empty": _("No runs yet. Runs started on any page of this server appear here."),
        "step_axis": _("step"),
        "loss_axis": _("loss"),
        "not_solved": "—",
    }


# The label of each control of the settings form (state.CONTROLS), by its name.
CONTROL_LABELS = {
    "preset": N_("Preset"),
    "task": N_("Task"),
    "word": N_("Word"),
    "cell": N_("Cell"),
    "activation": N_("Activation"),
    "hidden_size": N_("Hidden size"),
    "num_layers": N_("Layers"),
    "batch_size": N_("Batch size"),
    "seq_len": N_("Sequence length"),
    "lr": N_("Learning rate"),
    "optimizer": N_("Optimizer"),
    "steps": N_("Steps"),
    "clip": N_("Gradient clipping (0 = off)"),
    "init": N_("Initialisation"),
    "seed": N_("Seed"),
    "device": N_("Device"),
    "stop_when_solved": N_("Stop when solved"),
}
# A searched setting as the study view names it: as the settings form does.
SETTING_NAMES = {
    name: CONTROL_LABELS[name]
    for name in (
        "cell", "activation", "hidden_size", "num_layers", "batch_size", "seq_len", "lr",
        "optimizer", "clip", "init",
    )
}  # fmt: skip
TRIAL_STATES = {  # a trial's state (rnnlab.tune.study.STATES, and the run's while it trains)
    "complete": N_("complete"),
    "pruned": N_("pruned"),
    "failed": N_("failed"),
    "running": N_("training"),
    "queued": N_("waiting"),
    "waiting": N_("waiting"),
}


def objective_label(objective: str, *, steps: int, penalty: float) -> str:
    """A study's objective in words; for steps to solve, what an unsolved trial counts."""
    if objective == "loss":
        return _("final held-out loss (lower is better)")
    if objective == "metric":
        return _("final held-out metric of the task")
    return _(
        "steps to solve (lower is better; a trial that never solves counts {penalty} steps, "
        "{factor} × its steps)"
    ).format(penalty=f"{penalty * steps:g}", factor=f"{penalty:g}")


def study_labels() -> dict[str, Any]:
    """A study: counts, best so far, curves, parallel coordinates, slices, what matters."""
    return {
        **_common(),
        "settings": {name: _(label) for name, label in SETTING_NAMES.items()},
        "states": {state: _(label) for state, label in TRIAL_STATES.items()},
        "counts": _(
            "{drawn} finished ({complete} complete, {pruned} pruned) · {failed} failed · "
            "{running} training · {queued} waiting · {to_ask} still to ask"
        ),
        "best": _("Best so far: **{value}** (trial {number})"),
        "no_best": _("No trial has completed yet."),
        "waiting": _("The first trials are training; their curves appear here as they go."),
        "best_title": _("**Best so far**"),
        "finished_axis": _("finished trials"),
        "cpu_axis": _("CPU-seconds spent"),
        "objective_axis": _("objective"),
        "curves_title": _("**Every trial's held-out curve** (× where a pruned trial stopped)"),
        "step_axis": _("step"),
        "held_out_axis": _("held-out value"),
        "trial_trace": _("trial {number}"),
        "pruned_marker": _("pruned at step {step}"),
        "parallel_title": _("**Parallel coordinates** — one line per complete trial"),
        "show": _("Show"),
        "all_trials": _("all trials"),
        "best_k": _("best {k}"),
        "parallel_empty": _("Appears once complete trials differ in a searched setting."),
        "slices_title": _("**Slices** — the objective against each searched setting"),
        "importance_title": _("**What matters** — importance with a 5–95 % interval"),
        "importance_axis": _("share of the objective's variance explained"),
        "evaluator": _("evaluator: {name}, {trials} complete trials, {resamples} resamples"),
        "none_varies": _("No setting varies among the {n} finished trials."),
        "none_explains": _("No setting explains the objective yet; {more} more trials may tell."),
        "stable": _(
            "Stable ranking from {n} trials: {first} comes first in {share}% of resamples."
        ),
        "more_needed_one": _more_trials(1),
        "more_needed_other": _more_trials(2),
        "unavailable": _("This evaluator cannot run on this server: {reason}"),
        "no_importance": _("What matters appears once two trials have completed."),
        "table_title": _("**Trials**"),
        "columns": {
            "number": "#",
            "state": _("State"),
            "value": _("Objective"),
            "who": _("Asked by"),
            "settings": _("Settings"),
            "cpu_s": _("CPU-s"),
            "note": _("Note"),
        },
        "you": _("you"),
        "anonymous": _("anonymous"),
    }


def _more_trials(n: int) -> str:
    return ngettext(
        "{more} more trial for a stable ranking ({first} first so far).",
        "{more} more trials for a stable ranking ({first} first so far).",
        n,
    )
