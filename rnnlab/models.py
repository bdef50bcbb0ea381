"""RNN, LSTM and GRU networks: PyTorch's fused modules where they exist, our own otherwise.

nn.RNN (tanh, relu), nn.LSTM (tanh) and nn.GRU (tanh) are the fast path. The other
combinations (sigmoid RNN, LSTM/GRU with a sigmoid or relu candidate) run on
`Recurrent`, which keeps PyTorch's parameter names and gate orders (i, f, g, o and
r, z, n), so a state_dict moves between the two unchanged.

`Recurrent` computes the input projection for all time steps in one matrix product and
runs the time loop inside one autograd Function with a hand-written backward pass:
autograd would otherwise record ~10 nodes per time step, and that bookkeeping, not the
arithmetic, dominates a small recurrent step. The weight gradients are then one matrix
product over all steps instead of one per step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import GATE_CHUNKS, RunConfig
from .tasks import Task, make_task

# name -> (apply in place, derivative expressed through the output y = f(x))
ACTIVATIONS = {
    "tanh": (Tensor.tanh_, lambda y: 1 - y * y),
    "sigmoid": (Tensor.sigmoid_, lambda y: y * (1 - y)),
    "relu": (Tensor.relu_, lambda y: (y > 0).to(y.dtype)),
}
# name -> f(x, out=y): writes into a preallocated buffer
ACTIVATIONS_INTO = {
    "tanh": lambda x, out: torch.tanh(x, out=out),
    "sigmoid": lambda x, out: torch.sigmoid(x, out=out),
    "relu": lambda x, out: torch.clamp(x, min=0, out=out),
}


def is_fused(cell: str, activation: str) -> bool:
    """Whether PyTorch has a fused module for this cell and activation."""
    return activation == "tanh" or (cell == "rnn" and activation == "relu")


def _sigmoid_grad(y: Tensor) -> Tensor:
    return y * (1 - y)


def _shifted(states: Tensor) -> Tensor:
    """states at t - 1 for every t, zeros at t = 0: (T, B, H)."""
    return torch.cat([torch.zeros_like(states[:1]), states[:-1]])


class _Steps:
    """One cell's arithmetic for RecurrentScan.

    forward(t, h_prev) computes step t into preallocated (T, B, ·) buffers. Each buffer
    is also kept as a tuple of its T per-step views (one `unbind` instead of T Python
    indexing calls, which at these sizes cost as much as the arithmetic).
    begin_backward() computes, for all steps at once, every factor of the backward pass
    that does not depend on the incoming gradient; backward(t, dh) then needs only a few
    in-place products to leave ∂L/∂(W_ih x_t + b_ih) in dxw[t] and
    ∂L/∂(W_hh h_{t-1} + b_hh) in dgh[t]. It returns the part of ∂L/∂h_{t-1} that does
    not pass through W_hh, or None.
    """

    def __init__(self, xw: Tensor, w_hh: Tensor, b_hh: Tensor, activation: str):
        self.H = w_hh.shape[1]
        self.act, self.act_grad = ACTIVATIONS[activation]
        self.w_hh_t = w_hh.t()
        self.hs_all = xw.new_empty(*xw.shape[:2], self.H)  # (T, B, H)
        self.hs = self.hs_all.unbind(0)

    def gate_views(self, tensor: Tensor, chunks: int) -> list[tuple[Tensor, ...]]:
        """Per-step views of each gate chunk of a (T, B, chunks·H) tensor."""
        return [chunk.unbind(0) for chunk in tensor.chunk(chunks, dim=-1)]


class _RNNSteps(_Steps):
    """h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    def __init__(self, xw: Tensor, w_hh: Tensor, b_hh: Tensor, activation: str):
        super().__init__(xw, w_hh, b_hh, activation)
        self.xw = (xw + b_hh).unbind(0)

    def forward(self, t: int, h_prev: Tensor) -> None:
        self.act(torch.addmm(self.xw[t], h_prev, self.w_hh_t, out=self.hs[t]))

    def begin_backward(self) -> None:
        self.dxw_all = self.dgh_all = self.act_grad(self.hs_all)  # × ∂L/∂h_t in backward
        self.dgh = self.dgh_all.unbind(0)

    def backward(self, t: int, dh: Tensor) -> None:
        self.dgh[t].mul_(dh)  # ∂L/∂a_t = ∂L/∂h_t ⊙ act'(a_t)


class _LSTMSteps(_Steps):
    """PyTorch's LSTM, with `activation` in place of tanh for g and for the cell output."""

    def __init__(self, xw: Tensor, w_hh: Tensor, b_hh: Tensor, activation: str):
        super().__init__(xw, w_hh, b_hh, activation)
        H = self.H
        self.act_into = ACTIVATIONS_INTO[activation]
        self.xw = (xw + b_hh).unbind(0)
        self.gates_all = torch.empty_like(xw)  # i, f, g, o after their non-linearities
        self.gates = self.gates_all.unbind(0)
        self.i, self.f, self.g, self.o = self.gate_views(self.gates_all, 4)
        self.i_f = self.gates_all[..., : 2 * H].unbind(0)
        self.c_all = torch.empty_like(self.hs_all)
        self.act_c_all = torch.empty_like(self.hs_all)
        self.c, self.act_c = self.c_all.unbind(0), self.act_c_all.unbind(0)

    def forward(self, t: int, h_prev: Tensor) -> None:
        torch.addmm(self.xw[t], h_prev, self.w_hh_t, out=self.gates[t])
        self.i_f[t].sigmoid_()
        self.act(self.g[t])
        self.o[t].sigmoid_()
        c = torch.mul(self.i[t], self.g[t], out=self.c[t])
        if t > 0:
            c.addcmul_(self.f[t], self.c[t - 1])  # c_t = f⊙c_{t-1} + i⊙g
        act_c = self.act_into(c, self.act_c[t])
        torch.mul(self.o[t], act_c, out=self.hs[t])  # h_t = o⊙act(c_t)

    def begin_backward(self) -> None:
        H = self.H
        i, f, g, o = self.gates_all.chunk(4, dim=-1)  # each (T, B, H)
        self.dc_from_h = (o * self.act_grad(self.act_c_all)).unbind(0)  # ∂h_t/∂c_t
        # ∂(pre-activation)/∂c_t for i, f, g and ∂(pre-activation)/∂h_t for o;
        # multiplied in place by ∂L/∂c_t and ∂L/∂h_t in backward().
        self.dxw_all = self.dgh_all = torch.cat(
            [
                g * _sigmoid_grad(i),
                _shifted(self.c_all) * _sigmoid_grad(f),
                i * self.act_grad(g),
                self.act_c_all * _sigmoid_grad(o),
            ],
            dim=-1,
        )
        T, B = self.dgh_all.shape[:2]
        self.d_ifg = self.dgh_all[..., : 3 * H].reshape(T, B, 3, H).unbind(0)
        self.d_o = self.dgh_all[..., 3 * H :].unbind(0)
        self.dgh = self.dgh_all.unbind(0)

    def backward(self, t: int, dh: Tensor) -> None:
        if t < len(self.hs) - 1:
            # ∂L/∂c_t flows from h_t and from c_{t+1} = f_{t+1}⊙c_t + …
            dc = torch.addcmul(self.dc_next, dh, self.dc_from_h[t])
        else:
            dc = dh * self.dc_from_h[t]
        self.d_ifg[t].mul_(dc[:, None, :])  # di, df, dg
        self.d_o[t].mul_(dh)  # do
        self.dc_next = dc * self.f[t]


class _GRUSteps(_Steps):
    """PyTorch's GRU, with `activation` in place of tanh for the candidate n."""

    def __init__(self, xw: Tensor, w_hh: Tensor, b_hh: Tensor, activation: str):
        super().__init__(xw, w_hh, b_hh, activation)
        H = self.H
        self.b_hh = b_hh
        self.xw_rz = xw[..., : 2 * H].unbind(0)
        self.xw_n = xw[..., 2 * H :].unbind(0)
        self.gates_all = torch.empty_like(xw)  # r, z, n after their non-linearities
        self.r, self.z, self.n = self.gate_views(self.gates_all, 3)
        self.rz = self.gates_all[..., : 2 * H].unbind(0)
        self.gh_all = torch.empty_like(xw)  # W_hh h_{t-1} + b_hh
        self.gh = self.gh_all.unbind(0)
        self.gh_rz = self.gh_all[..., : 2 * H].unbind(0)
        self.gh_n = self.gh_all[..., 2 * H :].unbind(0)

    def forward(self, t: int, h_prev: Tensor) -> None:
        torch.addmm(self.b_hh, h_prev, self.w_hh_t, out=self.gh[t])
        torch.add(self.xw_rz[t], self.gh_rz[t], out=self.rz[t]).sigmoid_()
        n = torch.addcmul(self.xw_n[t], self.r[t], self.gh_n[t], out=self.n[t])
        self.act(n)  # n = act(W_in x + b_in + r⊙(W_hn h_{t-1} + b_hn))
        torch.lerp(n, h_prev, self.z[t], out=self.hs[t])  # h_t = (1 − z)⊙n + z⊙h_{t−1}

    def begin_backward(self) -> None:
        H = self.H
        r, z, n = self.gates_all.chunk(3, dim=-1)  # each (T, B, H)
        # Factors of ∂L/∂(r, z, n pre-activations) other than ∂L/∂h_t (× in backward()).
        self.dxw_all = torch.cat(
            [
                self.gh_all[..., 2 * H :] * _sigmoid_grad(r),
                (_shifted(self.hs_all) - n) * _sigmoid_grad(z),
                (1 - z) * self.act_grad(n),
            ],
            dim=-1,
        )
        self.dgh_all = torch.empty_like(self.dxw_all)
        T, B = self.dxw_all.shape[:2]
        self.dx_r, _, self.dx_n = self.gate_views(self.dxw_all, 3)
        self.dx_zn = self.dxw_all[..., H:].reshape(T, B, 2, H).unbind(0)
        self.dx_rz = self.dxw_all[..., : 2 * H].unbind(0)
        self.dgh = self.dgh_all.unbind(0)
        self.dgh_rz = self.dgh_all[..., : 2 * H].unbind(0)
        self.dgh_n = self.dgh_all[..., 2 * H :].unbind(0)

    def backward(self, t: int, dh: Tensor) -> Tensor:
        self.dx_zn[t].mul_(dh[:, None, :])  # dz, dn (pre-activation)
        dn = self.dx_n[t]
        self.dx_r[t].mul_(dn)  # dr = dn ⊙ (W_hn h_{t-1} + b_hn) ⊙ σ'
        self.dgh_rz[t].copy_(self.dx_rz[t])
        torch.mul(dn, self.r[t], out=self.dgh_n[t])
        return dh * self.z[t]


STEPS = {"rnn": _RNNSteps, "lstm": _LSTMSteps, "gru": _GRUSteps}


class RecurrentScan(torch.autograd.Function):
    """One recurrent layer over a whole sequence, given its input projection.

    xw: (T, B, G·H) = W_ih x_t + b_ih for every t; returns h: (T, B, H), with h_{-1} = 0.
    """

    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, b_hh: Tensor, cell: str, activation: str):
        steps = STEPS[cell](xw, w_hh, b_hh, activation)
        h = xw.new_zeros(xw.shape[1], w_hh.shape[1])  # h_{-1}: (B, H)
        for t in range(xw.shape[0]):
            steps.forward(t, h)
            h = steps.hs[t]
        hs_all = steps.hs_all
        # The output goes through save_for_backward, not ctx.steps: an output kept on
        # ctx would reference its own grad_fn, a cycle that is never freed.
        del steps.hs_all, steps.hs, h
        ctx.steps = steps
        ctx.save_for_backward(w_hh, hs_all)
        return hs_all

    @staticmethod
    def backward(ctx, dhs: Tensor):
        w_hh, hs_all = ctx.saved_tensors
        steps = ctx.steps
        steps.hs_all, steps.hs = hs_all, hs_all.unbind(0)
        steps.begin_backward()
        T, B, H = steps.hs_all.shape
        dh_out = dhs.unbind(0)
        dh = dh_out[T - 1]  # ∂L/∂h_t: from the output, and from step t + 1 below
        for t in reversed(range(T)):
            direct = steps.backward(t, dh)
            if t > 0:
                through_w = dh_out[t - 1] if direct is None else direct.add_(dh_out[t - 1])
                dh = torch.addmm(through_w, steps.dgh[t], w_hh)  # (B, H)
        h_prev = _shifted(steps.hs_all).reshape(T * B, H)
        dgh = steps.dgh_all.reshape(T * B, -1)  # (T·B, G·H)
        dxw = steps.dxw_all
        del steps.hs_all, steps.hs  # the saved output refers back to this node
        return dxw, dgh.t() @ h_prev, dgh.sum(0), None, None


class Recurrent(nn.Module):
    """A stack of RNN/LSTM/GRU layers with any activation; batch_first like nn.LSTM.

    Parameters are named as in nn.RNN/nn.LSTM/nn.GRU: weight_ih_l{k}, weight_hh_l{k},
    bias_ih_l{k}, bias_hh_l{k}, gate rows in PyTorch's order.
    """

    def __init__(
        self,
        cell: str,
        activation: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        device=None,
    ):
        super().__init__()
        self.cell, self.activation = cell, activation
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        gate_size = GATE_CHUNKS[cell] * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size
            shapes = {
                "weight_ih": (gate_size, layer_input),
                "weight_hh": (gate_size, hidden_size),
                "bias_ih": (gate_size,),
                "bias_hh": (gate_size,),
            }
            for name, shape in shapes.items():
                parameter = nn.Parameter(torch.empty(shape, device=device))
                self.register_parameter(f"{name}_l{layer}", parameter)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound, generator=generator)

    def layer_weights(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return tuple(
            getattr(self, f"{name}_l{layer}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, input_size) -> h of the last layer: (B, T, hidden_size)."""
        h = x.transpose(0, 1)  # (T, B, D)
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.layer_weights(layer)
            xw = F.linear(h, w_ih, b_ih)  # (T, B, G·H)
            h = RecurrentScan.apply(xw, w_hh, b_hh, self.cell, self.activation)
        return h.transpose(0, 1)  # (B, T, H)


def make_recurrent(
    cell: str, activation: str, input_size: int, hidden_size: int, num_layers: int, device=None
) -> nn.Module:
    """PyTorch's fused module when one exists for (cell, activation), else Recurrent."""
    if not is_fused(cell, activation):
        return Recurrent(cell, activation, input_size, hidden_size, num_layers, device=device)
    if cell == "rnn":
        return nn.RNN(
            input_size,
            hidden_size,
            num_layers,
            nonlinearity=activation,
            batch_first=True,
            device=device,
        )
    module = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
    return module(input_size, hidden_size, num_layers, batch_first=True, device=device)


class RecurrentNet(nn.Module):
    """Recurrent layers and a linear head, at every step or at the last one."""

    def __init__(
        self,
        cell: str,
        activation: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        output_size: int,
        every_step: bool = True,
        device=None,
    ):
        super().__init__()
        self.cell, self.activation, self.every_step = cell, activation, every_step
        self.fused = is_fused(cell, activation)
        self.rnn = make_recurrent(cell, activation, input_size, hidden_size, num_layers, device)
        self.head = nn.Linear(hidden_size, output_size, device=device)

    def features(self, x: Tensor) -> Tensor:
        """Hidden states of the last layer: (B, T, H)."""
        out = self.rnn(x)
        return out[0] if self.fused else out

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (B, T, H)
        if not self.every_step:
            h = h[:, -1]  # (B, H)
        return self.head(h)  # (B, T, output) or (B, output)


def initialise(model: RecurrentNet, init: str, generator: torch.Generator) -> None:
    """Set every weight from `generator` (never the global RNG) by the named scheme."""
    hidden = model.rnn.hidden_size
    bound = 1.0 / math.sqrt(hidden)
    with torch.no_grad():
        for name, parameter in model.rnn.named_parameters():
            nn.init.uniform_(parameter, -bound, bound, generator=generator)
            if init in ("orthogonal", "identity") and name.startswith("bias"):
                parameter.zero_()
            if init == "orthogonal" and name.startswith("weight_hh"):
                for block in parameter.split(hidden):
                    nn.init.orthogonal_(block, generator=generator)
            if init == "identity" and name.startswith("weight_hh"):
                parameter.copy_(torch.eye(hidden))
            if init == "forget_bias" and name.startswith("bias"):
                forget = parameter[hidden : 2 * hidden]  # gate order i, f, g, o
                forget.fill_(1.0 if name.startswith("bias_ih") else 0.0)
        head_bound = 1.0 / math.sqrt(hidden)
        for parameter in model.head.parameters():
            nn.init.uniform_(parameter, -head_bound, head_bound, generator=generator)


def _network(config: RunConfig, task: Task) -> RecurrentNet:
    """The network's structure on the meta device: shapes only, no memory."""
    return RecurrentNet(
        config.cell,
        config.activation,
        task.input_dim,
        config.hidden_size,
        config.num_layers,
        task.output_dim,
        every_step=task.predicts_every_step,
        device="meta",
    )


def build_model(config: RunConfig, task: Task | None = None) -> RecurrentNet:
    """The network a configuration describes, initialised from its seed, on the CPU."""
    model = _network(config, task or make_task(config)).to_empty(device="cpu")
    initialise(model, config.init, torch.Generator().manual_seed(config.seed))
    if model.fused:
        model.rnn.flatten_parameters()
    return model


def count_parameters(config: RunConfig, task: Task) -> int:
    """Trainable parameters of the model `config` describes, without allocating it."""
    return sum(p.numel() for p in _network(config, task).parameters())
