"""Learn: the study note's points as small interactive views, each linked to a preset."""

import numpy as np
import pandas as pd
import streamlit as st

from rnnlab.cells import CELLS
from rnnlab.config import GATE_CHUNKS, RunConfig
from rnnlab.specs import HelloSpec, count_parameters
from ui import charts
from ui.glossary import TERMS
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

st.header(_("1 · Characters become one-hot vectors"), anchor="one-hot")
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
        markdown_format(
            _(
                "Written out, `{word}` is X_0..X_{last}, with hidden states h_0..h_{last}, "
                "as the note draws it. To predict the next character, the last one, "
                "`{char}`, is only ever a target, since nothing follows it; so the network "
                "reads {steps} steps, X_0..X_{end}: the rows of the table."
            ),
            word=word,
            last=len(word) - 1,
            char=word[-1],
            steps=pairs,
            end=pairs - 1,
        )
    )
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

st.header(_("2 · Unrolled in time, stacked in layers"), anchor="unrolled")
steps_of_word = min(max(len(word) - 1, 1), 30)
controls, folded, unrolled = st.columns([1, 1, 3])
with controls:
    seq_len = st.slider(_("Sequence length"), 1, 30, steps_of_word, key="learn_seq_len")
    layers = st.slider(_("Layers"), 1, 4, 2, key="learn_layers")
    cell = st.radio(_("Cell"), ["RNN", "LSTM", "GRU"], horizontal=True, key="learn_cell")
with folded:
    st.plotly_chart(charts.folded_figure(layers, cell=cell), key="learn_folded")
with unrolled:
    st.plotly_chart(charts.unrolled_figure(seq_len, layers, cell=cell), key="learn_unrolled")
st.caption(
    _(
        "Left, the note's folded picture: one cell whose output h_t comes back as its own "
        "input at the next step. Right, the same cell unrolled, one copy per time step (it "
        "starts at the typed word's input steps). The same weights are applied at every "
        "time step. With stacked layers, the hidden states h_0..h_t of layer 1 are the "
        "inputs of layer 2."
    )
)

st.header(_("3 · Shapes and parameter counts"), anchor="parameters")
shape_word = word if len(word) >= 2 else "hello"
task = HelloSpec(shape_word)
left, right = st.columns(2)
with left:
    hidden = st.slider(_("Hidden size"), 1, 256, 32, key="learn_hidden")
with right:
    depth = st.slider(_("Layers"), 1, 4, 1, key="learn_param_layers")
st.latex(
    r"\text{" + _("per layer") + r"} = \text{gates} \times (H \cdot \text{in} + H \cdot H + 2H)"
    r"\qquad \text{head} = (H + 1) \cdot \text{out}"
)
rows = []
for name, gates in GATE_CHUNKS.items():
    config = RunConfig(
        task="hello", word=shape_word, cell=name, hidden_size=hidden, num_layers=depth
    )
    first = CELLS[name].layer_parameters(task.input_dim, hidden)
    row = {
        _("cell"): name.upper(),
        _("gate blocks"): gates,
        _("W_ih, layer 1"): f"({gates}·{hidden}, {task.input_dim})",
    }
    if depth > 1:
        row[_("W_ih, layers 2–{depth}").format(depth=depth)] = f"({gates}·{hidden}, {hidden})"
    row["W_hh"] = f"({gates}·{hidden}, {hidden})"
    row[_("layer 1, PyTorch")] = (
        f"{gates} × ({hidden}·{task.input_dim} + {hidden}·{hidden} + 2·{hidden}) = {first:,}"
    )
    keras = first if name == "gru" else first - gates * hidden  # Keras's GRU: two biases
    row[_("layer 1, Keras")] = f"{keras:,}"
    row[
        ngettext(
            "total: {n} layer + {out}-way head",
            "total: {n} layers + {out}-way head",
            depth,
        ).format(n=depth, out=task.output_dim)
    ] = f"{count_parameters(config, task):,}"
    rows.append(row)
st.dataframe(pd.DataFrame(rows), hide_index=True, key="learn_shapes")
lstm_first = CELLS["lstm"].layer_parameters(task.input_dim, hidden)
st.caption(
    " ".join(
        [
            markdown_format(
                _(
                    "`in` is what the layer reads: input_dim = {input_dim} (the typed word's "
                    "letters) for layer 1, H for the layers above; `out` = {out} next-character "
                    "scores. An LSTM has four blocks of weights (input, forget, candidate, "
                    "output), a GRU three (reset, update, candidate), a plain RNN one: the "
                    "same loop, more gates."
                ),
                input_dim=task.input_dim,
                out=task.output_dim,
            ),
            _(
                "PyTorch gives every gate block two bias vectors (b_ih and b_hh), hence 2H. "
                "Keras's SimpleRNN and LSTM keep one, gates × (H·in + H·H + H): {keras:,} "
                "instead of {torch:,} for this LSTM's layer 1. Keras's GRU keeps two by "
                "default (reset_after=True), as PyTorch does."
            ).format(keras=lstm_first - 4 * hidden, torch=lstm_first),
        ]
    )
)

st.header(_("4 · Activations: why tanh, not relu; why tanh over sigmoid"), anchor="activations")
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
    st.markdown(
        _(
            "relu's trade-off: its derivative is 1 wherever it is active, so relu itself "
            "does not shrink the gradient. But nothing bounds the state, and the same W_hh "
            "multiplies it at every step, so states and gradients can grow step after step "
            "until they blow up (the exploding gradient). Clipping the gradient keeps such a "
            "run going."
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
    st.markdown(
        _(
            "tanh vanishes too, only more slowly: each step multiplies the gradient by tanh′ "
            "and by W_hh. In fresh RNNs on the adding problem (T = 50, median of 5 seeds), "
            "‖∂L/∂h_1‖ / ‖∂L/∂h_50‖ is about 10⁻¹¹ with tanh, a factor of 0.6 per step, "
            "against 10⁻⁴⁰ with sigmoid, 0.15 per step."
        )
    )
    try_preset(N_("Sigmoid vs tanh: vanishing gradients"), key="learn_try_sigmoid")

st.header(_("5 · LSTM and GRU: gates decide what to keep"), anchor="gates")
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
                    _("input gate — how much of the candidate to write"),
                ),
                (
                    r"f_t &= \sigma(W_{if}x_t + b_{if} + W_{hf}h_{t-1} + b_{hf})",
                    _("forget gate — 0 forget the past, 1 keep it"),
                ),
                (
                    r"g_t &= \tanh(W_{ig}x_t + b_{ig} + W_{hg}h_{t-1} + b_{hg})",
                    _("candidate — which direction to write"),
                ),
                (
                    r"o_t &= \sigma(W_{io}x_t + b_{io} + W_{ho}h_{t-1} + b_{ho})",
                    _("output gate — how much of the cell state to show"),
                ),
                (
                    r"c_t &= f_t \odot c_{t-1} + i_t \odot g_t",
                    _("cell state — the long-term memory"),
                ),
                (r"h_t &= o_t \odot \tanh(c_t)", _("hidden state — what the cell shows")),
            ]
        )
    )
    st.markdown(
        _(
            "The note's input gate, sigmoid for how much and tanh for which direction, is "
            "the product $i_t \\odot g_t$ here: the gate $i_t$ (0..1) times the candidate "
            "$g_t$ (−1..1), added to the cell state."
        )
    )
    st.markdown(
        _(
            "The cell state $c_t$ is the long-term memory: from step to step it is only "
            "scaled by $f_t$ and added to, never squashed, and nothing outside the cell reads "
            "it. The hidden state $h_t$ is what the cell shows: the output gate $o_t$ picks "
            "how much of $\\tanh(c_t)$ goes out, to the next step's gates, to the next layer "
            "and to the prediction. A plain RNN and a GRU carry only $h_t$."
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
        "When the relevant input lies far back in time (a long-range dependency), a plain "
        "RNN stops learning: its gradient passes through one activation derivative and one "
        "W_hh per step. Along the cell state an LSTM's gradient is multiplied only by f_t at "
        "each step, so the units whose forget gate stays near 1 carry it back almost "
        "unchanged."
    )
)

st.header(_("Glossary · Korean and English"), anchor="glossary")
st.dataframe(
    pd.DataFrame(
        [[term.korean, term.english, term.symbol] for term in TERMS],
        columns=["한국어", "English", _("symbol")],
    ),
    hide_index=True,
    key="learn_glossary",
)
st.caption(
    _(
        "One Korean term per concept, as this app uses them; the English is what papers "
        "and PyTorch's documentation say. This section's address ends in #glossary."
    )
)
