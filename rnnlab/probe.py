"""Look inside a recurrent network: gates, states and gradients through time.

`probe(model, x)` recomputes every layer's internals from the model's weights, one time
step at a time, with the same equations (and gate orders) as PyTorch's nn.RNN, nn.LSTM
and nn.GRU and the cell's own activation. The fused modules keep their gates to
themselves, so recomputing is the only way to see them; the tests hold the recomputed h
to the model's own output.

`gradients_through_time` backpropagates the task's loss through those states to
each layer's hidden state at each step, `saturation` and `spectral_radius`
summarise gates and recurrent weights, and `snapshot` packs all of it, downsampled and
rounded, into the plain lists a `Snapshot` event carries to a browser.

Nothing here changes the model: weights are detached, `.grad` is never touched.
(`rnnlab.probe` the package attribute is the function; this module is
`sys.modules["rnnlab.probe"]`, or `from rnnlab.probe import ...`.)
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
MAX_SNAPSHOT_SHARE = 0.05

Activation = Callable[[Tensor], Tensor]


def _sigmoid_grad(y: Tensor) -> Tensor:
    return y * (1 - y)  # σ'(a) from y = σ(a)


# act'(a) expressed through the output y = act(a)
ACTIVATION_GRADIENTS = {
    "tanh": lambda y: 1 - y * y,
    "sigmoid": _sigmoid_grad,
    "relu": lambda y: (y > 0).to(y.dtype),
}


def _rnn_step(xw: Tensor, gh: Tensor, prev: dict[str, Tensor], act: Activation) -> dict:
    pre = xw + gh  # a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    return {"pre": pre, "h": act(pre)}  # h_t = act(a_t)


def _lstm_step(xw: Tensor, gh: Tensor, prev: dict[str, Tensor], act: Activation) -> dict:
    gates = xw + gh  # W_ih x_t + b_ih + W_hh h_{t-1} + b_hh: (B, 4H)
    i, f, _, o = gates.sigmoid().chunk(4, dim=-1)  # one sigmoid call; g's share unused
    g = act(gates.chunk(4, dim=-1)[2])
    c = torch.addcmul(i * g, f, prev["c"])  # c_t = f⊙c_{t-1} + i⊙g
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


def _weights(model: RecurrentNet, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """weight_ih, weight_hh, bias_ih, bias_hh of one layer, detached."""
    return tuple(
        getattr(model.rnn, f"{name}_l{layer}").detach()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def _model_input(model: RecurrentNet, x: Tensor) -> Tensor:
    weight = model.rnn.weight_ih_l0
    return x.to(device=weight.device, dtype=weight.dtype)


@torch.no_grad()
def probe(model: RecurrentNet, x: Tensor) -> Probe:
    """Gates and states of every layer and step of `model` on the batch x: (B, T, D)."""
    step, act = CELL_STEPS[model.cell], ACTIVATION_FUNCTIONS[model.activation]
    x = _model_input(model, x)
    batch, hidden = x.shape[0], model.rnn.hidden_size
    layers, layer_input = [], x  # (B, T, D)
    for layer in range(model.rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(model, layer)
        xw = F.linear(layer_input, w_ih, b_ih).unbind(1)  # T × (B, G·H)
        prev = {"h": x.new_zeros(batch, hidden), "c": x.new_zeros(batch, hidden)}  # t = -1
        steps = []
        for xw_t in xw:
            prev = step(xw_t, F.linear(prev["h"], w_hh, b_hh), prev, act)
            steps.append(prev)
        states = {
            name: torch.stack([s[name] for s in steps], dim=1)  # (B, T, H)
            for name in STATE_NAMES[model.cell]
        }
        layers.append(states)
        layer_input = states["h"]
    return Probe(model.cell, model.activation, layers)


def _head(model: RecurrentNet, h: Tensor) -> Tensor:
    """The model's output from its last layer's states, through detached head weights."""
    if not model.every_step:
        h = h[:, -1]  # (B, H)
    return F.linear(h, model.head.weight.detach(), model.head.bias.detach())


def _rnn_backward(
    states: dict[str, Tensor], w_hh: Tensor, b_hh: Tensor, external: Tensor, activation: str
) -> tuple[Tensor, Tensor, Tensor]:
    """h_t = act(a_t), a_t = xw_t + gh_t: ∂L/∂a_t = ∂L/∂h_t ⊙ act'(a_t)."""
    local = ACTIVATION_GRADIENTS[activation](states["h"]).unbind(1)  # ∂h_t/∂a_t: T × (B, H)
    dh, da = [], []
    for t, external_t in reversed(list(enumerate(external.unbind(1)))):
        dh_t = torch.addmm(external_t, da[-1], w_hh) if da else external_t  # + ∂L/∂a_{t+1} W_hh
        dh.append(dh_t)
        da.append(dh_t * local[t])
    dh, da = torch.stack(dh[::-1], dim=1), torch.stack(da[::-1], dim=1)
    return dh, da, da


def _lstm_backward(
    states: dict[str, Tensor], w_hh: Tensor, b_hh: Tensor, external: Tensor, activation: str
) -> tuple[Tensor, Tensor, Tensor]:
    """h_t = o⊙act(c_t), c_t = f⊙c_{t-1} + i⊙g: ∂L/∂c_t also flows from c_{t+1}."""
    act, act_grad = ACTIVATION_FUNCTIONS[activation], ACTIVATION_GRADIENTS[activation]
    i, f, g, o, c = (states[name] for name in ("i", "f", "g", "o", "c"))
    act_c = act(c)
    dh_dc = o * act_grad(act_c)  # ∂h_t/∂c_t: (B, T, H)
    # ∂c_t/∂(i, f, g pre-activations) and ∂h_t/∂(o pre-activation): (B, T, 4H)
    local = torch.cat(
        [
            g * _sigmoid_grad(i),
            _previous(c) * _sigmoid_grad(f),
            i * act_grad(g),
            act_c * _sigmoid_grad(o),
        ],
        dim=-1,
    )
    dh_dc, local, f = dh_dc.unbind(1), local.unbind(1), f.unbind(1)  # per-step views
    dh, da, dc_t = [], [], None
    for t, external_t in reversed(list(enumerate(external.unbind(1)))):
        dh_t = torch.addmm(external_t, da[-1], w_hh) if da else external_t  # + ∂L/∂a_{t+1} W_hh
        dc_next, dc_t = dc_t, dh_t * dh_dc[t]  # ∂L/∂c_t = ∂L/∂h_t ⊙ ∂h_t/∂c_t
        if dc_next is not None:
            dc_t.addcmul_(dc_next, f[t + 1])  # + ∂L/∂c_{t+1} ⊙ f_{t+1}
        dh.append(dh_t)
        da.append(torch.cat([dc_t, dc_t, dc_t, dh_t], dim=-1) * local[t])
    dh, da = torch.stack(dh[::-1], dim=1), torch.stack(da[::-1], dim=1)
    return dh, da, da


def _gru_backward(
    states: dict[str, Tensor], w_hh: Tensor, b_hh: Tensor, external: Tensor, activation: str
) -> tuple[Tensor, Tensor, Tensor]:
    """h_t = (1 − z)⊙n + z⊙h_{t−1}: ∂L/∂h_{t-1} has a direct path besides W_hh.

    Every pre-activation gradient is ∂L/∂h_t times a factor known from the forward pass;
    the n block of W_hh h_{t-1} + b_hh enters multiplied by r.
    """
    act_grad = ACTIVATION_GRADIENTS[activation]
    r, z, n, h = (states[name] for name in ("r", "z", "n", "h"))
    H = h.shape[-1]
    h_prev = _previous(h)
    gh_n = F.linear(h_prev, w_hh[2 * H :], b_hh[2 * H :])  # W_hn h_{t-1} + b_hn: (B, T, H)
    dh_dn = (1 - z) * act_grad(n)  # ∂h_t/∂(n pre-activation)
    dh_dz = (h_prev - n) * _sigmoid_grad(z)  # ∂h_t/∂(z pre-activation)
    dh_dr = dh_dn * gh_n * _sigmoid_grad(r)  # ∂h_t/∂(r pre-activation)
    to_gh = torch.stack([dh_dr, dh_dz, dh_dn * r], dim=2)  # ∂h_t/∂gh_t: (B, T, 3, H)
    to_xw = torch.stack([dh_dr, dh_dz, dh_dn], dim=2)  # ∂h_t/∂xw_t: (B, T, 3, H)
    z_steps, to_gh_steps = z.unbind(1), to_gh.unbind(1)  # per-step views
    dh, dgh = [], []
    for t, dh_t in reversed(list(enumerate(external.unbind(1)))):
        if dgh:  # + ∂L/∂gh_{t+1} W_hh + ∂L/∂h_{t+1} ⊙ z_{t+1}
            dh_t = torch.addmm(dh_t, dgh[-1], w_hh).addcmul_(dh[-1], z_steps[t + 1])
        dh.append(dh_t)
        dgh.append((dh_t[:, None] * to_gh_steps[t]).flatten(1))  # (B, 3H)
    dh, dgh = torch.stack(dh[::-1], dim=1), torch.stack(dgh[::-1], dim=1)
    return dh, dgh, (dh[:, :, None] * to_xw).flatten(2)


CELL_BACKWARDS = {"rnn": _rnn_backward, "lstm": _lstm_backward, "gru": _gru_backward}


@dataclass(frozen=True)
class GradientsThroughTime:
    """How the loss on one batch depends on each layer's hidden state at each step.

    `hidden[k]` is ∂L/∂h_t of layer k as a total derivative: through the layer above at
    step t and through the layer's own step t + 1 alike. The per-step contributions:
    `contributions[k][t]` is the Frobenius norm of step t's term of
    ∂L/∂W_hh = Σ_t (∂L/∂(W_hh h_{t-1} + b_hh))ᵀ h_{t-1}, the share of the recurrent
    weight update that step sends (zero at t = 0, where h_{-1} = 0).
    """

    loss: float
    output: Tensor  # the model's output on the batch
    hidden: list[Tensor]  # ∂L/∂h_t per layer: (B, T, H)
    recurrent: list[Tensor]  # ∂L/∂(W_hh h_{t-1} + b_hh) per layer: (B, T, G·H)
    inputs: Tensor  # ∂L/∂x_t: (B, T, input_dim)
    norms: list[Tensor]  # ‖∂L/∂h_t‖ over batch and units, per layer: (T,)
    contributions: list[Tensor]  # ‖step t's term of ∂L/∂W_hh‖, per layer: (T,)
    probe: Probe  # the forward pass the gradients went through


def gradients_through_time(
    model: RecurrentNet, x: Tensor, y: Tensor, loss: Callable[[Tensor, Tensor], Tensor]
) -> GradientsThroughTime:
    """∂L/∂h_t for every layer and step, with L = loss(model(x), y), e.g. task.loss.

    Backpropagation through time written out per cell on the probe's recomputed
    states (autograd only for the head and the loss): a per-step autograd graph costs
    several times more, and snapshots run while training.
    """
    x = _model_input(model, x)
    result = probe(model, x)
    h_last = result.layers[-1]["h"].detach().requires_grad_()
    with torch.enable_grad():
        output = _head(model, h_last)
        value = loss(output, y.to(x.device))
        (external,) = torch.autograd.grad(value, h_last)  # through the head only
    backward = CELL_BACKWARDS[model.cell]
    hidden, recurrent = [], []
    with torch.no_grad():
        for layer in reversed(range(len(result.layers))):
            w_ih, w_hh, _, b_hh = _weights(model, layer)
            states = result.layers[layer]
            dh, dgh, dxw = backward(states, w_hh, b_hh, external, model.activation)
            hidden.insert(0, dh)
            recurrent.insert(0, dgh)
            external = dxw @ w_ih  # ∂L/∂(this layer's input at t): (B, T, D)
        contributions = [
            _outer_product_norms(d, _previous(layer["h"]))
            for d, layer in zip(recurrent, result.layers, strict=True)
        ]
    return GradientsThroughTime(
        loss=value.item(),
        output=output.detach(),
        hidden=hidden,
        recurrent=recurrent,
        inputs=external,
        norms=[torch.linalg.vector_norm(g, dim=(0, 2)) for g in hidden],
        contributions=contributions,
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
        weight = getattr(rnn, f"weight_hh_l{layer}").detach().cpu().double()
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
    values = tensor.detach().cpu().double().round(decimals=decimals)
    if torch.isfinite(values).all():
        return values.tolist()
    return _finite_or_none(values.tolist())


def _significant(tensor: Tensor, digits: int = 4) -> list[float | None]:
    """A 1-D tensor of values that may span many decades, to `digits` significant digits."""
    return [
        float(f"{value:.{digits}g}") if math.isfinite(value) else None
        for value in tensor.detach().cpu().double().tolist()
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
    MAX_SNAPSHOT_SHARE of the run's own computing time (long sequences make them
    slower). every_s = 0 asks for one after every step, whatever it costs.

    `busy` tells the seconds the run has spent computing so far (default: the wall
    clock). A worker that interleaves many runs gives each its own, so that thirty runs
    sharing a core do not each take 5 % of the core for snapshots.
    """

    def __init__(
        self,
        task: Task,
        device: torch.device | str,
        every_s: float,
        *,
        busy: Callable[[], float] = time.perf_counter,
    ):
        if not every_s >= 0:
            raise ValueError(f"snapshot_every_s must be at least 0 or None, got {every_s!r}")
        self.task, self.every_s, self.busy = task, every_s, busy
        self.x, self.y = probe_batch(task, device=device)
        self.last = time.perf_counter()
        self.last_busy = busy()
        self.cost = 0.0

    def due(self) -> bool:
        if self.every_s == 0:
            return True
        waited = time.perf_counter() - self.last
        worked = self.busy() - self.last_busy
        return waited >= self.every_s and worked >= self.cost / MAX_SNAPSHOT_SHARE

    def take(self, model: RecurrentNet) -> dict[str, Any]:
        """snapshot() of the model on the probe batch, timed for the next due()."""
        start = self.busy()
        fields = snapshot(model, self.task, self.x, self.y)
        self.last, self.last_busy = time.perf_counter(), self.busy()
        self.cost = self.last_busy - start
        return fields
