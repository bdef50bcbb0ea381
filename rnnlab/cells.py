"""What tells one recurrent cell from another, in one record per cell, without PyTorch.

`CELLS[cell]` is the one description of each cell (`CellSpec`): its gate chunks in
PyTorch's order, which of them are sigmoids, the states the probe records per step and
the blocks of its recurrent weights. Config, engine, probe and dashboard all read it; the
dashboard's server, which never trains, reads only this. The arithmetic lives in
`rnnlab.steps` (our time loop, `STEPS[cell]`) and `rnnlab.models` (PyTorch's fused
module, `FUSED[cell]`), keyed by the same names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    """Everything that tells one recurrent cell from another, in one record.

    `chunks` are the row blocks of weight_ih/weight_hh in PyTorch's order (gate_size =
    len(chunks) × hidden_size); `sigmoid` the chunks squashed into 0..1 (the gates whose
    saturation is measured); `states` what the probe records per step, in that order;
    `blocks` the names of weight_hh's H×H blocks in PyTorch's documentation.
    """

    name: str
    chunks: tuple[str, ...]
    sigmoid: tuple[str, ...]
    states: tuple[str, ...]
    blocks: tuple[str, ...]

    @property
    def gate_chunks(self) -> int:
        return len(self.chunks)

    def layer_parameters(self, input_size: int, hidden_size: int) -> int:
        """Parameters of one layer as PyTorch's RNNBase allocates them: weight_ih
        (G·H, input), weight_hh (G·H, H) and the two biases bias_ih, bias_hh (G·H)."""
        gate_size = self.gate_chunks * hidden_size
        return gate_size * (input_size + hidden_size + 2)

    def to_dict(self) -> dict[str, object]:
        """What a browser view needs to draw this cell's pictures."""
        return {"name": self.name, "states": list(self.states), "sigmoid": list(self.sigmoid)}


CELLS: dict[str, CellSpec] = {
    "rnn": CellSpec("rnn", chunks=("pre",), sigmoid=(), states=("pre", "h"), blocks=("W_hh",)),
    "lstm": CellSpec(
        "lstm",
        chunks=("i", "f", "g", "o"),
        sigmoid=("i", "f", "o"),
        states=("i", "f", "g", "o", "c", "h"),
        blocks=("W_hi", "W_hf", "W_hg", "W_ho"),
    ),
    "gru": CellSpec(
        "gru",
        chunks=("r", "z", "n"),
        sigmoid=("r", "z"),
        states=("r", "z", "n", "h"),
        blocks=("W_hr", "W_hz", "W_hn"),
    ),
}
