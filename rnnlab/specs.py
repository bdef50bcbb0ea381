"""Each task and its network as numbers and words, before any data is drawn and without
PyTorch: sizes, metric, chance level, solved rule, parameter count.

`task_spec(config)` is what the dashboard's server shows of a run's task (the shapes line,
the parameter count, the loss chart's baseline). rnnlab.tasks builds each task's data and
loss on top of these classes (`HelloTask(HelloSpec, ...)`), so training and the server
read the same numbers. One is known only with the data: the sine task's chance level is
measured on its held-out sequences by rnnlab.tasks.SineTask, and is None here.
Metric names, baseline labels and solved rules are marked with N_ for the dashboard's
translation catalogue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from ._text import N_
from .cells import CELLS
from .config import ConfigError, RunConfig
from .text import MAX_VOCAB, UNKNOWN_CHAR, read_task_text


class TaskSpec:
    """What every task states about itself; see the subclasses for the numbers."""

    name: str
    input_dim: int
    output_dim: int
    seq_len: int  # time steps the network sees
    predicts_every_step = True  # False: one prediction from the last step
    metric_name: str
    higher_is_better: bool
    baseline: float | None  # chance-level held-out loss
    baseline_label: str
    metric_baseline: float | None
    solved_rule = N_("no solved criterion")

    def is_solved(self, loss: float, metric: float) -> bool:
        return False


class CharSpec(TaskSpec):
    """Next-character prediction over a vocabulary of characters, one-hot encoded."""

    metric_name = N_("accuracy")
    higher_is_better = True

    def __init__(self, vocab: list[str]):
        self.vocab = vocab
        self.index = {ch: i for i, ch in enumerate(vocab)}
        self.input_dim = self.output_dim = len(vocab)

    def indices(self, text: str) -> list[int]:
        """Each character's place in the vocabulary (the one-hot position); a character
        outside it counts as UNKNOWN_CHAR."""
        unknown = self.index.get(UNKNOWN_CHAR, 0)
        return [self.index.get(ch, unknown) for ch in text]


class HelloSpec(CharSpec):
    """The study note's example: predict each next character of one word.

    "hello" has the vocabulary h, e, l, o (input_dim 4) and four input->target pairs
    h->e, e->l, l->l, l->o; after "l" only memory of what came before decides.
    """

    name = "hello"
    baseline_label = N_("uniform guess")
    solved_rule = N_("every next character of the word predicted right")

    def __init__(self, word: str = "hello"):
        super().__init__(list(dict.fromkeys(word)))
        self.word = word
        self.seq_len = len(word) - 1
        self.baseline = math.log(len(self.vocab))
        self.metric_baseline = 1.0 / len(self.vocab)

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric >= 1.0


class TextSpec(CharSpec):
    """Character-level language modelling on a text: the last 10 % is held out.

    The vocabulary is the MAX_VOCAB - 1 most common characters, and UNKNOWN_CHAR for the
    rest if there are more. The baseline is the entropy of the training part's character
    frequencies: a model without memory.
    """

    name = "text"
    metric_name = N_("bits per char")
    higher_is_better = False
    baseline_label = N_("character frequencies (no memory)")

    def __init__(self, text: str, seq_len: int):
        counts = Counter(text)
        vocab = sorted(ch for ch, _ in counts.most_common(MAX_VOCAB - 1))
        if len(counts) >= MAX_VOCAB:
            vocab.append(UNKNOWN_CHAR)
        super().__init__(vocab)
        self.seq_len = seq_len
        needed = 10 * (seq_len + 1)
        if len(text) < needed:
            raise ConfigError(
                f"the text has {len(text)} characters; seq_len={seq_len} needs at least "
                f"{needed}. Lower seq_len or use a longer text",
                "seq_len",
            )
        self.split = int(len(text) * 0.9)  # characters before the held-out part
        frequencies = Counter(self.indices(text[: self.split])).values()
        total = sum(frequencies)
        self.baseline = -sum(n / total * math.log(n / total) for n in frequencies)  # nats
        self.metric_baseline = self.baseline / math.log(2)


class AddingSpec(TaskSpec):
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

    def __init__(self, seq_len: int):
        if seq_len < 2:
            raise ConfigError("the adding task needs seq_len of at least 2", "seq_len")
        self.seq_len = seq_len

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric < 0.01


class CopySpec(TaskSpec):
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

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric >= 0.99


class SineSpec(TaskSpec):
    """Forecast the next value of a noisy sum of three sines, at every step.

    Each sequence draws its own amplitudes, frequencies and phases. The naive forecast
    "the next value equals this one" sets the baseline, measured on the held-out
    sequences (rnnlab.tasks.SineTask; None until then); solved means a held-out MSE under
    half of it.
    """

    name = "sine"
    input_dim = 1
    output_dim = 1
    metric_name = N_("MSE")
    higher_is_better = False
    baseline = metric_baseline = None
    baseline_label = N_("repeat the last value")
    solved_rule = N_("held-out MSE below half the naive forecast's")

    def __init__(self, seq_len: int):
        if seq_len < 2:
            raise ConfigError("the sine task needs seq_len of at least 2", "seq_len")
        self.seq_len = seq_len

    def is_solved(self, loss: float, metric: float) -> bool:
        return metric < 0.5 * self.baseline


TASK_SPECS: dict[str, Callable[[RunConfig], TaskSpec]] = {
    "hello": lambda config: HelloSpec(config.word),
    "text": lambda config: TextSpec(read_task_text(config.text_file), config.seq_len),
    "adding": lambda config: AddingSpec(config.seq_len),
    "copy": lambda config: CopySpec(config.seq_len),
    "sine": lambda config: SineSpec(config.seq_len),
}


def task_spec(config: RunConfig) -> TaskSpec:
    """The spec of the task a configuration names; ConfigError if it cannot be made (a
    text too short for seq_len, say), as rnnlab.tasks.make_task would raise."""
    return TASK_SPECS[config.task](config)


def count_parameters(config: RunConfig, task: TaskSpec) -> int:
    """Trainable parameters of the network `config` builds for `task`: each recurrent
    layer as PyTorch allocates it (CellSpec.layer_parameters), and the linear head."""
    hidden = config.hidden_size
    cell = CELLS[config.cell]
    layers = sum(
        cell.layer_parameters(task.input_dim if layer == 0 else hidden, hidden)
        for layer in range(config.num_layers)
    )
    head = (hidden + 1) * task.output_dim  # weight (output, H) and bias (output)
    return layers + head
