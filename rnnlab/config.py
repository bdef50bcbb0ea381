"""RunConfig: every setting of one training run, validated when it is built.

Each field carries its allowed range or choices in its metadata, so the CLI, the URL
parser and the dashboard's sliders all read the same table.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .cells import CELLS

TASK_NAMES = ("hello", "text", "adding", "copy", "sine")
CELL_NAMES = tuple(CELLS)
ACTIVATION_NAMES = ("tanh", "sigmoid", "relu")
OPTIMIZER_NAMES = ("adam", "sgd")
INIT_NAMES = ("default", "orthogonal", "identity", "forget_bias")
DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")

GATE_CHUNKS = {name: spec.gate_chunks for name, spec in CELLS.items()}

# A run estimated to need more floating-point work than this is refused: about ten
# minutes of a two-core laptop, and it would hold a shared worker for as long.
MAX_TRAINING_FLOPS = 8e13
# Activations kept for backpropagation through time, per step.
MAX_ACTIVATION_BYTES = 2 * 1024**3


class ConfigError(ValueError):
    """A setting is out of range, of the wrong type, or the run would be too large."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _choice(default: str, choices: tuple[str, ...], help: str) -> Any:
    return field(default=default, metadata={"choices": choices, "help": help})


def _range(default: float, lo: float, hi: float, help: str) -> Any:
    return field(default=default, metadata={"range": (lo, hi), "help": help})


@dataclass(frozen=True)
class RunConfig:
    """One training run. Build it with keywords; an invalid value raises ConfigError."""

    task: str = _choice("hello", TASK_NAMES, "what the network learns")
    cell: str = _choice("lstm", CELL_NAMES, "recurrent cell type")
    activation: str = _choice(
        "tanh", ACTIVATION_NAMES, "RNN non-linearity; LSTM/GRU candidate (gates stay sigmoid)"
    )
    hidden_size: int = _range(32, 1, 512, "units per layer")
    num_layers: int = _range(1, 1, 4, "stacked recurrent layers")
    batch_size: int = _range(32, 1, 512, "sequences per training step")
    seq_len: int = _range(
        50, 1, 1000, "time steps per sequence (copy: the delay T; hello: set by the word)"
    )
    lr: float = _range(3e-3, 1e-6, 10.0, "learning rate")
    optimizer: str = _choice("adam", OPTIMIZER_NAMES, "optimizer")
    steps: int = _range(500, 1, 200_000, "training steps")
    clip: float = _range(1.0, 0.0, 1000.0, "gradient-norm clipping threshold; 0 = off")
    init: str = _choice(
        "default",
        INIT_NAMES,
        "weight initialisation: PyTorch default, orthogonal recurrent weights, "
        "identity recurrent weights (rnn), or forget-gate bias 1 (lstm)",
    )
    seed: int = _range(0, 0, 2**31 - 1, "seed for weights and data")
    device: str = _choice("auto", DEVICE_NAMES, "auto picks cuda, then mps, then cpu")
    word: str = field(default="hello", metadata={"help": "the word of the hello task"})
    text_file: str = field(
        default="", metadata={"help": "UTF-8 .txt for the text task; empty = bundled text"}
    )
    eval_every: int = _range(0, 0, 100_000, "held-out evaluation period; 0 = auto")
    stop_when_solved: bool = field(
        default=False, metadata={"help": "stop as soon as the held-out check says solved"}
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _checked(f, getattr(self, f.name)))
        self._check_combinations()
        self._check_cost()

    def _check_combinations(self) -> None:
        if self.init == "identity" and self.cell != "rnn":
            raise ConfigError(
                f"init='identity' is for rnn cells (got cell={self.cell!r}); "
                "use 'orthogonal' or 'default'",
                "init",
            )
        if self.init == "forget_bias" and self.cell != "lstm":
            raise ConfigError(
                f"init='forget_bias' is for lstm cells (got cell={self.cell!r}); "
                "use 'orthogonal' or 'default'",
                "init",
            )
        word = self.word
        if not 2 <= len(word) <= 40 or not word.isprintable():
            raise ConfigError(f"word must be 2 to 40 printable characters, got {word!r}", "word")

    def time_steps(self) -> int:
        """Length of the sequences the network actually sees."""
        if self.task == "hello":
            return len(self.word) - 1
        if self.task == "copy":
            return self.seq_len + 20  # 10 symbols, T blanks less one, delimiter, 10 blanks
        return self.seq_len

    def sequences_per_step(self) -> int:
        """The batch actually trained on: hello trains on its one word."""
        return 1 if self.task == "hello" else self.batch_size

    def estimated_flops(self) -> float:
        """Multiply-adds x 2 for forward and backward over the whole run (weights only)."""
        gates = GATE_CHUNKS[self.cell] * self.hidden_size
        per_token = sum(
            gates * (self.hidden_size + (self.hidden_size if layer else 64))
            for layer in range(self.num_layers)
        )
        return 6.0 * per_token * self.sequences_per_step() * self.time_steps() * self.steps

    def _check_cost(self) -> None:
        flops = self.estimated_flops()
        if flops > MAX_TRAINING_FLOPS:
            raise ConfigError(
                f"this run needs about {flops / 1e12:.0f} TFLOP, more than the "
                f"{MAX_TRAINING_FLOPS / 1e12:.0f} TFLOP allowed; lower steps, hidden_size, "
                "seq_len, batch_size or num_layers",
                "steps",
            )
        saved = (
            4
            * self.sequences_per_step()
            * self.time_steps()
            * self.num_layers
            * self.hidden_size
            * (GATE_CHUNKS[self.cell] + 3)
        )
        if saved > MAX_ACTIVATION_BYTES:
            raise ConfigError(
                f"one step would keep {saved / 2**30:.1f} GiB of activations; lower "
                "batch_size, seq_len, hidden_size or num_layers",
                "batch_size",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_strings(self) -> dict[str, str]:
        """Flat dict of strings (URL query parameters, CLI); from_strings inverts it."""
        return {k: _to_string(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> RunConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}", unknown[0])
        return cls(**{k: _parse(known[k], v) for k, v in values.items()})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def field_spec(name: str) -> dict[str, Any]:
    """The metadata of one field: its 'range' or 'choices', and 'help'."""
    for f in dataclasses.fields(RunConfig):
        if f.name == name:
            return dict(f.metadata, default=f.default, type=f.type)
    raise KeyError(name)


def check_field(name: str, value: Any) -> Any:
    """One setting's value, parsed from text if it is text and checked against the field's
    type and limits alone (not against the other settings); ConfigError as RunConfig raises."""
    for f in dataclasses.fields(RunConfig):
        if f.name == name:
            return _checked(f, _parse(f, value))
    raise ConfigError(f"unknown setting {name!r}", name)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(f: dataclasses.Field, text: Any) -> Any:
    if not isinstance(text, str):
        return text
    if f.type == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise ConfigError(f"{f.name} must be true or false, got {text!r}", f.name)
    if f.type == "int":
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{f.name} must be a whole number, got {text!r}", f.name) from None
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(f"{f.name} must be a whole number, got {text!r}", f.name)
        return int(number)
    if f.type == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{f.name} must be a number, got {text!r}", f.name) from None
    return text


def _checked(f: dataclasses.Field, value: Any) -> Any:
    name = f.name
    if f.type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}", name)
        return value
    if f.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{name} must be a whole number, got {value!r}", name)
    elif f.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}", name)
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{name} must be a finite number, got {value!r}", name)
    elif not isinstance(value, str):
        raise ConfigError(f"{name} must be text, got {value!r}", name)

    if "range" in f.metadata:
        lo, hi = f.metadata["range"]
        if not lo <= value <= hi:
            raise ConfigError(f"{name}={value!r} is out of range; allowed {lo:g} to {hi:g}", name)
    if "choices" in f.metadata and value not in f.metadata["choices"]:
        allowed = ", ".join(f.metadata["choices"])
        raise ConfigError(f"{name}={value!r} is not one of: {allowed}", name)
    return value
