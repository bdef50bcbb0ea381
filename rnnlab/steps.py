"""One recurrent layer's time loop, forward and backward: the only copy of each cell's equations.

`STEPS[cell].scan(activation, xw, w_hh, b_hh)` runs RNN, LSTM or GRU over a whole
sequence into preallocated (T, B, ·) buffers, which keep every gate at every step;
`backward(dh)` then takes ∂L/∂h_t from outside the layer back through time. Training
(`models.RecurrentScan`) and the probe (`probe.probe`, `probe.gradients_through_time`)
both run these classes, so a snapshot shows the very numbers training computes. What
tells the cells apart (gate chunks, sigmoid gates, recorded states) is their CellSpec in
`rnnlab.cells`, which needs no PyTorch.

Equations and gate orders are PyTorch's (i, f, g, o; r, z, n), with `activation` in place
of tanh for the RNN, for the LSTM's candidate and cell output and for the GRU's candidate;
the gates stay sigmoid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


class Activation(NamedTuple):
    """A non-linearity in the three forms the time loop needs."""

    in_place: Callable[[Tensor], Tensor]  # x ← act(x)
    into: Callable[[Tensor, Tensor], Tensor]  # into(x, out): out ← act(x)
    grad: Callable[[Tensor], Tensor]  # act'(a) from the output y = act(a)


def sigmoid_grad(y: Tensor) -> Tensor:
    """σ'(a) from y = σ(a)."""
    return y * (1 - y)


ACTIVATIONS = {
    "tanh": Activation(Tensor.tanh_, lambda x, out: torch.tanh(x, out=out), lambda y: 1 - y * y),
    "sigmoid": Activation(Tensor.sigmoid_, lambda x, out: torch.sigmoid(x, out=out), sigmoid_grad),
    "relu": Activation(
        Tensor.relu_, lambda x, out: torch.clamp(x, min=0, out=out), lambda y: (y > 0).to(y.dtype)
    ),
}


def previous(states: Tensor) -> Tensor:
    """states at t - 1 for every t, zeros at t = 0: (T, B, ·)."""
    return torch.cat([torch.zeros_like(states[:1]), states[:-1]])


def input_projection(inputs: Tensor, w_ih: Tensor, b_ih: Tensor) -> Tensor:
    """W_ih x_t + b_ih for every step in one matrix product: (T, B, D) -> (T, B, G·H).

    One explicit addmm, so that training and the probe get the same bits: F.linear on a
    non-contiguous input picks its kernel by whether the weight requires grad.
    """
    T, B, D = inputs.shape
    return torch.addmm(b_ih, inputs.reshape(T * B, D), w_ih.t()).view(T, B, -1)


def _gate_views(tensor: Tensor, chunks: int) -> list[tuple[Tensor, ...]]:
    """Per-step views of each gate chunk of a (T, B, chunks·H) tensor."""
    return [chunk.unbind(0) for chunk in tensor.chunk(chunks, dim=-1)]


class Steps:
    """One cell's arithmetic over a sequence, in preallocated (T, B, ·) buffers.

    A subclass is built from the buffers its backward pass reads (`buffers()`, in
    constructor order), so that RecurrentScan can keep them as saved tensors and build
    it again for backward; `scan` allocates them and runs the forward pass; `states()`
    names them as the probe shows them, in the order of the cell's CellSpec.states. Each
    pass first takes the per-step views it needs (one `unbind` instead of T Python
    indexing calls, which at these sizes cost as much as the arithmetic) and computes what
    it can for all steps at once.
    """

    def __init__(self, activation: str, w_hh: Tensor, h: Tensor):
        self.act = ACTIVATIONS[activation]
        self.w_hh, self.w_hh_t = w_hh, w_hh.t()
        self.H = w_hh.shape[1]
        self.hs_all = h  # (T, B, H)

    @classmethod
    def scan(cls, activation: str, xw: Tensor, w_hh: Tensor, b_hh: Tensor) -> Steps:
        """The cell over every step of xw = W_ih x_t + b_ih: (T, B, G·H), from h_{-1} = 0."""
        T, B, H = *xw.shape[:2], w_hh.shape[1]
        steps = cls(activation, w_hh, *cls.allocate(xw, H))
        steps.prepare_forward(xw, b_hh)
        h = xw.new_zeros(B, H)  # h_{-1}
        for t in range(T):
            steps.step(t, h)
            h = steps.hs[t]
        return steps

    @staticmethod
    def allocate(xw: Tensor, H: int) -> tuple[Tensor, ...]:
        """Empty buffers for a forward pass over xw: (T, B, G·H), in constructor order."""
        raise NotImplementedError

    def buffers(self) -> tuple[Tensor, ...]:
        """What backward reads, in constructor order."""
        raise NotImplementedError

    def states(self) -> dict[str, Tensor]:
        """Every state the cell's CellSpec.states names, at every step: name -> (T, B, H)."""
        raise NotImplementedError

    def prepare_forward(self, xw: Tensor, b_hh: Tensor) -> None:
        """Per-step views, and the buffers' shares of xw and b_hh, before step 0."""
        self.hs = self.hs_all.unbind(0)

    def step(self, t: int, h_prev: Tensor) -> None:
        """Step t, from h_{t-1}: (B, H), into the buffers."""
        raise NotImplementedError

    def backward(self, dh_outside: Tensor) -> list[Tensor]:
        """∂L/∂h_t for every step, T × (B, H), given its part from outside the layer:
        (T, B, H).

        Leaves ∂L/∂(W_ih x_t + b_ih) in dxw_all and ∂L/∂(W_hh h_{t-1} + b_hh) in
        dgh_all, both (T, B, G·H).
        """
        self.prepare_backward()
        outside = dh_outside.unbind(0)
        dh = [outside[-1]]  # h_{T-1} feeds no later step; from here on, last step first
        for t in reversed(range(len(outside))):
            direct = self.step_backward(t, dh[-1])
            if t > 0:  # ∂L/∂h_{t-1}: from outside, directly from step t, and through W_hh
                through_w = outside[t - 1] if direct is None else direct.add_(outside[t - 1])
                dh.append(torch.addmm(through_w, self.dgh[t], self.w_hh))  # (B, H)
        return dh[::-1]

    def prepare_backward(self) -> None:
        """Per-step views, and every factor of the backward pass that does not depend on
        ∂L/∂h_t for all steps at once, in the dxw_all and dgh_all that step_backward
        completes in place."""
        raise NotImplementedError

    def step_backward(self, t: int, dh: Tensor) -> Tensor | None:
        """Completes dxw[t] and dgh[t] from ∂L/∂h_t: (B, H); returns the part of
        ∂L/∂h_{t-1} that does not pass through W_hh, or None."""
        raise NotImplementedError


class RNNSteps(Steps):
    """h_t = act(a_t), a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh."""

    def __init__(self, activation: str, w_hh: Tensor, pre: Tensor, h: Tensor):
        super().__init__(activation, w_hh, h)
        self.pre_all = pre  # a_t: (T, B, H)

    @staticmethod
    def allocate(xw: Tensor, H: int) -> tuple[Tensor, ...]:
        return torch.empty_like(xw), torch.empty_like(xw)

    def buffers(self) -> tuple[Tensor, ...]:
        return self.pre_all, self.hs_all

    def states(self) -> dict[str, Tensor]:
        return {"pre": self.pre_all, "h": self.hs_all}

    def prepare_forward(self, xw: Tensor, b_hh: Tensor) -> None:
        super().prepare_forward(xw, b_hh)
        torch.add(xw, b_hh, out=self.pre_all)  # a_t but for W_hh h_{t-1}, which step() adds
        self.pre = self.pre_all.unbind(0)

    def step(self, t: int, h_prev: Tensor) -> None:
        pre = self.pre[t].addmm_(h_prev, self.w_hh_t)  # a_t
        self.act.into(pre, self.hs[t])  # h_t = act(a_t)

    def prepare_backward(self) -> None:
        self.dxw_all = self.dgh_all = self.act.grad(self.hs_all)  # act'(a_t)
        self.dgh = self.dgh_all.unbind(0)

    def step_backward(self, t: int, dh: Tensor) -> None:
        self.dgh[t].mul_(dh)  # ∂L/∂a_t = ∂L/∂h_t ⊙ act'(a_t)


class LSTMSteps(Steps):
    """PyTorch's LSTM, with `activation` in place of tanh for g and for the cell output."""

    def __init__(
        self, activation: str, w_hh: Tensor, gates: Tensor, c: Tensor, act_c: Tensor, h: Tensor
    ):
        super().__init__(activation, w_hh, h)
        self.gates_all = gates  # i, f, g, o after their non-linearities: (T, B, 4H)
        self.c_all, self.act_c_all = c, act_c  # c_t and act(c_t): (T, B, H)

    @staticmethod
    def allocate(xw: Tensor, H: int) -> tuple[Tensor, ...]:
        h = xw.new_empty(*xw.shape[:2], H)
        return torch.empty_like(xw), torch.empty_like(h), torch.empty_like(h), h

    def buffers(self) -> tuple[Tensor, ...]:
        return self.gates_all, self.c_all, self.act_c_all, self.hs_all

    def states(self) -> dict[str, Tensor]:
        i, f, g, o = self.gates_all.chunk(4, dim=-1)
        return {"i": i, "f": f, "g": g, "o": o, "c": self.c_all, "h": self.hs_all}

    def prepare_forward(self, xw: Tensor, b_hh: Tensor) -> None:
        super().prepare_forward(xw, b_hh)
        torch.add(xw, b_hh, out=self.gates_all)  # but for W_hh h_{t-1}, which step() adds
        self.gates, self.c, self.act_c = (
            buffer.unbind(0) for buffer in (self.gates_all, self.c_all, self.act_c_all)
        )
        self.i, self.f, self.g, self.o = _gate_views(self.gates_all, 4)
        self.i_f = self.gates_all[..., : 2 * self.H].unbind(0)

    def step(self, t: int, h_prev: Tensor) -> None:
        self.gates[t].addmm_(h_prev, self.w_hh_t)  # W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        self.i_f[t].sigmoid_()  # i_t, f_t
        self.act.in_place(self.g[t])  # g_t
        self.o[t].sigmoid_()  # o_t
        c = torch.mul(self.i[t], self.g[t], out=self.c[t])
        if t > 0:
            c.addcmul_(self.f[t], self.c[t - 1])  # c_t = f⊙c_{t-1} + i⊙g
        act_c = self.act.into(c, self.act_c[t])
        torch.mul(self.o[t], act_c, out=self.hs[t])  # h_t = o⊙act(c_t)

    def prepare_backward(self) -> None:
        H = self.H
        i, f, g, o = self.gates_all.chunk(4, dim=-1)  # each (T, B, H)
        self.f = f.unbind(0)
        self.dc_from_h = (o * self.act.grad(self.act_c_all)).unbind(0)  # ∂h_t/∂c_t
        # ∂c_t/∂(i, f, g pre-activations) and ∂h_t/∂(o pre-activation), multiplied in
        # place by ∂L/∂c_t and ∂L/∂h_t in step_backward().
        self.dxw_all = self.dgh_all = torch.cat(
            [
                g * sigmoid_grad(i),
                previous(self.c_all) * sigmoid_grad(f),
                i * self.act.grad(g),
                self.act_c_all * sigmoid_grad(o),
            ],
            dim=-1,
        )
        T, B = self.dgh_all.shape[:2]
        self.d_ifg = self.dgh_all[..., : 3 * H].reshape(T, B, 3, H).unbind(0)
        self.d_o = self.dgh_all[..., 3 * H :].unbind(0)
        self.dgh = self.dgh_all.unbind(0)
        self.dc_next = None  # ∂L/∂c_{t+1} ⊙ f_{t+1}

    def step_backward(self, t: int, dh: Tensor) -> None:
        if self.dc_next is None:
            dc = dh * self.dc_from_h[t]  # ∂L/∂c_t = ∂L/∂h_t ⊙ ∂h_t/∂c_t
        else:  # ... + ∂L/∂c_{t+1} ⊙ f_{t+1}, as c_{t+1} = f_{t+1}⊙c_t + …
            dc = torch.addcmul(self.dc_next, dh, self.dc_from_h[t])
        self.d_ifg[t].mul_(dc[:, None, :])  # di, df, dg
        self.d_o[t].mul_(dh)  # do
        self.dc_next = dc * self.f[t]


class GRUSteps(Steps):
    """PyTorch's GRU, with `activation` in place of tanh for the candidate n."""

    def __init__(self, activation: str, w_hh: Tensor, gates: Tensor, gh: Tensor, h: Tensor):
        super().__init__(activation, w_hh, h)
        self.gates_all = gates  # r, z, n after their non-linearities: (T, B, 3H)
        self.gh_all = gh  # W_hh h_{t-1} + b_hh: (T, B, 3H)

    @staticmethod
    def allocate(xw: Tensor, H: int) -> tuple[Tensor, ...]:
        return torch.empty_like(xw), torch.empty_like(xw), xw.new_empty(*xw.shape[:2], H)

    def buffers(self) -> tuple[Tensor, ...]:
        return self.gates_all, self.gh_all, self.hs_all

    def states(self) -> dict[str, Tensor]:
        r, z, n = self.gates_all.chunk(3, dim=-1)
        return {"r": r, "z": z, "n": n, "h": self.hs_all}

    def prepare_forward(self, xw: Tensor, b_hh: Tensor) -> None:
        super().prepare_forward(xw, b_hh)
        H = self.H
        self.b_hh = b_hh  # r scales W_hn h_{t-1} + b_hn, not b_in: b_hh stays apart
        self.xw_rz, self.xw_n = xw[..., : 2 * H].unbind(0), xw[..., 2 * H :].unbind(0)
        self.r, self.z, self.n = _gate_views(self.gates_all, 3)
        self.rz = self.gates_all[..., : 2 * H].unbind(0)
        self.gh = self.gh_all.unbind(0)
        self.gh_rz = self.gh_all[..., : 2 * H].unbind(0)
        self.gh_n = self.gh_all[..., 2 * H :].unbind(0)

    def step(self, t: int, h_prev: Tensor) -> None:
        torch.addmm(self.b_hh, h_prev, self.w_hh_t, out=self.gh[t])  # W_hh h_{t-1} + b_hh
        torch.add(self.xw_rz[t], self.gh_rz[t], out=self.rz[t]).sigmoid_()  # r_t, z_t
        n = torch.addcmul(self.xw_n[t], self.r[t], self.gh_n[t], out=self.n[t])
        self.act.in_place(n)  # n_t = act(W_in x_t + b_in + r_t⊙(W_hn h_{t-1} + b_hn))
        torch.lerp(n, h_prev, self.z[t], out=self.hs[t])  # h_t = (1 − z_t)⊙n_t + z_t⊙h_{t−1}

    def prepare_backward(self) -> None:
        H = self.H
        r, z, n = self.gates_all.chunk(3, dim=-1)  # each (T, B, H)
        self.r, self.z = r.unbind(0), z.unbind(0)
        # Factors of ∂L/∂(r, z, n pre-activations), completed in place in step_backward():
        # z and n by ∂L/∂h_t, r by ∂L/∂(n pre-activation).
        self.dxw_all = torch.cat(
            [
                self.gh_all[..., 2 * H :] * sigmoid_grad(r),
                (previous(self.hs_all) - n) * sigmoid_grad(z),
                (1 - z) * self.act.grad(n),
            ],
            dim=-1,
        )
        self.dgh_all = torch.empty_like(self.dxw_all)
        T, B = self.dxw_all.shape[:2]
        self.dx_r, _, self.dx_n = _gate_views(self.dxw_all, 3)
        self.dx_zn = self.dxw_all[..., H:].reshape(T, B, 2, H).unbind(0)
        self.dx_rz = self.dxw_all[..., : 2 * H].unbind(0)
        self.dgh = self.dgh_all.unbind(0)
        self.dgh_rz = self.dgh_all[..., : 2 * H].unbind(0)
        self.dgh_n = self.dgh_all[..., 2 * H :].unbind(0)

    def step_backward(self, t: int, dh: Tensor) -> Tensor:
        self.dx_zn[t].mul_(dh[:, None, :])  # dz, dn (pre-activation)
        dn = self.dx_n[t]
        self.dx_r[t].mul_(dn)  # dr = dn ⊙ (W_hn h_{t-1} + b_hn) ⊙ σ'
        self.dgh_rz[t].copy_(self.dx_rz[t])
        torch.mul(dn, self.r[t], out=self.dgh_n[t])  # the n block enters multiplied by r
        return dh * self.z[t]  # h_t = … + z_t⊙h_{t−1}


STEPS: dict[str, type[Steps]] = {"rnn": RNNSteps, "lstm": LSTMSteps, "gru": GRUSteps}
