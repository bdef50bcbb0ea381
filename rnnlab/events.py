"""The events train() yields: plain frozen dataclasses, free of PyTorch.

Everything that reads a run's stream without training it (the run store, the job
manager, the dashboard's server) imports them from here; rnnlab.train re-exports them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Event:
    """One item of a run's stream; `kind` names it in its dict."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Started(Event):
    kind = "started"
    config: dict[str, Any]
    device: str
    parameters: int
    input_shape: tuple[int, int, int]  # (batch, seq_len, input_dim)
    metric_name: str
    baseline: float
    baseline_label: str
    metric_baseline: float
    solved_rule: str


@dataclass(frozen=True)
class Step(Event):
    kind = "step"
    step: int
    loss: float
    grad_norm: float
    elapsed_s: float


@dataclass(frozen=True)
class Evaluation(Event):
    kind = "eval"
    step: int
    loss: float
    metric: float
    solved: bool
    elapsed_s: float


@dataclass(frozen=True)
class Finished(Event):
    kind = "finished"
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Weights(Event):
    """The trained network as the bytes of an rnnlab .pt file (see rnnlab.weights):
    rnnlab.load_model(event.data) gives the model back."""

    kind = "weights"
    step: int
    data: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The bytes' size, not the bytes: events' dicts are for JSON and for people."""
        return {"kind": self.kind, "step": self.step, "size_bytes": len(self.data)}


@dataclass(frozen=True)
class Snapshot(Event):
    """Gates, states and gradients through time on a fixed probe batch at `step`.

    Computed by rnnlab.probe.snapshot (which documents every field), with long runs and
    wide layers cut to the steps and units listed in `kept`; each heatmap is one byte
    per value (rnnlab.probe.heatmap reads it back). Gradients are computed less often
    than gates: the gradient fields and spectral_radius are those of training step
    `gradient_step`.
    """

    kind = "snapshot"
    step: int
    elapsed_s: float
    probe_loss: float | None  # the task's loss on the probe batch
    kept: dict[str, Any]  # cell, sequence, steps and units the heatmaps and curves keep
    layers: list[dict[str, Any]]  # per layer: gate/state name -> {lo, hi, bytes}, sequence 0
    gate_means: list[dict[str, float | None]]  # per layer: sigmoid gate -> mean
    state_norms: list[list[float | None]]  # per layer: mean ‖h_t‖ per kept step
    gradient_norms: list[list[float | None]]  # per layer: ‖∂L/∂h_t‖ per kept step
    gradient_contributions: list[list[float | None]]  # ‖step t's share of ∂L/∂W_hh‖
    saturation: list[dict[str, dict[str, Any]]]  # per layer and gate: left/right fractions
    spectral_radius: list[dict[str, float | None]]  # per layer: W_hh block -> radius
    predictions: dict[str, Any]  # top-k next symbols, or predicted vs true values
    gradient_step: int  # the training step the gradient fields are from
    gradient_history: list[list]  # [step, layer 1's gradient_norms] so far, thinned to 64
    # Which input steps the predictions use (None in snapshots recorded before it):
    #   {"step": S,              the training step it was computed at (a gradient_step)
    #    "seq_len": T,
    #    "steps": [t, ...],      the kept steps, as kept["steps"]
    #    "last": [[‖∂ŷ_{T−1}/∂x_t‖ at each of steps] per probe sequence, the first 4],
    #    "map_steps": [t′, ...] (≤ 16, first and last included) or None,
    #    "map": [[‖∂ŷ_{t′_i}/∂x_{t_j}‖ for j ≤ i] for each t′_i] or None,
    #    "directions": k, "captured": share of the head's ‖W‖²_F followed (1.0: exact),
    #    "marked": [[t, ...] per sequence of `last`] where the input marks the steps the
    #              answer depends on (adding: its two marked values), else None}
    # Raw Frobenius norms of the Jacobian of the model's output (logits or value), three
    # significant digits; `map`'s t_j are map_steps too, and it is None where the model
    # answers at the last step only (adding). A view divides each list, and each map
    # row, by its own largest value and draws log10 of that from INFLUENCE_FLOOR to 1:
    # see relative_influence. Computed with the gradients, at most as often.
    influence: dict[str, Any] | None = None
    # Where each layer's hidden state travels (None before it was recorded), per layer:
    #   {"step": S′,             the training step of the paths (with the gradients)
    #    "reference_step": S,    the snapshot whose PCA gave these axes
    #    "components": [[...H], [...H]], "mean": [...H],   the axes: 2 principal
    #                            components and the mean of h_t at reference_step
    #    "explained": [v1, v2],  share of this snapshot's variance of h_t along each axis
    #    "reference_explained": [v1, v2],  the same at reference_step
    #    "paths": [[[x, y] per kept step] per probe sequence, the first 4]}
    # paths = (h_t − mean) · componentsᵀ on the axes kept from reference_step, so that
    # pictures of one run compare; refitted when they explain less than half of what
    # they did at reference_step (rnnlab.trajectory). None for a layer whose states
    # are not finite.
    trajectory: list[dict[str, Any] | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Shallow: the fields are already plain values, and deep-copying them is slow."""
        return {"kind": self.kind, **{name: getattr(self, name) for name in _SNAPSHOT_FIELDS}}

    def to_json(self) -> bytes:
        """to_dict() as JSON, encoded once: the worker sends and the store keeps these."""
        cached = self.__dict__.get("_json")
        if cached is None:
            cached = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()
            object.__setattr__(self, "_json", cached)
        return cached


_SNAPSHOT_FIELDS = tuple(f.name for f in fields(Snapshot))

INFLUENCE_FLOOR = 1e-4  # influence views draw relative influence from here to 1, log scale


def relative_influence(values: list[float | None]) -> list[float | None]:
    """One list of a snapshot's influence (a `last` list or a `map` row) as a view draws
    it: each value over the list's largest, no less than INFLUENCE_FLOOR (None stays)."""
    peak = max((value for value in values if value is not None), default=0.0)
    if not peak > 0:
        return [None if value is None else INFLUENCE_FLOOR for value in values]
    return [None if value is None else max(value / peak, INFLUENCE_FLOOR) for value in values]


def layer_view(snapshot: dict[str, Any], layer: int) -> dict[str, Any]:
    """What a page's Inside and Train views draw of one layer, from a snapshot's dict."""
    kept = snapshot["kept"]
    return {
        "step": snapshot["step"],
        "steps": kept["steps"],
        "units": kept["units"],
        "hidden_size": kept["hidden_size"],
        "seq_len": kept["seq_len"],
        "layer": layer,
        "layers": len(snapshot["layers"]),
        "cell": kept["cell"],
        "gates": snapshot["layers"][layer],
        "gate_means": snapshot["gate_means"][layer],
        "saturation": snapshot["saturation"][layer],
        "spectral_radius": snapshot["spectral_radius"][layer],
        "state_norms": snapshot["state_norms"][layer],
        "gradient_step": snapshot["gradient_step"],
        "gradient_norms": snapshot["gradient_norms"],
        "gradient_contributions": snapshot["gradient_contributions"][layer],
        "predictions": snapshot["predictions"],
        "probe_loss": snapshot["probe_loss"],
    }


# Snapshots with influence, and with trajectories on the latest axes, whose pictures a run
# keeps for its live views (the latest, and thinned evenly back to the first).
MAX_INFLUENCE_HISTORY = 32
MAX_TRAJECTORY_HISTORY = 16


def thinned_append(history: list, entry: Any, limit: int) -> list:
    """history with entry appended, every other one dropped first when it holds `limit`
    (it still reaches back to the first), as a snapshot's gradient history."""
    kept = history[::2] if len(history) >= limit else list(history)
    return [*kept, entry]


def probe_symbols(snapshot: dict[str, Any]) -> list[str] | None:
    """The probe sequence's input symbols at the kept steps (a character task's), or None:
    the word or text a run learns from, so for its owner only where it is private."""
    predictions = snapshot.get("predictions") or {}
    return predictions.get("input") if predictions.get("kind") == "next_symbol" else None


def influence_view(
    snapshot: dict[str, Any], history: list[list] | None = None
) -> dict[str, Any] | None:
    """What the influence views draw, from a snapshot's dict: its `influence`, the probe's
    `symbols` (probe_symbols) and `history`: [training step, sequence 0's `last`] of the
    snapshots with influence so far, this one's last (alone if not given). None without
    one."""
    influence = snapshot.get("influence")
    if influence is None:
        return None
    if history is None:
        history = [[influence["step"], influence["last"][0]]]
    return {
        **influence,
        "marked": influence.get("marked"),
        "symbols": probe_symbols(snapshot),
        "history": history,
    }


def trajectory_point(entry: dict[str, Any]) -> dict[str, Any]:
    """One snapshot's path of one layer as a trajectory view's history keeps it."""
    return {
        "step": entry["step"],
        "reference_step": entry["reference_step"],
        "explained": entry["explained"],
        "paths": entry["paths"],
    }


def trajectory_view(
    snapshot: dict[str, Any], layer: int, snapshots: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """What the hidden-state path view draws of one layer, from a snapshot's dict: the
    axes' reference step and shares, the kept steps, and `snapshots`: the paths
    (trajectory_point) of the snapshots on these axes, this one's last (alone if not
    given). None where the layer has no trajectory."""
    entries = snapshot.get("trajectory") or []
    entry = entries[layer] if 0 <= layer < len(entries) else None
    if entry is None:
        return None
    return {
        "layer": layer,
        "layers": len(entries),
        "step": entry["step"],
        "reference_step": entry["reference_step"],
        "reference_explained": entry["reference_explained"],
        "steps": snapshot["kept"]["steps"],
        "snapshots": snapshots if snapshots is not None else [trajectory_point(entry)],
    }
