"""Look inside a recurrent network: gates, states and gradients through time.

`probe(model, x)` recomputes every layer's internals from the model's weights, one time
step at a time, with the same equations (and gate orders) as PyTorch's nn.RNN, nn.LSTM
and nn.GRU and the cell's own activation. The fused modules keep their gates to
themselves, so recomputing is the only way to see them; the tests hold the recomputed h
to the model's own output.

`gradients_through_time` differentiates the task's loss with respect to each layer's
hidden state at each step on that recomputed graph, `saturation` and `spectral_radius`
summarise gates and recurrent weights, and `snapshot` packs all of it, downsampled and
rounded, into the plain lists a `Snapshot` event carries to a browser.

Nothing here changes the model: weights are detached, `.grad` is never touched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .models import RecurrentNet
from .tasks import Task

# What probe() records for each layer and step, in this order.
STATE_NAMES = {
    "rnn": ("pre", "h"),
    "lstm": ("i", "f", "g", "o", "c", "h"),
    "gru": ("r", "z", "n", "h"),
}
# Gates squashed by a sigmoid: the ones whose saturation is measured.
SIGMOID_GATES = {"rnn": (), "lstm": ("i", "f", "o"), "gru": ("r", "z")}
# The H×H blocks of weight_hh from top to bottom, named as in PyTorch's documentation.
RECURRENT_BLOCKS = {
    "rnn": ("W_hh",),
    "lstm": ("W_hi", "W_hf", "W_hg", "W_ho"),
    "gru": ("W_hr", "W_hz", "W_hn"),
}
ACTIVATION_FUNCTIONS = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
}

PROBE_SEQUENCES = 8  # held-out sequences a snapshot looks at
MAX_UNITS = 64  # hidden units a snapshot keeps per layer
MAX_STEPS = 200  # time steps a snapshot keeps
TOP_K = 3  # most likely next symbols a snapshot lists per step
SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9  # Karpathy, Johnson & Fei-Fei (2015)
# Snapshots wait at least their own cost divided by this, so that however long the
# sequences, they take at most about this share of a run's wall time.
MAX_SNAPSHOT_SHARE = 0.08

Activation = Callable[[Tensor], Tensor]


def _rnn_step(xw: Tensor, gh: Tensor, prev: dict[str, Tensor], act: Activation) -> dict:
    pre = xw + gh  # a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    return {"pre": pre, "h": act(pre)}  # h_t = act(a_t)


def _lstm_step(xw: Tensor, gh: Tensor, prev: dict[str, Tensor], act: Activation) -> dict:
    i, f, g, o = (xw + gh).chunk(4, dim=-1)
    i, f, g, o = i.sigmoid(), f.sigmoid(), act(g), o.sigmoid()
    c = f * prev["c"] + i * g  # c_t = f⊙c_{t-1} + i⊙g
    h = o * act(c)  # h_t = o⊙act(c_t)
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}


def _gru_step(xw: Tensor, gh: Tensor, prev: dict[str, Tensor], act: Activation) -> dict:
    x_r, x_z, x_n = xw.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)  # r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z = torch.sigmoid(x_z + h_z)  # z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n = act(x_n + r * h_n)  # n_t = act(W_in x_t + b_in + r_t⊙(W_hn h_{t-1} + b_hn))
    h = (1 - z) * n + z * prev["h"]  # h_t = (1 − z_t)⊙n_t + z_t⊙h_{t−1}
    return {"r": r, "z": z, "n": n, "h": h}


CELL_STEPS = {"rnn": _rnn_step, "lstm": _lstm_step, "gru": _gru_step}


@dataclass(frozen=True)
class Probe:
    """A model's internals on one batch: `layers[k][name]` is (batch, seq_len, hidden).

    Names per cell: rnn pre, h; lstm i, f, g, o (after their non-linearities), c, h;
    gru r, z, n, h. The last layer's h is what the model's head reads.
    """

    cell: str
    activation: str
    layers: list[dict[str, Tensor]]


@dataclass(frozen=True)
class _Unrolled:
    """The recomputed forward pass, kept step by step so it can be differentiated."""

    steps: list[list[dict[str, Tensor]]]  # [layer][t] -> name -> (B, H)
    recurrent: list[list[Tensor]]  # [layer][t] -> W_hh h_{t-1} + b_hh: (B, G·H)

    def probe(self, cell: str, activation: str) -> Probe:
        layers = [
            {
                name: torch.stack([s[name] for s in steps], dim=1).detach()
                for name in STATE_NAMES[cell]
            }
            for steps in self.steps
        ]  # each (B, T, H)
        return Probe(cell, activation, layers)

    def last_hidden(self) -> Tensor:
        return torch.stack([s["h"] for s in self.steps[-1]], dim=1)  # (B, T, H)


def _unroll(model: RecurrentNet, x: Tensor, differentiable: bool) -> _Unrolled:
    """Run x through the model's recurrent layers again, one step at a time.

    Weights are detached; when `differentiable`, h_{-1} is a leaf that requires grad, so
    every later state is on an autograd graph that reaches no parameter.
    """
    rnn = model.rnn
    step, act = CELL_STEPS[model.cell], ACTIVATION_FUNCTIONS[model.activation]
    batch, hidden = x.shape[0], rnn.hidden_size
    layer_input = x  # (B, T, D)
    all_steps, all_recurrent = [], []
    for layer in range(rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = (
            getattr(rnn, f"{name}_l{layer}").detach()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        xw = F.linear(layer_input, w_ih, b_ih).unbind(1)  # T × (B, G·H)
        h0 = x.new_zeros(batch, hidden, requires_grad=differentiable)  # h_{-1}
        prev = {"h": h0, "c": x.new_zeros(batch, hidden)}  # c_{-1} (LSTM)
        steps, recurrent = [], []
        for xw_t in xw:
            gh = F.linear(prev["h"], w_hh, b_hh)  # (B, G·H)
            prev = step(xw_t, gh, prev, act)
            steps.append(prev)
            recurrent.append(gh)
        all_steps.append(steps)
        all_recurrent.append(recurrent)
        layer_input = torch.stack([s["h"] for s in steps], dim=1)  # (B, T, H)
    return _Unrolled(all_steps, all_recurrent)


def _model_input(model: RecurrentNet, x: Tensor) -> Tensor:
    weight = model.rnn.weight_ih_l0
    return x.to(device=weight.device, dtype=weight.dtype)


def probe(model: RecurrentNet, x: Tensor) -> Probe:
    """Gates and states of every layer and step of `model` on the batch x: (B, T, D)."""
    with torch.no_grad():
        unrolled = _unroll(model, _model_input(model, x), differentiable=False)
    return unrolled.probe(model.cell, model.activation)


def _head(model: RecurrentNet, h: Tensor) -> Tensor:
    """The model's output from its last layer's states, through detached head weights."""
    if not model.every_step:
        h = h[:, -1]  # (B, H)
    return F.linear(h, model.head.weight.detach(), model.head.bias.detach())


@dataclass(frozen=True)
class GradientsThroughTime:
    """How the loss on one batch depends on each layer's hidden state at each step.

    `hidden[k]` is ∂L/∂h_t of layer k as a total derivative: through the layer above at
    step t and through the layer's own step t + 1 alike. `contributions[k][t]` is the
    Frobenius norm of step t's term of ∂L/∂W_hh = Σ_t (∂L/∂(W_hh h_{t-1} + b_hh))ᵀ h_{t-1},
    the share of the recurrent weight update that step sends (zero at t = 0, where
    h_{-1} = 0).
    """

    loss: float
    output: Tensor  # the model's output on the batch
    hidden: list[Tensor]  # ∂L/∂h_t per layer: (B, T, H)
    recurrent: list[Tensor]  # ∂L/∂(W_hh h_{t-1} + b_hh) per layer: (B, T, G·H)
    norms: list[Tensor]  # ‖∂L/∂h_t‖ over batch and units, per layer: (T,)
    contributions: list[Tensor]  # ‖step t's term of ∂L/∂W_hh‖, per layer: (T,)
    probe: Probe  # the forward pass the gradients went through


def gradients_through_time(
    model: RecurrentNet, x: Tensor, y: Tensor, loss: Callable[[Tensor, Tensor], Tensor]
) -> GradientsThroughTime:
    """‖∂L/∂h_t‖ for every layer and step, with L = loss(model(x), y), e.g. task.loss."""
    x = _model_input(model, x)
    with torch.enable_grad():
        unrolled = _unroll(model, x, differentiable=True)
        output = _head(model, unrolled.last_hidden())
        value = loss(output, y.to(x.device))
        states = [s["h"] for steps in unrolled.steps for s in steps]
        recurrent = [gh for layer in unrolled.recurrent for gh in layer]
        grads = torch.autograd.grad(value, states + recurrent, materialize_grads=True)
    T = x.shape[1]
    per_layer = [grads[k : k + T] for k in range(0, len(grads), T)]
    layers = len(unrolled.steps)
    hidden = [torch.stack(g, dim=1) for g in per_layer[:layers]]  # each (B, T, H)
    recurrent_grads = [torch.stack(g, dim=1) for g in per_layer[layers:]]  # (B, T, G·H)
    result = unrolled.probe(model.cell, model.activation)
    return GradientsThroughTime(
        loss=value.item(),
        output=output.detach(),
        hidden=hidden,
        recurrent=recurrent_grads,
        norms=[torch.linalg.vector_norm(g, dim=(0, 2)) for g in hidden],
        contributions=[
            _outer_product_norms(d, _previous(layer["h"]))
            for d, layer in zip(recurrent_grads, result.layers, strict=True)
        ],
        probe=result,
    )


def _previous(states: Tensor) -> Tensor:
    """h_{t-1} for every t, zeros at t = 0: (B, T, H)."""
    return torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1)


def _outer_product_norms(a: Tensor, b: Tensor) -> Tensor:
    """‖Σ_batch a_t ⊗ b_t‖_F for every t, without building the (T, A, B) products.

    ‖Σ_n a_n b_nᵀ‖²_F = Σ_{n,m} (a_n·a_m)(b_n·b_m): two (T, N, N) Gram matrices.
    """
    a, b = a.transpose(0, 1), b.transpose(0, 1)  # (T, N, ·)
    squared = ((a @ a.transpose(1, 2)) * (b @ b.transpose(1, 2))).sum((1, 2))  # (T,)
    return squared.clamp_min(0).sqrt()


def spectral_radius(model: RecurrentNet) -> list[dict[str, float]]:
    """Largest |eigenvalue| of each layer's hidden-to-hidden weights.

    For LSTM and GRU, weight_hh stacks one H×H block per gate (W_hi, W_hf, W_hg, W_ho;
    W_hr, W_hz, W_hn) and the recurrence has no single square matrix, so each block gets
    its own radius; an RNN's one block is W_hh. NaN where the weights are not finite.
    """
    rnn, names = model.rnn, RECURRENT_BLOCKS[model.cell]
    radii = []
    for layer in range(rnn.num_layers):
        weight = getattr(rnn, f"weight_hh_l{layer}").detach().to("cpu", torch.float64)
        blocks = weight.reshape(len(names), rnn.hidden_size, rnn.hidden_size)  # (G, H, H)
        if torch.isfinite(blocks).all():
            values = torch.linalg.eigvals(blocks).abs().amax(-1).tolist()
        else:
            values = [math.nan] * len(names)
        radii.append(dict(zip(names, values, strict=True)))
    return radii


def saturation(
    result: Probe, low: float = SATURATION_LOW, high: float = SATURATION_HIGH
) -> list[dict[str, dict[str, Tensor]]]:
    """Per layer, sigmoid gate and unit: the fraction of steps below `low` and above `high`.

    The left and right saturation of Karpathy, Johnson & Fei-Fei (2015), counted over
    every sequence and step of the batch; each entry is {"left": (H,), "right": (H,)}.
    RNNs have no gates; the LSTM's g and the GRU's n are candidates, not gates.
    """
    return [
        {
            gate: {
                "left": (layer[gate] < low).float().mean((0, 1)),
                "right": (layer[gate] > high).float().mean((0, 1)),
            }
            for gate in SIGMOID_GATES[result.cell]
        }
        for layer in result.layers
    ]


def probe_batch(
    task: Task, size: int = PROBE_SEQUENCES, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """The first `size` held-out sequences: the same on every call, so pictures compare."""
    x, y = task.held_out()
    return x[:size].to(device), y[:size].to(device)


def _spread(n: int, cap: int) -> Tensor:
    """At most `cap` evenly spaced indices of range(n), first and last included."""
    if n <= cap:
        return torch.arange(n)
    return torch.linspace(0, n - 1, cap).round().long()


def _plain(tensor: Tensor, decimals: int = 3) -> Any:
    """Nested lists of floats rounded to `decimals`; NaN and ±inf become None."""
    values = tensor.detach().to("cpu", torch.float64).round(decimals=decimals)
    if torch.isfinite(values).all():
        return values.tolist()
    return _finite_or_none(values.tolist())


def _significant(tensor: Tensor, digits: int = 4) -> list[float | None]:
    """A 1-D tensor of values that may span many decades, to `digits` significant digits."""
    return [
        float(f"{value:.{digits}g}") if math.isfinite(value) else None
        for value in tensor.detach().to("cpu", torch.float64).tolist()
    ]


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value if math.isfinite(value) else None


def _labels(task: Task, size: int) -> list[str]:
    vocab = getattr(task, "vocab", None)
    return (
        list(vocab) if vocab is not None and len(vocab) == size else [str(i) for i in range(size)]
    )


def _predictions(
    model: RecurrentNet, task: Task, x: Tensor, y: Tensor, output: Tensor, steps: Tensor, k: int
) -> dict[str, Any]:
    """What the model answers on the probe batch, in the task's own terms.

    Classification at every step (hello, text, copy): input, target and the top-k next
    symbols with probabilities for sequence 0. A value at the last step (adding):
    predicted and true for every probe sequence. A value at every step (sine): input,
    predicted and true for sequence 0.
    """
    output, x, y = output.detach().cpu(), x.cpu(), y.cpu()
    if y.dtype in (torch.long, torch.int):
        input_labels, output_labels = _labels(task, x.shape[-1]), _labels(task, output.shape[-1])
        probabilities = output[0, steps].softmax(-1)  # (steps, classes)
        top = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)
        return {
            "kind": "next_symbol",
            "input": [input_labels[i] for i in x[0, steps].argmax(-1).tolist()],
            "target": [output_labels[i] for i in y[0, steps].tolist()],
            "top": [
                [[output_labels[i], round(p, 4)] for i, p in zip(idx, prob, strict=True)]
                for idx, prob in zip(top.indices.tolist(), top.values.tolist(), strict=True)
            ],
        }
    if not model.every_step:
        return {
            "kind": "last_value",
            "predicted": _plain(output[:, 0], 4),
            "target": _plain(y[:, 0], 4),
        }
    return {
        "kind": "series",
        "input": _plain(x[0, steps, 0], 4),
        "predicted": _plain(output[0, steps, 0], 4),
        "target": _plain(y[0, steps, 0], 4),
    }


def snapshot(
    model: RecurrentNet,
    task: Task,
    x: Tensor,
    y: Tensor,
    *,
    max_units: int = MAX_UNITS,
    max_steps: int = MAX_STEPS,
    top_k: int = TOP_K,
) -> dict[str, Any]:
    """Everything a Snapshot event carries, as JSON-ready lists; see train.Snapshot.

    Heatmaps are for sequence 0 of the probe batch, indexed [step][unit]; statistics
    (gate means, saturation means, state and gradient norms) use the whole batch and all
    units. Long sequences and wide layers are cut to `max_steps` and `max_units` evenly
    spaced indices, listed in "kept".
    """
    gradients = gradients_through_time(model, x, y, task.loss)
    layers = gradients.probe.layers
    batch, T, H = layers[0]["h"].shape
    steps, units = _spread(T, max_steps), _spread(H, max_units)
    steps_device = steps.to(layers[0]["h"].device)
    units_device = units.to(layers[0]["h"].device)

    def heatmap(states: Tensor) -> Any:
        return _plain(states[0].index_select(0, steps_device).index_select(1, units_device))

    gate_saturation = saturation(gradients.probe)
    return {
        "probe_loss": _finite_or_none(round(gradients.loss, 6)),
        "kept": {
            "sequence": 0,
            "sequences": batch,
            "seq_len": T,
            "hidden_size": H,
            "steps": steps.tolist(),
            "units": units.tolist(),
        },
        "layers": [{name: heatmap(states) for name, states in layer.items()} for layer in layers],
        "gate_means": [
            {gate: _finite_or_none(round(layer[gate].mean().item(), 4)) for gate in per_gate}
            for layer, per_gate in zip(layers, gate_saturation, strict=True)
        ],
        "state_norms": [
            _significant(torch.linalg.vector_norm(layer["h"], dim=-1).mean(0)[steps_device])
            for layer in layers
        ],
        "gradient_norms": [_significant(norms[steps_device]) for norms in gradients.norms],
        "gradient_contributions": [
            _significant(norms[steps_device]) for norms in gradients.contributions
        ],
        "saturation": [
            {
                gate: {
                    "left": _plain(fractions["left"][units_device]),
                    "right": _plain(fractions["right"][units_device]),
                    "left_mean": round(fractions["left"].mean().item(), 4),
                    "right_mean": round(fractions["right"].mean().item(), 4),
                }
                for gate, fractions in per_gate.items()
            }
            for per_gate in gate_saturation
        ],
        "spectral_radius": [
            {name: _finite_or_none(round(value, 4)) for name, value in radii.items()}
            for radii in spectral_radius(model)
        ],
        "predictions": _predictions(model, task, x, y, gradients.output, steps, top_k),
    }


class SnapshotSchedule:
    """When train() takes snapshots, and of what: one fixed probe batch, at most every
    `every_s` seconds and never so often that snapshots take more than about
    MAX_SNAPSHOT_SHARE of the run (long sequences make them slower). every_s = 0 asks
    for one after every step, whatever it costs.
    """

    def __init__(self, task: Task, device: torch.device | str, every_s: float):
        if not every_s >= 0:
            raise ValueError(f"snapshot_every_s must be at least 0 or None, got {every_s!r}")
        self.task, self.every_s = task, every_s
        self.x, self.y = probe_batch(task, device=device)
        self.last = time.perf_counter()
        self.cost = 0.0

    def due(self) -> bool:
        if self.every_s == 0:
            return True
        waited = time.perf_counter() - self.last
        return waited >= max(self.every_s, self.cost / MAX_SNAPSHOT_SHARE)

    def take(self, model: RecurrentNet) -> dict[str, Any]:
        """snapshot() of the model on the probe batch, timed for the next due()."""
        start = time.perf_counter()
        fields = snapshot(model, self.task, self.x, self.y)
        self.last = time.perf_counter()
        self.cost = self.last - start
        return fields
