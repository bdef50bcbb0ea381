"""Named experiments: each sets a RunConfig to demonstrate one point of the study note.

A preset's name is its key (in the dashboard's session and links); names and texts are
marked with N_ for the dashboard's translation catalogue, which translates them where shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._text import N_
from .config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str
    teaches: str  # what to look for, one or two sentences
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self) -> RunConfig:
        return RunConfig(**self.settings)


PRESETS = {
    preset.name: preset
    for preset in [
        Preset(
            N_("Hello, RNN"),
            N_(
                "The note's example: four characters one-hot encoded, four next-character "
                "pairs. After the first 'l' the answer is 'l', after the second it is 'o', "
                "and only the hidden state's memory of what came before can tell them apart. "
                "Accuracy reaches 1 (all four right) within the first few dozen steps."
            ),
            dict(task="hello", word="hello", cell="rnn", hidden_size=16, lr=1e-2, steps=300),
        ),
        Preset(
            N_("Why LSTM? long-range memory"),
            N_(
                "The adding problem at T = 100: two marked numbers far apart must be summed. "
                "Always answering 1.0 scores MSE 0.167; this LSTM drops below 0.01 within its "
                "3,000 steps (at step 1,500 and 2,280 on two seeds we measured). Switch the "
                "cell to rnn and watch it stay at the baseline."
            ),
            dict(
                task="adding",
                cell="lstm",
                hidden_size=64,
                batch_size=64,
                seq_len=100,
                lr=3e-3,
                clip=1.0,
                steps=3000,
                stop_when_solved=True,
            ),
        ),
        Preset(
            N_("Sigmoid vs tanh: vanishing gradients"),
            N_(
                "sigmoid′ is at most 0.25 and tanh′ at most 1, so ‖∂L/∂h_t‖ shrinks faster "
                "going back through sigmoid steps. Compare the gradient-through-time chart "
                "with activation tanh."
            ),
            dict(
                task="adding",
                cell="rnn",
                activation="sigmoid",
                hidden_size=32,
                batch_size=32,
                seq_len=50,
                lr=3e-3,
                steps=600,
            ),
        ),
        Preset(
            N_("Why not relu?"),
            N_(
                "The same recurrent weights multiply the state at every step and relu does "
                "not squash it, so states and gradients can blow up: the first gradient's norm "
                "is already in the hundreds or thousands, and after one update the loss is NaN or "
                "astronomical, so this run diverges at step 2. A learning rate 10 times "
                "lower diverges too; turn clipping on (1.0) and it trains."
            ),
            dict(
                task="adding",
                cell="rnn",
                activation="relu",
                init="identity",
                hidden_size=64,
                batch_size=32,
                seq_len=100,
                lr=0.01,
                optimizer="sgd",
                clip=0.0,
                steps=600,
            ),
        ),
        Preset(
            N_("Forget gate at work: copy memory"),
            N_(
                "Ten symbols must be held for 30 time steps. Watch the forget gate's "
                "heatmap: at the start every unit sits near 0.73; within a few hundred steps "
                "half to two thirds of the units keep f above 0.9 through the whole wait "
                "(rows that stay bright), while about one in six closes below 0.5 (dark "
                "rows). The memory is kept by those open units, not by the gate as a "
                "whole. Recall itself takes far longer: after these 2,000 steps its "
                "accuracy is still about 0.16, against 1 in 8 by chance."
            ),
            dict(
                task="copy",
                cell="lstm",
                hidden_size=64,
                batch_size=64,
                seq_len=30,
                lr=3e-3,
                clip=1.0,
                init="forget_bias",
                steps=2000,
            ),
        ),
        Preset(
            N_("Character language model"),
            N_(
                "An LSTM learns to spell Genesis one character at a time; bits per char fall "
                "from the no-memory baseline as it picks up words."
            ),
            dict(
                task="text",
                cell="lstm",
                hidden_size=128,
                batch_size=32,
                seq_len=64,
                lr=3e-3,
                clip=1.0,
                steps=1500,
            ),
        ),
        Preset(
            N_("Forecast a noisy sine"),
            N_(
                "Predict the next value of a sum of three sines; the naive forecast "
                "'repeat the last value' is the baseline line."
            ),
            dict(task="sine", cell="gru", hidden_size=32, batch_size=32, seq_len=60, steps=800),
        ),
    ]
}
