"""The tasks a run can learn, each producing inputs shaped (batch, seq_len, input_dim).

A task owns its data, its loss and its metric. What it states about itself (sizes,
metric name, chance-level baseline in loss units and, where it has one, its "solved"
criterion) is its spec in rnnlab.specs, which each task class extends: the dashboard's
server reads the same numbers there without PyTorch. Data come from the generator the
caller passes, so a seed fixes them; the held-out set depends only on the task's
settings, so runs with different seeds are scored on the same sequences.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import RunConfig
from .specs import AddingSpec, CharSpec, CopySpec, HelloSpec, SineSpec, TaskSpec, TextSpec
from .text import read_task_text

HELD_OUT_SEED = 20_161_013
# Held-out sequences evaluated at once: the whole set in one batch would hold every
# sequence's activations together (1.7 GB for a GRU with h=256 at T=300).
EVAL_CHUNK = 64


class Task(TaskSpec):
    """What every task provides: its data, loss and metric (its spec says the rest)."""

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def held_out(self) -> tuple[Tensor, Tensor]:
        """A fixed evaluation batch (the same tensors on every call)."""
        if not hasattr(self, "_held_out"):
            self._held_out = self.sample(
                self.held_out_size, torch.Generator().manual_seed(HELD_OUT_SEED)
            )
        return self._held_out

    held_out_size = 512

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def metric(self, output: Tensor, target: Tensor) -> float:
        raise NotImplementedError

    def marked_steps(self, x: Tensor) -> list[list[int]] | None:
        """The time steps of each sequence of x: (B, T, D) that the answer depends on, where
        the input marks them (the adding problem); None where it marks none."""
        return None

    def evaluate(
        self, model: torch.nn.Module, device: torch.device, sequences: int | None = None
    ) -> tuple[float, float]:
        """Held-out loss and metric of `model`: on the whole held-out set, or its first
        `sequences`. The model is left in training mode."""
        x, y = self.held_out()
        if sequences is not None:
            x, y = x[:sequences], y[:sequences]
        model.eval()
        with torch.no_grad():  # in chunks: a run's peak memory stays its training step's
            output = torch.cat([model(chunk.to(device)) for chunk in x.split(EVAL_CHUNK)])
            y = y.to(device)
            loss, metric = self.loss(output, y).item(), self.metric(output, y)
        model.train()
        return loss, metric


class _CharTask(CharSpec, Task):
    """Next-character prediction over a vocabulary of characters, one-hot encoded."""

    def encode(self, text: str) -> Tensor:
        return torch.tensor(self.indices(text), dtype=torch.long)

    def decode(self, indices: Tensor | list[int]) -> str:
        return "".join(self.vocab[int(i)] for i in indices)

    def one_hot(self, indices: Tensor) -> Tensor:
        return F.one_hot(indices, len(self.vocab)).float()

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def metric(self, output: Tensor, target: Tensor) -> float:
        return (output.argmax(-1) == target).float().mean().item()


class HelloTask(HelloSpec, _CharTask):
    """The study note's example, one word (see HelloSpec)."""

    held_out_size = 1

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The word itself: a batch of one sequence, however large batch_size is."""
        indices = self.encode(self.word)
        x = self.one_hot(indices[:-1]).unsqueeze(0)  # (1, T, V)
        y = indices[1:].unsqueeze(0)  # (1, T)
        return x, y


class TextTask(TextSpec, _CharTask):
    """Character-level language modelling on a text (see TextSpec)."""

    held_out_size = 64

    def __init__(self, text: str, seq_len: int):
        super().__init__(text, seq_len)
        data = self.encode(text)
        self.train_data, self.held_out_data = data[: self.split], data[self.split :]

    def _windows(self, data: Tensor, batch_size: int, generator: torch.Generator):
        starts = torch.randint(0, len(data) - self.seq_len, (batch_size,), generator=generator)
        rows = data[starts[:, None] + torch.arange(self.seq_len + 1)]  # (B, T + 1)
        return self.one_hot(rows[:, :-1]), rows[:, 1:]

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return self._windows(self.train_data, batch_size, generator)

    def held_out(self) -> tuple[Tensor, Tensor]:
        if not hasattr(self, "_held_out"):
            generator = torch.Generator().manual_seed(HELD_OUT_SEED)
            self._held_out = self._windows(self.held_out_data, self.held_out_size, generator)
        return self._held_out

    def metric(self, output: Tensor, target: Tensor) -> float:
        return self.loss(output, target).item() / math.log(2)


class AddingTask(AddingSpec, Task):
    """The adding problem (see AddingSpec)."""

    held_out_size = 1000

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        T, half = self.seq_len, self.seq_len // 2
        values = torch.rand(batch_size, T, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, T, (batch_size,), generator=generator)
        markers = torch.zeros(batch_size, T)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
        y = (values * markers).sum(1, keepdim=True)  # (B, 1)
        return x, y

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target)

    def metric(self, output: Tensor, target: Tensor) -> float:
        return F.mse_loss(output, target).item()

    def marked_steps(self, x: Tensor) -> list[list[int]]:
        """The two marked steps of each sequence (its marker channel is 1 there)."""
        return [row.nonzero().flatten().tolist() for row in x[..., 1].cpu()]


class CopyTask(CopySpec, Task):
    """Copy memory (see CopySpec)."""

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        n = self.memory
        data = torch.randint(1, 9, (batch_size, n), generator=generator)
        inputs = torch.zeros(batch_size, self.seq_len, dtype=torch.long)
        inputs[:, :n] = data
        inputs[:, self.delay + n - 1] = 9
        target = torch.zeros(batch_size, self.seq_len, dtype=torch.long)
        target[:, -n:] = data
        return F.one_hot(inputs, self.input_dim).float(), target  # (B, T+20, 10), (B, T+20)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def metric(self, output: Tensor, target: Tensor) -> float:
        recalled = output[:, -self.memory :].argmax(-1)
        return (recalled == target[:, -self.memory :]).float().mean().item()


class SineTask(SineSpec, Task):
    """A noisy sum of three sines (see SineSpec); the baseline is measured here, on the
    held-out sequences."""

    noise = 0.05
    held_out_size = 512

    def __init__(self, seq_len: int):
        super().__init__(seq_len)
        x, y = self.held_out()
        self.baseline = self.metric_baseline = F.mse_loss(x, y).item()

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        shape = (batch_size, 1, 3)
        amplitude = 0.2 + 0.8 * torch.rand(shape, generator=generator)
        frequency = 0.01 + 0.09 * torch.rand(shape, generator=generator)  # cycles per step
        phase = 2 * math.pi * torch.rand(shape, generator=generator)
        t = torch.arange(self.seq_len + 1, dtype=torch.float32)[None, :, None]
        clean = (amplitude * torch.sin(2 * math.pi * frequency * t + phase)).sum(-1) / 1.5
        noisy = clean + self.noise * torch.randn(clean.shape, generator=generator)
        series = noisy.unsqueeze(-1)  # (B, T + 1, 1)
        return series[:, :-1], series[:, 1:]

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(output, target)

    def metric(self, output: Tensor, target: Tensor) -> float:
        return F.mse_loss(output, target).item()


TASKS = {
    "hello": lambda config: HelloTask(config.word),
    "text": lambda config: TextTask(read_task_text(config.text_file), config.seq_len),
    "adding": lambda config: AddingTask(config.seq_len),
    "copy": lambda config: CopyTask(config.seq_len),
    "sine": lambda config: SineTask(config.seq_len),
}


def make_task(config: RunConfig) -> Task:
    """The task a configuration names; ConfigError if its data cannot be made."""
    return TASKS[config.task](config)
