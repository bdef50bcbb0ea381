"""The worker's compact gate pictures: what a page's live heatmaps are drawn from."""

import base64
import json

import numpy as np
import pytest

from rnnlab.config import RunConfig
from rnnlab.train import train
from rnnlab.worker import VIEW_STEPS, VIEW_UNITS, _spread, view_of_snapshot


def last_snapshot(config: RunConfig) -> dict:
    return [e for e in train(config, snapshot_every_s=0) if e.kind == "snapshot"][-1].to_dict()


def decoded(gate: dict, units: int, steps: int) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(gate["bytes"]), dtype=np.uint8)
    return gate["lo"] + raw.reshape(units, steps) * (gate["hi"] - gate["lo"]) / 255


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_quantised_gates_match_the_snapshot_within_one_level(cell):
    config = RunConfig(task="adding", cell=cell, hidden_size=8, batch_size=4, seq_len=12, steps=3)
    snapshot = last_snapshot(config)
    view = view_of_snapshot(snapshot)
    assert view["step"] == snapshot["step"] == 3
    assert view["steps"] == snapshot["kept"]["steps"] and view["units"] == snapshot["kept"]["units"]
    layer = snapshot["layers"][0]
    assert set(view["layers"][0]) == set(layer)
    for name, gate in view["layers"][0].items():
        values = decoded(gate, len(view["units"]), len(view["steps"]))
        truth = np.array(layer[name], dtype=float).T  # (units, steps)
        level = (gate["hi"] - gate["lo"]) / 255
        assert np.abs(values - truth).max() <= level / 2 + 1e-6, name
        if name in ("i", "f", "o", "r", "z"):
            assert (gate["lo"], gate["hi"]) == (0.0, 1.0)
        else:
            assert gate["hi"] == -gate["lo"] == pytest.approx(np.abs(truth).max(), rel=1e-6)
    json.dumps(view)


def test_long_sequences_and_wide_layers_are_cut_to_what_a_page_shows():
    config = RunConfig(
        task="adding", cell="lstm", hidden_size=64, batch_size=4, seq_len=150, steps=1
    )
    snapshot = last_snapshot(config)
    view = view_of_snapshot(snapshot)
    kept = snapshot["kept"]
    assert len(view["steps"]) == VIEW_STEPS < len(kept["steps"])
    assert len(view["units"]) == VIEW_UNITS < len(kept["units"])
    assert view["steps"][0] == kept["steps"][0] and view["steps"][-1] == kept["steps"][-1]
    gate = view["layers"][0]["f"]
    assert len(base64.b64decode(gate["bytes"])) == VIEW_UNITS * VIEW_STEPS
    assert len(json.dumps(view)) < len(json.dumps(snapshot)) / 8


def test_spread_keeps_the_ends_and_never_repeats():
    assert _spread(5, 10) == [0, 1, 2, 3, 4]
    picked = _spread(1000, 7)
    assert picked[0] == 0 and picked[-1] == 999 and len(picked) == len(set(picked)) == 7


def test_a_value_that_was_not_finite_is_drawn_at_the_bottom_of_its_scale():
    config = RunConfig(task="adding", cell="gru", hidden_size=4, batch_size=4, seq_len=6, steps=1)
    snapshot = last_snapshot(config)
    snapshot["layers"][0]["z"][2][1] = None  # how a snapshot stores NaN and infinities
    gate = view_of_snapshot(snapshot)["layers"][0]["z"]
    units, steps = len(snapshot["kept"]["units"]), len(snapshot["kept"]["steps"])
    assert decoded(gate, units, steps)[1, 2] == gate["lo"] == 0.0
