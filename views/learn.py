"""Learn: the study note's points as small interactive views, each linked to a preset."""

import numpy as np
import pandas as pd
import streamlit as st

from rnnlab.config import GATE_CHUNKS, RunConfig
from rnnlab.specs import HelloSpec, count_parameters
from ui import charts
from ui.i18n import N_, _, ngettext
from ui.text import code_span, markdown_format
from ui.widgets import load_preset


def try_preset(name: str, *, key: str) -> None:
    """A button that loads a preset into the Train page and opens it; `name` is the
    preset's English name (marked with N_), shown translated."""
    if st.button(_("Try it: {name}").format(name=_(name)), icon=":material/play_arrow:", key=key):
        load_preset(name, "train")
        st.switch_page("views/train.py")


def equations(lines: list[tuple[str, str | None]]) -> str:
    """An aligned LaTeX block: each equation with its (translated) words beside it."""
    rows = [
        equation if words is None else rf"{equation} && \text{{{words}}}"
        for equation, words in lines
    ]
    return r"\begin{aligned}" + "\\\\\n".join(rows) + r"\end{aligned}"


st.title(_("Learn: how recurrent networks see a sequence"))

st.header(_("1 · Characters become one-hot vectors"))
word = st.text_input(_("Type a word"), value="hello", max_chars=40, key="learn_word")
if len(word) < 2:
    st.warning(_("Type at least two characters."))
else:
    task = HelloSpec(word)
    one_hot = np.eye(task.input_dim, dtype=int)[task.indices(word[:-1])]  # (T, input_dim)
    table = pd.DataFrame(
        one_hot,
        columns=task.vocab,
        index=[f"X_{t} = {c}" for t, c in enumerate(word[:-1])],
    )
    st.dataframe(table, key="learn_onehot")
    pairs = len(word) - 1
    st.markdown(
        " ".join(
            [
                markdown_format(
                    _("Vocabulary **{vocab}** → `input_dim = {input_dim}`."),
                    vocab=", ".join(task.vocab),
                    input_dim=task.input_dim,
                ),
                ngettext(
                    "Predicting the next character gives {n} input→target pair: {pairs}.",
                    "Predicting the next character gives {n} input→target pairs: {pairs}.",
                    pairs,
                ).format(
                    n=pairs,
                    pairs=", ".join(
                        code_span(f"{a}→{b}") for a, b in zip(word, word[1:], strict=False)
                    ),
                ),
                _(
                    "What the network trains on has the shape `(batch_size, sequence_length, "
                    "input_dim)` = `(1, {steps}, {input_dim})`."
                ).format(steps=pairs, input_dim=task.input_dim),
            ]
        )
    )
    repeated = {a for a, b in zip(word, word[1:], strict=False) if word.count(a) > 1}
    ambiguous = [
        a for a in repeated if len({b for c, b in zip(word, word[1:], strict=False) if c == a}) > 1
    ]
    if ambiguous:
        st.info(
            markdown_format(
                _(
                    "After `{char}` the next character is not always the same: only the "
                    "memory of the earlier characters (the hidden state) can decide."
                ),
                char=ambiguous[0],
            )
        )
try_preset(N_("Hello, RNN"), key="learn_try_hello")

st.header(_("2 · Unrolled in time, stacked in layers"))
left, right = st.columns([1, 3])
with left:
    seq_len = st.slider(_("Sequence length"), 1, 30, 5, key="learn_seq_len")
    layers = st.slider(_("Layers"), 1, 4, 2, key="learn_layers")
    cell = st.radio(_("Cell"), ["RNN", "LSTM", "GRU"], horizontal=True, key="learn_cell")
with right:
    st.plotly_chart(charts.unrolled_figure(seq_len, layers, cell=cell), key="learn_unrolled")
st.caption(
    _(
        "The same cell (the same weights) is applied at every time step and feeds its output "
        "h_t back in. With stacked layers, the hidden states h_0..h_t of layer 1 are the "
        "inputs of layer 2."
    )
)

st.header(_("3 · Shapes and parameter counts"))
hidden = st.slider(_("Hidden size"), 1, 256, 32, key="learn_hidden")
rows = []
task = HelloSpec("hello")
for name, gates in GATE_CHUNKS.items():
    config = RunConfig(task="hello", cell=name, hidden_size=hidden, num_layers=layers)
    rows.append(
        {
            _("cell"): name.upper(),
            _("gate blocks"): gates,
            _("W_ih (layer 1)"): f"({gates}·{hidden}, {task.input_dim})",
            "W_hh": f"({gates}·{hidden}, {hidden})",
            _("parameters (with a 4-way head)"): f"{count_parameters(config, task):,}",
        }
    )
st.dataframe(pd.DataFrame(rows), hide_index=True, key="learn_shapes")
st.caption(
    _(
        "An LSTM has four blocks of weights (input, forget, candidate, output), a GRU three "
        "(reset, update, candidate), a plain RNN one: the same loop, more gates."
    )
)

st.header(_("4 · Activations: why tanh, not relu; why tanh over sigmoid"))
left, right = st.columns(2)
with left:
    st.plotly_chart(charts.activation_figure(False), key="learn_activations")
    st.caption(
        _(
            "sigmoid squashes into 0..1, tanh into −1..1, relu lets large values through "
            "unchanged — and the same weights are applied again at every step, so with relu "
            "the state can grow without bound."
        )
        + " "
        + _(
            "The note says sigmoid outputs −1..1 like tanh, but sigmoid's range is 0..1 "
            "(tanh's is −1..1)."
        )
    )
    try_preset(N_("Why not relu?"), key="learn_try_relu")
with right:
    st.plotly_chart(charts.activation_figure(True), key="learn_derivatives")
    st.caption(
        _(
            "Backpropagation through time multiplies one derivative per step: sigmoid′ is at "
            "most 0.25, tanh′ at most 1, so gradients vanish much faster through sigmoid."
        )
    )
    try_preset(N_("Sigmoid vs tanh: vanishing gradients"), key="learn_try_sigmoid")

st.header(_("5 · LSTM and GRU: gates decide what to keep"))
left, right = st.columns(2)
with left:
    st.markdown(
        _("**LSTM** (gates σ; candidate and output use the chosen activation, tanh by default)")
    )
    st.latex(
        equations(
            [
                (
                    r"i_t &= \sigma(W_{ii}x_t + b_{ii} + W_{hi}h_{t-1} + b_{hi})",
                    _("input gate: how much"),
                ),
                (
                    r"f_t &= \sigma(W_{if}x_t + b_{if} + W_{hf}h_{t-1} + b_{hf})",
                    _("forget gate: 0 forget, 1 keep"),
                ),
                (
                    r"g_t &= \tanh(W_{ig}x_t + b_{ig} + W_{hg}h_{t-1} + b_{hg})",
                    _("candidate: which direction"),
                ),
                (r"o_t &= \sigma(W_{io}x_t + b_{io} + W_{ho}h_{t-1} + b_{ho})", _("output gate")),
                (r"c_t &= f_t \odot c_{t-1} + i_t \odot g_t", None),
                (r"h_t &= o_t \odot \tanh(c_t)", None),
            ]
        )
    )
    try_preset(N_("Why LSTM? long-range memory"), key="learn_try_lstm")
with right:
    st.markdown(_("**GRU** (PyTorch's convention)"))
    st.latex(
        equations(
            [
                (r"r_t &= \sigma(W_{ir}x_t + b_{ir} + W_{hr}h_{t-1} + b_{hr})", _("reset gate")),
                (r"z_t &= \sigma(W_{iz}x_t + b_{iz} + W_{hz}h_{t-1} + b_{hz})", _("update gate")),
                (
                    r"n_t &= \tanh(W_{in}x_t + b_{in} + r_t \odot (W_{hn}h_{t-1} + b_{hn}))",
                    _("candidate"),
                ),
                (r"h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}", None),
            ]
        )
    )
    try_preset(N_("Forget gate at work: copy memory"), key="learn_try_copy")
st.caption(
    _(
        "When the relevant input lies far back in time, a plain RNN stops learning: its "
        "gradient has to pass through one squashing derivative per step. The cell state c_t "
        "of an LSTM is updated by addition, so with f ≈ 1 the gradient flows back unchanged."
    )
)
