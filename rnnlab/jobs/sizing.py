"""How long one training step of a run takes on this machine, and how much memory the
run holds: estimated before it is admitted, so that no run holds a shared worker for
seconds at a time, and none takes more memory than the container has.

Step time is a small model, fitted once per server start by timing a few real steps
(rnnlab.worker.calibrate, in the fork server every worker is forked from):

    step_s = a · T · layers + b · flops + c · parameters + d · gate values

the cells' per-time-step overhead (it dominates small models), the matrix products,
the optimizer's update, and the elementwise work of the gates. Memory comes in two
parts: what a run keeps between its steps (weights, gradients, Adam's two moments, its
held-out data and objects), and what one step needs on top while it runs (the
activations kept for backpropagation through time). A worker steps one run at a time,
so its runs need the sum of the first and the largest of the second. The factors are
measured on this engine (bench/bench_sizing.py); estimates err on the high side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..config import GATE_CHUNKS, RunConfig
from ..specs import count_parameters
from .settings import positive_float_from_env

# The longest step a shared worker may spend on one run: every other run of that worker
# waits for it, and a page's chart stops for as long. RNNLAB_MAX_STEP_S changes it (a
# server of one's own may allow more).
MAX_STEP_S = positive_float_from_env("RNNLAB_MAX_STEP_S") or 1.0

# Measured per-run memory beyond a warm worker's (bench/bench_sizing.py): a step's
# activations about 2.5 times what the formula counts (workspaces, the loss's graph);
# kept, 24 bytes per parameter (weights, gradients, two Adam moments, the clip's
# buffers), the held-out set as float32, and a fixed part for the run's own objects
# (twenty runs side by side in one worker kept 0.19 MiB each for hello, 1.2 MiB each
# for adding with T = 100 and h = 64; these estimates say 1.0 and 2.6).
ACTIVATION_FACTOR = 2.5
BYTES_PER_PARAMETER = 24
RUN_BYTES = 2**20
HELD_OUT_SEQUENCES = 1000  # the largest held-out set a task keeps

# Input widths at most, per task (the text task's vocabulary is capped at 256), and the
# tasks whose network answers at every step rather than at the last.
_INPUTS = {"adding": 2, "copy": 10, "text": 256, "hello": 40}
_OUTPUTS = {"adding": 1, "copy": 9, "text": 256, "hello": 40}
_EVERY_STEP = frozenset({"copy", "text", "hello"})


@dataclass(frozen=True)
class Calibration:
    """Seconds per unit of each term of the step-time model (step_terms)."""

    per_step_layer_s: float
    per_flop_s: float
    per_parameter_s: float
    per_element_s: float
    measured: bool = True


# Until a worker has measured this machine: a slow laptop core, so nothing too large
# slips in while the pool starts.
UNMEASURED = Calibration(
    per_step_layer_s=2e-5,
    per_flop_s=1e-10,
    per_parameter_s=2e-8,
    per_element_s=1e-8,
    measured=False,
)


@dataclass(frozen=True)
class Estimate:
    step_s: float
    kept_bytes: int  # between steps
    step_bytes: int  # on top, while one of its steps runs

    @property
    def memory_bytes(self) -> int:
        """The most the run holds at once, alone."""
        return self.kept_bytes + self.step_bytes


def input_width(config: RunConfig) -> int:
    if config.task == "hello":
        return len(set(config.word))
    return _INPUTS.get(config.task, 256)


def output_width(config: RunConfig) -> int:
    if config.task == "hello":
        return len(set(config.word))
    return _OUTPUTS.get(config.task, 256)


def answers(config: RunConfig) -> int:
    """Outputs the head computes in one step: every step's, or the last one's."""
    every = config.task in _EVERY_STEP
    return config.sequences_per_step() * (config.time_steps() if every else 1)


class _Widths(NamedTuple):
    """A task's input and output widths, as rnnlab.specs.count_parameters reads them."""

    input_dim: int
    output_dim: int


def parameters(config: RunConfig) -> int:
    """Trainable parameters (rnnlab.specs.count_parameters), at the task's widest: the
    text task's vocabulary is not read to admit a run."""
    return count_parameters(config, _Widths(input_width(config), output_width(config)))


def step_flops(config: RunConfig) -> float:
    """Multiply-adds × 2, forward and backward, of one training step: the recurrent
    layers and the head."""
    head = 6.0 * answers(config) * config.hidden_size * output_width(config)
    return config.estimated_flops() / config.steps + head


def activation_bytes(config: RunConfig) -> int:
    """What one step keeps for backpropagation through time (float32)."""
    return (
        4
        * config.sequences_per_step()
        * config.time_steps()
        * config.num_layers
        * config.hidden_size
        * (GATE_CHUNKS[config.cell] + 3)
    )


def step_terms(config: RunConfig) -> tuple[float, float, float, float]:
    """What one training step does, term by term: time steps × layers, floating-point
    operations, parameters to update, and gate values computed (and kept)."""
    elements = activation_bytes(config) / 4 + answers(config) * output_width(config)
    return (
        float(config.time_steps() * config.num_layers),
        step_flops(config),
        float(parameters(config)),
        float(elements),
    )


def estimate(config: RunConfig, calibration: Calibration = UNMEASURED) -> Estimate:
    per_unit = (
        calibration.per_step_layer_s,
        calibration.per_flop_s,
        calibration.per_parameter_s,
        calibration.per_element_s,
    )
    step_s = sum(c * t for c, t in zip(per_unit, step_terms(config), strict=True))
    held_out = (
        4 * HELD_OUT_SEQUENCES * config.time_steps() * (input_width(config) + output_width(config))
    )
    kept = BYTES_PER_PARAMETER * parameters(config) + held_out + RUN_BYTES
    return Estimate(
        step_s=step_s,
        kept_bytes=int(kept),
        step_bytes=int(ACTIVATION_FACTOR * activation_bytes(config)),
    )


# The settings that make a step longer or a run larger, in the order a message names them.
_SHRINKABLE = ("hidden_size", "batch_size", "seq_len", "num_layers")


def too_large(config: RunConfig, calibration: Calibration, memory_bytes: int | None) -> str | None:
    """Why `config` may not run on this server, naming the setting to lower and the
    largest value of it that would do; None if it may. `memory_bytes` is the most one
    run may hold (None: no limit)."""
    guess = estimate(config, calibration)
    if guess.step_s > MAX_STEP_S:
        problem = (
            f"one training step would take about {_seconds(guess.step_s)} on this server "
            f"(at most {MAX_STEP_S:g} s, so that the runs sharing its workers keep moving)"
        )
    elif memory_bytes is not None and guess.memory_bytes > memory_bytes:
        problem = (
            f"this run would need about {guess.memory_bytes / 2**20:.0f} MB of memory "
            f"(at most {memory_bytes / 2**20:.0f} MB per run on this server)"
        )
    else:
        return None

    def fits(candidate: RunConfig) -> bool:
        smaller = estimate(candidate, calibration)
        memory_ok = memory_bytes is None or smaller.memory_bytes <= memory_bytes
        return smaller.step_s <= MAX_STEP_S and memory_ok

    for name in sorted(_SHRINKABLE, key=lambda n: -_relative(config, n)):
        if name == "seq_len" and config.task == "hello":
            continue
        largest = _largest_fitting(config, name, fits)
        if largest is not None:
            return f"{problem}; lower {name} to {largest} or less"
    return f"{problem}; lower hidden_size, batch_size, seq_len or num_layers"


def _relative(config: RunConfig, name: str) -> float:
    """How far a setting is above its default, as a ratio: the first one to lower."""
    default = RunConfig.__dataclass_fields__[name].default
    return getattr(config, name) / default


def _largest_fitting(config: RunConfig, name: str, fits) -> int | None:
    """The largest value of `name` below the current one at which the run fits."""
    low, high = 1, getattr(config, name) - 1
    if high < 1 or not fits(_replaced(config, name, low)):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(_replaced(config, name, middle)):
            low = middle
        else:
            high = middle - 1
    return low


def _replaced(config: RunConfig, name: str, value: int) -> RunConfig:
    return config.replace(**{name: value})


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
