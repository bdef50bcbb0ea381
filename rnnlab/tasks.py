"""The tasks a run can learn, each producing inputs shaped (batch, seq_len, input_dim).

A task owns its data, its loss, its metric, its chance-level baseline (in loss units)
and, where it has one, its "solved" criterion. Data come from the generator the caller
passes, so a seed fixes them; the held-out set depends only on the task's settings,
so runs with different seeds are scored on the same sequences. Metric names, baseline
labels and solved rules are marked with N_ for the dashboard's translation catalogue.
"""

from __future__ import annotations

import codecs
import math
import unicodedata
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import charset_normalizer
import torch
import torch.nn.functional as F
from torch import Tensor

from ._text import N_
from .config import ConfigError, RunConfig

HELD_OUT_SEED = 20_161_013
MAX_TEXT_BYTES = 5 * 1024 * 1024
MAX_VOCAB = 256
UNKNOWN_CHAR = "\ufffd"


class Task:
    """What every task provides; see the subclasses for the data."""

    name: str
    input_dim: int
    output_dim: int
    seq_len: int  # time steps the network sees
    predicts_every_step = True  # False: one prediction from the last step
    metric_name: str
    higher_is_better: bool
    baseline: float  # chance-level held-out loss
    baseline_label: str
    metric_baseline: float

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

    def is_solved(self, loss: float, metric: float) -> bool:
        return False

    def evaluate(
        self, model: torch.nn.Module, device: torch.device, sequences: int | None = None
    ) -> tuple[float, float]:
        """Held-out loss and metric of `model`: on the whole held-out set, or its first
        `sequences`. The model is left in training mode."""
        x, y = self.held_out()
        if sequences is not None:
            x, y = x[:sequences], y[:sequences]
        model.eval()
        with torch.no_grad():
            output = model(x.to(device))
            y = y.to(device)
            loss, metric = self.loss(output, y).item(), self.metric(output, y)
        model.train()
        return loss, metric

    solved_rule = N_("no solved criterion")


class _CharTask(Task):
    """Next-character prediction over a vocabulary of characters, one-hot encoded."""

    metric_name = N_("accuracy")
    higher_is_better = True

    def __init__(self, vocab: list[str]):
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}
        self.input_dim = self.output_dim = len(vocab)

    def encode(self, text: str) -> Tensor:
        unknown = self.index.get(UNKNOWN_CHAR, 0)
        return torch.tensor([self.index.get(ch, unknown) for ch in text], dtype=torch.long)

    def decode(self, indices: Tensor | list[int]) -> str:
        return "".join(self.vocab[int(i)] for i in indices)

    def one_hot(self, indices: Tensor) -> Tensor:
        return F.one_hot(indices, len(self.vocab)).float()

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))

    def metric(self, output: Tensor, target: Tensor) -> float:
        return (output.argmax(-1) == target).float().mean().item()


class HelloTask(_CharTask):
    """The study note's example: predict each next character of one word.

    "hello" has the vocabulary h, e, l, o (input_dim 4) and four input->target pairs
    h->e, e->l, l->l, l->o; after "l" only memory of what came before decides.
    """

    name = "hello"
    baseline_label = N_("uniform guess")
    solved_rule = N_("every next character of the word predicted right")
    held_out_size = 1

    def __init__(self, word: str = "hello"):
        super().__init__(list(dict.fromkeys(word)))
        self.word = word
        self.seq_len = len(word) - 1
        self.baseline = math.log(len(self.vocab))
        self.metric_baseline = 1.0 / len(self.vocab)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The word itself: a batch of one sequence, however large batch_size is."""
        indices = self.encode(self.word)
        x = self.one_hot(indices[:-1]).unsqueeze(0)  # (1, T, V)
        y = indices[1:].unsqueeze(0)  # (1, T)
        return x, y

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric >= 1.0


class TextTask(_CharTask):
    """Character-level language modelling on a text: the last 10 % is held out."""

    name = "text"
    metric_name = N_("bits per char")
    higher_is_better = False
    baseline_label = N_("character frequencies (no memory)")
    held_out_size = 64

    def __init__(self, text: str, seq_len: int):
        counts = Counter(text)
        vocab = sorted(ch for ch, _ in counts.most_common(MAX_VOCAB - 1))
        if len(counts) >= MAX_VOCAB:
            vocab.append(UNKNOWN_CHAR)
        super().__init__(vocab)
        self.seq_len = seq_len
        data = self.encode(text)
        needed = 10 * (seq_len + 1)
        if len(data) < needed:
            raise ConfigError(
                f"the text has {len(data)} characters; seq_len={seq_len} needs at least "
                f"{needed}. Lower seq_len or use a longer text",
                "seq_len",
            )
        split = int(len(data) * 0.9)
        self.train_data, self.held_out_data = data[:split], data[split:]
        frequencies = torch.bincount(self.train_data, minlength=len(vocab)).float()
        p = frequencies[frequencies > 0] / frequencies.sum()
        self.baseline = -(p * p.log()).sum().item()  # unigram entropy, nats per char
        self.metric_baseline = self.baseline / math.log(2)

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


class AddingTask(Task):
    """The adding problem: sum the two marked values of a long sequence.

    Channel 0 holds values from U[0, 1], channel 1 marks one position in each half.
    Always answering 1.0 scores MSE = Var(a + b) = 2/12 = 0.167.
    """

    name = "adding"
    input_dim = 2
    output_dim = 1
    predicts_every_step = False
    metric_name = N_("MSE")
    higher_is_better = False
    baseline = 1.0 / 6.0
    metric_baseline = 1.0 / 6.0
    baseline_label = N_("always answer 1.0")
    solved_rule = N_("held-out MSE below 0.01")
    held_out_size = 1000

    def __init__(self, seq_len: int):
        if seq_len < 2:
            raise ConfigError("the adding task needs seq_len of at least 2", "seq_len")
        self.seq_len = seq_len

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

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric < 0.01


class CopyTask(Task):
    """Copy memory: see 10 symbols, wait T steps, reproduce them after a delimiter.

    Input symbols: 0 blank, 1..8 data, 9 delimiter; the sequence is 10 data symbols,
    T - 1 blanks, the delimiter, 10 blanks (T + 20 steps). The target is blank until the
    last 10 steps, which must repeat the data. Answering blank, then guessing uniformly
    among the 8 symbols, costs 10 ln 8 / (T + 20) nats per step: the baseline. Solved when
    at least 99 % of the recalled symbols on the held-out set are right.
    """

    name = "copy"
    input_dim = 10
    output_dim = 9
    metric_name = N_("recall accuracy")
    higher_is_better = True
    metric_baseline = 1.0 / 8.0
    baseline_label = N_("blanks, then a uniform guess")
    solved_rule = N_("at least 99 % of the recalled symbols right on held-out sequences")
    memory = 10

    def __init__(self, seq_len: int):
        self.delay = seq_len
        self.seq_len = seq_len + 2 * self.memory
        self.baseline = self.memory * math.log(8) / self.seq_len

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

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric >= 0.99


class SineTask(Task):
    """Forecast the next value of a noisy sum of three sines, at every step.

    Each sequence draws its own amplitudes, frequencies and phases. The naive
    forecast "the next value equals this one" sets the baseline; solved means a
    held-out MSE under half of it.
    """

    name = "sine"
    input_dim = 1
    output_dim = 1
    metric_name = N_("MSE")
    higher_is_better = False
    baseline_label = N_("repeat the last value")
    solved_rule = N_("held-out MSE below half the naive forecast's")
    noise = 0.05
    held_out_size = 512

    def __init__(self, seq_len: int):
        if seq_len < 2:
            raise ConfigError("the sine task needs seq_len of at least 2", "seq_len")
        self.seq_len = seq_len
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

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric < 0.5 * self.baseline


def bundled_text() -> str:
    """Genesis 1-47, King James Version (public domain), about 186 KB."""
    return resources.files("rnnlab").joinpath("data/genesis.txt").read_text("utf-8")


class DecodedText(NamedTuple):
    """A text file's text, and the encoding it was read in ('UTF-8', 'CP949', 'UTF-16', ...)."""

    text: str
    encoding: str


# Byte-order marks, longest first (UTF-32-LE's begins with UTF-16-LE's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)
_ENCODING_NAMES = {"utf_8_sig": "UTF-8", "utf_8": "UTF-8", "ascii": "UTF-8"}
# Characters no text file has many of: controls (but tab, newlines and form feed),
# unassigned code points, private use and lone surrogates.
_NOT_TEXT_CATEGORIES = frozenset({"Cc", "Cn", "Co", "Cs"})
_WHITESPACE_CONTROLS = frozenset("\t\n\v\f\r")


def decode_text(data: bytes) -> DecodedText:
    """Bytes of an uploaded or given .txt to text, and the encoding it was in.

    A byte-order mark decides (UTF-8, UTF-16, UTF-32); without one, UTF-8 if the bytes are
    valid UTF-8, else what charset-normalizer finds most likely (a Korean file saved on
    Windows is often CP949). Binary data, an encoding that cannot be told, or a file too
    large: ConfigError saying what is wrong.
    """
    if len(data) > MAX_TEXT_BYTES:
        raise ConfigError(
            f"the text file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{MAX_TEXT_BYTES / 2**20:.0f} MB",
            "text_file",
        )
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        if b"\x00" in data[:8192]:
            raise _not_text("the file looks binary, not text")
        try:
            data.decode("utf_8")
            encoding = "utf_8"
        except UnicodeDecodeError:
            encoding = _detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        reason = f"the file is not valid {_encoding_name(encoding)} (bad byte at {error.start})"
        raise _not_text(reason) from None
    if not text.strip():
        raise ConfigError("the text file is empty", "text_file")
    if _looks_binary(text[:65536]):
        raise _not_text("the file looks binary, not text")
    return DecodedText(text, _encoding_name(encoding))


def _detect_encoding(data: bytes) -> str:
    """The most likely encoding of text that is not UTF-8, by charset-normalizer.

    Korean is tried again on its own, more leniently: a short CP949 text that begins with
    a syllable EUC-KR lacks (똠) reads as too chaotic to the general detection.
    """
    best = (
        charset_normalizer.from_bytes(data).best()
        or charset_normalizer.from_bytes(data, cp_isolation=["cp949"], threshold=0.4).best()
    )
    if best is None:
        raise _not_text("the file looks binary, or its encoding cannot be told")
    return best.encoding


def _looks_binary(sample: str) -> bool:
    """More than 1 % of the characters are ones no text has (see _NOT_TEXT_CATEGORIES)."""
    odd = sum(
        unicodedata.category(ch) in _NOT_TEXT_CATEGORIES and ch not in _WHITESPACE_CONTROLS
        for ch in sample
    )
    return odd > len(sample) // 100


def _encoding_name(codec: str) -> str:
    """Python's codec name as people write it: utf_16 -> UTF-16, cp949 -> CP949."""
    return _ENCODING_NAMES.get(codec, codec.upper().replace("_", "-"))


def _not_text(reason: str) -> ConfigError:
    return ConfigError(
        f"{reason}; give a .txt file (UTF-8, UTF-16 or a local encoding such as CP949)",
        "text_file",
    )


def read_text_file(path: str | Path) -> str:
    """The text of a .txt file in any encoding decode_text reads; ConfigError if not."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        message = f"cannot read text file {str(path)!r}: {error.strerror}"
        raise ConfigError(message, "text_file") from None
    return decode_text(data).text


def _text_task(config: RunConfig) -> Task:
    text = read_text_file(config.text_file) if config.text_file else bundled_text()
    return TextTask(text, config.seq_len)


TASKS = {
    "hello": lambda config: HelloTask(config.word),
    "text": _text_task,
    "adding": lambda config: AddingTask(config.seq_len),
    "copy": lambda config: CopyTask(config.seq_len),
    "sine": lambda config: SineTask(config.seq_len),
}


def make_task(config: RunConfig) -> Task:
    """The task a configuration names; ConfigError if its data cannot be made."""
    return TASKS[config.task](config)
