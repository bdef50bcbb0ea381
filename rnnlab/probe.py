"""Look inside a recurrent network: gates, states and gradients through time.

`probe(model, x)` runs every layer again from the model's weights with the training
path's own time loop (`rnnlab.steps`, PyTorch's equations and gate orders with the
cell's own activation), keeping every gate at every step. The fused modules keep their
gates to themselves, so running the layers again is the only way to see them; the tests
hold the probe's h to the model's own output.

`gradients_through_time` backpropagates the task's loss through those states, with the
same cells' backward pass, to each layer's hidden state at each step; `saturation` and
`spectral_radius` summarise gates and recurrent weights; `input_influence` is how much
each input step moves the predictions, ‖∂ŷ_{t′}/∂x_t‖, by the same backward pass on the
same forward pass; `snapshot` packs all of it, with each layer's PCA trajectory
(`rnnlab.trajectory`), cut to 100 steps and 32 units with heatmaps of one byte per
value (`heatmap` reads one back), into what a `Snapshot` event carries to a browser;
`layer_view` is one layer's share of it, as a page's gate pictures draw it.

Nothing here changes the model: weights are detached, `.grad` is never touched.
(`rnnlab.probe` the package attribute is the function; this module is
`sys.modules["rnnlab.probe"]`, or `from rnnlab.probe import ...`.)
"""

from __future__ import annotations

import base64
import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import CELLS
from .models import RecurrentNet, is_fused
from .steps import STEPS, Steps, input_projection, previous
from .tasks import Task
from .trajectory import trajectory
from .values import finite_or_none

PROBE_SEQUENCES = 8  # held-out sequences a snapshot looks at
MAX_UNITS = 32  # hidden units a snapshot's heatmaps and per-unit figures keep per layer
MAX_STEPS = 100  # time steps a snapshot's heatmaps and curves keep
TOP_K = 3  # most likely next symbols a snapshot lists per step
SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9  # Karpathy, Johnson & Fei-Fei (2015)
# Snapshots wait at least their own cost divided by this, so that however long the
# sequences, they take at most about this share of a run's wall time.
MAX_SNAPSHOT_SHARE = 0.045
# The part of it for gradients through time, which snapshots compute only every
# GRADIENT_EVERY_S at most, and how many of them a snapshot's history keeps.
GRADIENT_SHARE = 0.005
GRADIENT_EVERY_S = 5.0
MAX_GRADIENT_HISTORY = 64
COST_SAMPLES = 3  # a snapshot's cost is the least of this many of the latest
# Influence of the inputs on the predictions (input_influence): the probe sequences whose
# last prediction it follows, the output steps t′ of sequence 0 its map keeps, and the
# head's strongest output directions it follows (exact up to this many outputs).
INFLUENCE_SEQUENCES = 4
INFLUENCE_MAP_STEPS = 16
INFLUENCE_DIRECTIONS = 4
# Snapshots compute it with their gradients, but no more often than keeps its own cost
# within this share of what the snapshots cost in all.
INFLUENCE_SHARE = 0.1


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
def _scan(model: RecurrentNet, x: Tensor) -> list[Steps]:
    """Every layer of `model` run over the batch x: (B, T, D), gates kept."""
    layer_input = _model_input(model, x).transpose(0, 1)  # (T, B, D)
    layers = []
    for layer in range(model.rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = _weights(model, layer)
        xw = input_projection(layer_input, w_ih, b_ih)  # (T, B, G·H)
        layers.append(STEPS[model.cell].scan(model.activation, xw, w_hh, b_hh))
        layer_input = layers[-1].hs_all  # (T, B, H)
    return layers


def _probe_of(model: RecurrentNet, layers: list[Steps]) -> Probe:
    """The scanned layers' states, batch first as Probe keeps them."""
    states = [
        {name: values.transpose(0, 1) for name, values in steps.states().items()}  # (B, T, H)
        for steps in layers
    ]
    return Probe(model.cell, model.activation, states)


def probe(model: RecurrentNet, x: Tensor) -> Probe:
    """Gates and states of every layer and step of `model` on the batch x: (B, T, D)."""
    return _probe_of(model, _scan(model, x))


@torch.no_grad()
def _probe_from_fused_lstm(model: RecurrentNet, x: Tensor) -> Probe:
    """probe() of a tanh LSTM in a few batched products instead of the step loop.

    PyTorch's fused kernel gives every h_t; with h_{t-1} known, every step's gates are one
    matrix product, and only c_t = f⊙c_{t-1} + i⊙g needs a (cheap, elementwise) loop.
    Equal to probe() to float rounding; about half its cost for a snapshot's probe batch.
    """
    layer_input = _model_input(model, x).transpose(0, 1)  # (T, B, D)
    T, B = layer_input.shape[:2]
    H = model.rnn.hidden_size
    zeros = layer_input.new_zeros(1, B, H)
    layers = []
    for layer in range(model.rnn.num_layers):
        weights = _weights(model, layer)
        h, _, _ = torch.lstm(
            layer_input, (zeros, zeros), weights, True, 1, 0.0, False, False, False
        )
        w_ih, w_hh, b_ih, b_hh = weights
        gates = input_projection(layer_input, w_ih, b_ih)  # (T, B, 4H)
        gates.view(T * B, 4 * H).addmm_(previous(h).view(T * B, H), w_hh.t()).add_(b_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        gates[..., : 2 * H].sigmoid_()  # i_t, f_t
        g.tanh_()
        o.sigmoid_()
        c = torch.mul(i, g)  # i⊙g: (T, B, H), then c_t = f⊙c_{t-1} + i⊙g
        for t in range(1, T):
            c[t].addcmul_(f[t], c[t - 1])
        states = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}
        layers.append({name: values.transpose(0, 1) for name, values in states.items()})
        layer_input = h
    return Probe(model.cell, model.activation, layers)


def _head(model: RecurrentNet, h: Tensor) -> Tensor:
    """The model's output from its last layer's states, through detached head weights."""
    if not model.every_step:
        h = h[:, -1]  # (B, H)
    return F.linear(h, model.head.weight.detach(), model.head.bias.detach())


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

    Backpropagation through time by the cells' own backward pass on the probe's states
    (autograd only for the head and the loss): a per-step autograd graph costs several
    times more, and snapshots run while training.
    """
    return _through_time(model, _model_input(model, x), y, loss)[0]


def _through_time(
    model: RecurrentNet, x: Tensor, y: Tensor, loss: Callable[[Tensor, Tensor], Tensor]
) -> tuple[GradientsThroughTime, list[Steps]]:
    """gradients_through_time(), and the scanned layers it went through (input_influence
    runs its backward passes on the same forward pass)."""
    layers = _scan(model, x)
    h_last = layers[-1].hs_all.transpose(0, 1).detach().requires_grad_()  # (B, T, H)
    with torch.enable_grad():
        output = _head(model, h_last)
        value = loss(output, y.to(x.device))
        (from_head,) = torch.autograd.grad(value, h_last)  # through the head only
    outside = from_head.transpose(0, 1)  # ∂L/∂h_t from outside the last layer: (T, B, H)
    hidden, recurrent, contributions = [], [], []
    with torch.no_grad():
        for layer in reversed(range(len(layers))):
            steps, w_ih = layers[layer], _weights(model, layer)[0]
            hidden.insert(0, torch.stack(steps.backward(outside), dim=1))  # (B, T, H)
            recurrent.insert(0, steps.dgh_all.transpose(0, 1))  # (B, T, G·H)
            contributions.insert(0, _outer_product_norms(steps.dgh_all, previous(steps.hs_all)))
            outside = steps.dxw_all @ w_ih  # ∂L/∂(this layer's input at t): (T, B, D)
    return GradientsThroughTime(
        loss=value.item(),
        output=output.detach(),
        hidden=hidden,
        recurrent=recurrent,
        inputs=outside.transpose(0, 1),
        norms=[torch.linalg.vector_norm(g, dim=(0, 2)) for g in hidden],
        contributions=contributions,
        probe=_probe_of(model, layers),
    ), layers


@dataclass(frozen=True)
class Influence:
    """How much each input step moves the model's predictions: Jacobian norms
    ‖∂ŷ_{t′}/∂x_t‖ (Frobenius, over every output and input component), ŷ the model's
    output (logits for a classification task, the value for a regression task).

    `last[b, t]` is ‖∂ŷ_{T−1}/∂x_t‖ for probe sequence b (the prediction at the last
    step; for adding the only one). `map[i, t]` is ‖∂ŷ_{t′}/∂x_t‖ of sequence 0 for the
    output steps t′ = map_steps[i], zero for t > t′ (x_t cannot move an earlier output);
    None where the model predicts at the last step only. The norms follow the output
    along the head's `directions` strongest directions (its right singular vectors
    scaled by their singular values): exact when the head has no more outputs than
    that (adding, sine, hello up to four letters), otherwise the part of the Jacobian in
    those directions, which carry `captured` of the head's ‖W‖²_F (1.0: exact).
    """

    last: Tensor  # (S, T)
    map: Tensor | None  # (M, T)
    map_steps: Tensor  # (M,), empty without a map
    directions: int
    captured: float


def _head_directions(model: RecurrentNet, count: int) -> tuple[Tensor, float]:
    """The head's `count` strongest directions s_j v_jᵀ: (k, H), and the share of its
    ‖W‖²_F they carry. For ŷ = W h + b, ‖W J‖_F² = Σ_j ‖s_j v_jᵀ J‖² over all j."""
    weight = model.head.weight.detach()
    _, values, vectors = torch.linalg.svd(weight.double().cpu(), full_matrices=False)
    total = values.square().sum().item()
    k = max(1, min(count, int((values > values[0] * 1e-12).sum()) if total > 0 else 1))
    captured = values[:k].square().sum().item() / total if total > 0 else 1.0
    directions = values[:k, None] * vectors[:k]  # (k, H)
    return directions.to(device=weight.device, dtype=weight.dtype), captured


def input_influence(
    model: RecurrentNet,
    x: Tensor,
    *,
    sequences: int = INFLUENCE_SEQUENCES,
    map_steps: int = INFLUENCE_MAP_STEPS,
    directions: int = INFLUENCE_DIRECTIONS,
    layers: list[Steps] | None = None,
) -> Influence:
    """‖∂ŷ_{t′}/∂x_t‖ of `model` on the batch x: (B, T, D); see Influence.

    One backward pass through every layer by the cells' own backward (rnnlab.steps) on
    the probe's forward pass (`layers`, as `_through_time` leaves them; scanned here if
    not given), with one row per (sequence, output step, head direction): the rows are
    the forward pass's buffers picked by sequence, and each is seeded at its output
    step with its direction.
    """
    x = _model_input(model, x)
    if layers is None:
        layers = _scan(model, x)
    T, B, H = layers[-1].hs_all.shape
    seeds, captured = _head_directions(model, directions)  # (k, H)
    k, S = seeds.shape[0], min(sequences, B)
    outputs = _spread(T, map_steps) if model.every_step else torch.empty(0, dtype=torch.long)
    M = len(outputs)
    # Rows: (sequence b < S, step T - 1, direction j), then (sequence 0, step t′, j).
    sequence = torch.cat(
        [torch.arange(S).repeat_interleave(k), torch.zeros(M * k, dtype=torch.long)]
    )
    step = torch.cat([torch.full((S * k,), T - 1), outputs.repeat_interleave(k)])
    rows = len(sequence)
    device = seeds.device
    outside = seeds.new_zeros(T, rows, H)  # ∂(d_jᵀ h_{t′})/∂h_t from outside the last layer
    outside[step.to(device), torch.arange(rows, device=device)] = seeds.repeat(S + M, 1)
    picked = sequence.to(device)
    with torch.no_grad():
        for layer in reversed(range(len(layers))):
            steps, w_ih = layers[layer], _weights(model, layer)[0]
            buffers = (buffer.index_select(1, picked) for buffer in steps.buffers())
            expanded = STEPS[model.cell](model.activation, steps.w_hh, *buffers)
            expanded.backward(outside)
            outside = expanded.dxw_all @ w_ih  # ∂/∂(this layer's input at t): (T, rows, D)
    squares = outside.square().sum(-1).T.reshape(S + M, k, T).sum(1)  # (S + M, T)
    norms = squares.sqrt()
    return Influence(
        last=norms[:S],
        map=norms[S:] if model.every_step else None,
        map_steps=outputs,
        directions=k,
        captured=captured,
    )


def _outer_product_norms(a: Tensor, b: Tensor) -> Tensor:
    """‖Σ_batch a_t ⊗ b_t‖_F for every t, a: (T, N, A) and b: (T, N, B), without
    building the (T, A, B) products.

    ‖Σ_n a_n b_nᵀ‖²_F = Σ_{n,m} (a_n·a_m)(b_n·b_m): two (T, N, N) Gram matrices.
    """
    squared = ((a @ a.transpose(1, 2)) * (b @ b.transpose(1, 2))).sum((1, 2))  # (T,)
    return squared.clamp_min(0).sqrt()


def spectral_radius(model: RecurrentNet) -> list[dict[str, float]]:
    """Largest |eigenvalue| of each layer's hidden-to-hidden weights.

    For LSTM and GRU, weight_hh stacks one H×H block per gate (W_hi, W_hf, W_hg, W_ho;
    W_hr, W_hz, W_hn) and the recurrence has no single square matrix, so each block gets
    its own radius; an RNN's one block is W_hh. NaN where the weights are not finite.
    """
    rnn, names = model.rnn, CELLS[model.cell].blocks
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
    gates = CELLS[result.cell].sigmoid
    fractions = []
    for layer in result.layers:
        if not gates:
            fractions.append({})
            continue
        values = torch.stack([layer[gate] for gate in gates])  # (gates, B, T, H)
        values = values.view(len(gates), -1, values.shape[-1])  # (gates, B·T, H)
        left = (values < low).sum(1) / values.shape[1]  # (gates, H)
        right = (values > high).sum(1) / values.shape[1]
        fractions.append(
            {gate: {"left": left[k], "right": right[k]} for k, gate in enumerate(gates)}
        )
    return fractions


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
    return finite_or_none(values.tolist())


def _significant(tensor: Tensor, digits: int = 4) -> list[float | None]:
    """A 1-D tensor of values that may span many decades, to `digits` significant digits."""
    return [
        float(f"{value:.{digits}g}") if math.isfinite(value) else None
        for value in tensor.detach().cpu().double().tolist()
    ]


def _quantised(heatmaps: dict[str, Tensor], sigmoid: tuple[str, ...]) -> dict[str, Any]:
    """(steps, units) heatmaps as one byte per value over [lo, hi], laid out (units,
    steps): 0..1 for a sigmoid gate, ±max|v| (of the finite values) otherwise; NaN reads
    as lo. All of a layer's at once: a handful of tensor operations, not one per name."""
    names = list(heatmaps)
    values = torch.stack([heatmaps[name] for name in names]).detach().float().cpu()  # (N, S, U)
    finite = torch.isfinite(values)
    reach = torch.where(finite, values.abs(), 0.0).amax((1, 2))  # (N,)
    reach = torch.where(reach > 0, reach, 1.0)
    bounded = torch.tensor([name in sigmoid for name in names])
    lo = torch.where(bounded, 0.0, -reach)
    hi = torch.where(bounded, 1.0, reach)
    values = torch.where(values.isnan(), lo[:, None, None], values)
    scaled = ((values - lo[:, None, None]) * (255 / (hi - lo))[:, None, None]).clamp_(0, 255)
    quantised = scaled.round_().to(torch.uint8).transpose(1, 2).contiguous()  # (N, U, S)
    raw = quantised.numpy()
    return {
        name: {"lo": lo[k].item(), "hi": hi[k].item(), "bytes": base64.b64encode(raw[k]).decode()}
        for k, name in enumerate(names)
    }


def heatmap(entry: dict[str, Any], kept: dict[str, Any]) -> Tensor:
    """A snapshot's quantised heatmap back as floats: (kept steps, kept units).

    Within (hi - lo) / 510 of the probe's values; the browser decodes the same way.
    """
    raw = torch.frombuffer(bytearray(base64.b64decode(entry["bytes"])), dtype=torch.uint8)
    levels = raw.reshape(len(kept["units"]), len(kept["steps"])).T.double()  # (steps, units)
    return (entry["lo"] + levels * (entry["hi"] - entry["lo"]) / 255).float()


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
    gradients: bool = True,
    influence: bool = True,
    trajectories: bool = True,
    reference: list[dict[str, Any] | None] | None = None,
    step: int = 0,
    max_units: int = MAX_UNITS,
    max_steps: int = MAX_STEPS,
    top_k: int = TOP_K,
) -> dict[str, Any]:
    """A Snapshot event's fields but its step, time and gradient history; see
    train.Snapshot. The gradient fields and the spectral radii (eigenvalues cost as much
    as the gates) only `gradients`.

    Heatmaps are for sequence 0 of the probe batch, one byte per value (`_quantised`,
    read back with `heatmap`) at `max_steps` and `max_units` evenly spaced steps and
    units, listed in "kept"; statistics (gate means, saturation, state and gradient
    norms) use the whole batch, every step and unit, and are reported at those.

    With the gradients, unless not `influence`, the `influence` of each input step on
    the predictions (input_influence, see _influence_fields); always the `trajectory`
    of each layer's hidden state on the `reference` axes of the previous snapshot
    (rnnlab.trajectory), unless not `trajectories`. `step` is the training step, which
    both name.
    """
    scanned = None
    if gradients:
        through_time, scanned = _through_time(model, _model_input(model, x), y, task.loss)
        result, output, loss = through_time.probe, through_time.output, through_time.loss
    else:
        fused = model.cell == "lstm" and is_fused(model.cell, model.activation)
        result = _probe_from_fused_lstm(model, x) if fused else probe(model, x)
        output = _head(model, result.layers[-1]["h"])
        loss = task.loss(output, y.to(output.device)).item()
    layers, spec = result.layers, CELLS[model.cell]
    batch, T, H = layers[0]["h"].shape
    steps, units = _spread(T, max_steps), _spread(H, max_units)
    steps_device, units_device = steps.to(output.device), units.to(output.device)
    gate_saturation = saturation(result)
    fields = {
        "probe_loss": finite_or_none(round(loss, 6)),
        "kept": {
            "cell": model.cell,
            "sequence": 0,
            "sequences": batch,
            "seq_len": T,
            "hidden_size": H,
            "steps": steps.tolist(),
            "units": units.tolist(),
        },
        "layers": [
            _quantised(
                {
                    name: states[0].index_select(0, steps_device).index_select(1, units_device)
                    for name, states in layer.items()
                },
                spec.sigmoid,
            )
            for layer in layers
        ],
        "gate_means": [
            {gate: finite_or_none(round(layer[gate].mean().item(), 4)) for gate in per_gate}
            for layer, per_gate in zip(layers, gate_saturation, strict=True)
        ],
        "state_norms": [
            _significant(torch.linalg.vector_norm(layer["h"], dim=-1).mean(0)[steps_device])
            for layer in layers
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
        "predictions": _predictions(model, task, x, y, output, steps, top_k),
    }
    if gradients:
        fields["spectral_radius"] = [
            {name: finite_or_none(round(value, 4)) for name, value in radii.items()}
            for radii in spectral_radius(model)
        ]
        fields["gradient_norms"] = [
            _significant(norms[steps_device]) for norms in through_time.norms
        ]
        fields["gradient_contributions"] = [
            _significant(norms[steps_device]) for norms in through_time.contributions
        ]
        if influence:
            found = input_influence(model, x, layers=scanned)
            fields["influence"] = {
                **_influence_fields(found, step, steps),
                "marked": task.marked_steps(x[: found.last.shape[0]]),
            }
    if trajectories:
        fields["trajectory"] = trajectory(
            [layer["h"] for layer in layers], reference, step, steps_device
        )
    return fields


def _influence_fields(result: Influence, step: int, steps: Tensor) -> dict[str, Any]:
    """A snapshot's `influence` (documented in rnnlab.events.Snapshot): `last` at the
    kept steps, the map at its own steps on both axes, t ≤ t′ only (a triangle)."""
    T = result.last.shape[1]
    fields: dict[str, Any] = {
        "step": step,
        "seq_len": T,
        "steps": steps.tolist(),
        "last": [_significant(row, 3) for row in result.last[:, steps.to(result.last.device)]],
        "map_steps": None,
        "map": None,
        "directions": result.directions,
        "captured": round(result.captured, 4),
    }
    if result.map is not None:
        outputs = result.map_steps.tolist()
        values = result.map[:, result.map_steps.to(result.map.device)]  # (M, M): t′, t
        fields["map_steps"] = outputs
        fields["map"] = [_significant(values[i, : i + 1], 3) for i in range(len(outputs))]
    return fields


class SnapshotSchedule:
    """When train() takes snapshots, and of what: one fixed probe batch, at most every
    `every_s` seconds, with gradients through time at most every `gradient_every_s`,
    and never so often that snapshots take more than about MAX_SNAPSHOT_SHARE of the
    run's own computing time (GRADIENT_SHARE of it for the snapshots with gradients,
    which cost several times more; long sequences make both slower). every_s = 0 asks
    for a whole snapshot, gradients included, after every step, whatever it costs.

    The inputs' influence is computed with some of the snapshots with gradients (see
    influence_due) and carried by the others, like the gradients; each layer's
    trajectory with every one with gradients, on the axes the previous one kept (a
    gates-only snapshot costs a few milliseconds, and paths would add a third to it).
    `influence` and `trajectories` False leave them out (None), for comparing costs.

    `busy` tells the seconds the run has spent computing so far, `wall` the time (both
    default to the wall clock), and `cpu` the processor time that measures what a
    snapshot costs (the process's: one the operating system paused on a full machine
    costs no more for it). A worker that interleaves many runs gives each its own busy
    clock, so that thirty runs sharing a core do not each take 4.5 % of the core.
    The first snapshot and a final one always have fresh gradients; the others carry
    the latest, with the step they were computed at (the spectral radii too).
    """

    def __init__(
        self,
        task: Task,
        device: torch.device | str,
        every_s: float,
        *,
        gradient_every_s: float = GRADIENT_EVERY_S,
        busy: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.perf_counter,
        cpu: Callable[[], float] = time.process_time,
        influence: bool = True,
        trajectories: bool = True,
    ):
        if not every_s >= 0:
            raise ValueError(f"snapshot_every_s must be at least 0 or None, got {every_s!r}")
        self.task, self.every_s, self.busy, self.wall, self.cpu = task, every_s, busy, wall, cpu
        self.with_influence, self.with_trajectories = influence, trajectories
        self.gradient_every_s = 0.0 if every_s == 0 else max(every_s, gradient_every_s)
        self.x, self.y = probe_batch(task, device=device)
        self.last = self.gradients_last = wall()
        self.last_busy = self.gradients_last_busy = busy()
        # Processor seconds of the recent snapshots without gradients, and with them; the
        # least of the last few is their cost (a stray slow one holds nothing back).
        self.costs: collections.deque[float] = collections.deque(maxlen=COST_SAMPLES)
        self.gradients_costs: collections.deque[float] = collections.deque(maxlen=COST_SAMPLES)
        self.gradients: dict[str, Any] | None = None  # the latest gradient fields
        self.history: list[list] = []  # [step, layer 1's ‖∂L/∂h_t‖ at the kept steps]
        # The latest influence fields; the cost of the recent snapshots with gradients
        # and influence, and with gradients but none; what the snapshots since the
        # latest influence cost in all.
        self.influence: dict[str, Any] | None = None
        self.influence_costs: collections.deque[float] = collections.deque(maxlen=COST_SAMPLES)
        self.plain_gradients_costs: collections.deque[float] = collections.deque(
            maxlen=COST_SAMPLES
        )
        self.spent_since_influence = 0.0
        self.trajectory: list[dict[str, Any] | None] | None = None  # the latest, its axes

    def due(self) -> bool:
        if self.every_s == 0:
            return True
        waited = self.wall() - self.last
        worked = self.busy() - self.last_busy
        return waited >= self.every_s and worked >= self.cost / (
            MAX_SNAPSHOT_SHARE - GRADIENT_SHARE
        )

    @property
    def cost(self) -> float:
        return min(self.costs, default=0.0)

    @property
    def gradients_cost(self) -> float:
        return min(self.gradients_costs, default=0.0)

    def gradients_due(self) -> bool:
        """Whether the next snapshot computes gradients through time again."""
        if self.gradients is None or self.every_s == 0:
            return True
        waited = self.wall() - self.gradients_last
        worked = self.busy() - self.gradients_last_busy
        return waited >= self.gradient_every_s and worked >= self.gradients_cost / GRADIENT_SHARE

    def influence_due(self) -> bool:
        """Whether a snapshot with fresh gradients computes the inputs' influence too:
        whenever that keeps its own cost (the least of the recent snapshots with it, less
        the least of those with gradients but without it; all of it until one without
        is known) within INFLUENCE_SHARE of what the snapshots cost in all."""
        if self.influence is None or self.every_s == 0:
            return True
        with_influence = min(self.influence_costs, default=0.0)
        added = with_influence - min(self.plain_gradients_costs, default=0.0)
        if not self.plain_gradients_costs:
            added = with_influence
        return added * (1 - INFLUENCE_SHARE) <= INFLUENCE_SHARE * self.spent_since_influence

    def take(self, model: RecurrentNet, step: int, *, final: bool = False) -> dict[str, Any]:
        """snapshot() of the model on the probe batch at training step `step`, with fresh
        gradients when they are due (or `final`), and the inputs' influence with them when
        that is due too (or `final`), timed for the next due()."""
        fresh = final or self.gradients_due()
        influence = self.with_influence and fresh and (final or self.influence_due())
        start = self.cpu()
        fields = snapshot(
            model,
            self.task,
            self.x,
            self.y,
            gradients=fresh,
            influence=influence,
            trajectories=self.with_trajectories and fresh,
            reference=self.trajectory,
            step=step,
        )
        if "trajectory" in fields:
            self.trajectory = fields.pop("trajectory")
        if influence:
            self.influence = fields.pop("influence")
        if fresh:
            self.gradients = {"gradient_step": step} | {
                name: fields.pop(name)
                for name in ("gradient_norms", "gradient_contributions", "spectral_radius")
            }
            if len(self.history) >= MAX_GRADIENT_HISTORY:
                self.history = self.history[::2]  # still from the first to the latest
            self.history.append([step, self.gradients["gradient_norms"][0]])
        self.last, self.last_busy = self.wall(), self.busy()
        cost = self.cpu() - start
        if fresh:
            self.gradients_last, self.gradients_last_busy = self.last, self.last_busy
            self.gradients_costs.append(cost)
            (self.influence_costs if influence else self.plain_gradients_costs).append(cost)
        else:
            self.costs.append(cost)
        self.spent_since_influence = 0.0 if influence else self.spent_since_influence + cost
        return {
            **fields,
            **self.gradients,
            "gradient_history": list(self.history),
            "influence": self.influence,
            "trajectory": self.trajectory,
        }
