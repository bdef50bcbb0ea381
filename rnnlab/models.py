"""RNN, LSTM and GRU networks: PyTorch's fused modules where they exist, our own otherwise.

nn.RNN (tanh, relu), nn.LSTM (tanh) and nn.GRU (tanh) are the fast path. The other
combinations (sigmoid RNN, LSTM/GRU with a sigmoid or relu candidate) run on
`Recurrent`, which keeps PyTorch's parameter names and gate orders (i, f, g, o and
r, z, n), so a state_dict moves between the two unchanged.

`Recurrent` computes the input projection for all time steps in one matrix product and
runs the time loop inside one autograd Function with a hand-written backward pass:
autograd would otherwise record ~10 nodes per time step, and that bookkeeping, not the
arithmetic, dominates a small recurrent step. The weight gradients are then one matrix
product over all steps instead of one per step. The loop itself, forward and backward,
is `rnnlab.steps`, which the probe runs too.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .cells import CELLS
from .config import RunConfig
from .steps import STEPS, input_projection, previous
from .tasks import Task, make_task

# PyTorch's module for each cell, with tanh (nn.RNN also takes relu): the fast path.
FUSED: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def is_fused(cell: str, activation: str) -> bool:
    """Whether PyTorch has a fused module for this cell and activation."""
    return activation == "tanh" or (cell == "rnn" and activation == "relu")


class RecurrentScan(torch.autograd.Function):
    """One recurrent layer over a whole sequence, given its input projection.

    xw: (T, B, G·H) = W_ih x_t + b_ih for every t; returns h: (T, B, H), with h_{-1} = 0.
    The step buffers backward reads (every gate at every step) are saved tensors, so
    autograd frees them after backward and notices if one was changed in place; ctx
    itself keeps only the names of the cell and the activation. The backward pass is
    hand-written and not itself differentiable: a double backward raises an error.
    """

    @staticmethod
    def forward(ctx, xw: Tensor, w_hh: Tensor, b_hh: Tensor, cell: str, activation: str):
        steps = STEPS[cell].scan(activation, xw, w_hh, b_hh)
        ctx.cell, ctx.activation = cell, activation
        ctx.save_for_backward(w_hh, *steps.buffers())
        return steps.hs_all

    @staticmethod
    @once_differentiable
    def backward(ctx, dhs: Tensor):
        w_hh, *buffers = ctx.saved_tensors
        steps = STEPS[ctx.cell](ctx.activation, w_hh, *buffers)
        steps.backward(dhs)  # leaves ∂L/∂xw in steps.dxw_all, ∂L/∂(W_hh h + b_hh) in dgh_all
        T, B, H = steps.hs_all.shape
        h_prev = previous(steps.hs_all).reshape(T * B, H)
        dgh = steps.dgh_all.reshape(T * B, -1)  # (T·B, G·H)
        return steps.dxw_all, dgh.t() @ h_prev, dgh.sum(0), None, None


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
        gate_size = CELLS[cell].gate_chunks * hidden_size
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
            xw = input_projection(h, w_ih, b_ih)  # (T, B, G·H)
            h = RecurrentScan.apply(xw, w_hh, b_hh, self.cell, self.activation)
        return h.transpose(0, 1)  # (B, T, H)


def make_recurrent(
    cell: str, activation: str, input_size: int, hidden_size: int, num_layers: int, device=None
) -> nn.Module:
    """PyTorch's fused module when one exists for (cell, activation), else Recurrent."""
    if not is_fused(cell, activation):
        return Recurrent(cell, activation, input_size, hidden_size, num_layers, device=device)
    options = {"nonlinearity": activation} if cell == "rnn" else {}
    return FUSED[cell](
        input_size, hidden_size, num_layers, batch_first=True, device=device, **options
    )


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
