"""Which inputs the predictions use, and where the hidden state travels, against references.

The inputs' influence ‖∂ŷ_{t′}/∂x_t‖ is held to autograd on the textbook equations (with
nn.RNN/nn.LSTM/nn.GRU weights) and to central differences on the inputs through the
model's own forward pass, in float64; the PCA paths to numpy's SVD of the centred hidden
states. Then what snapshots carry: shapes, the JSON budget, the axes kept across a run,
and the teaching point itself at small scale (an LSTM trained on adding finds the two
marked steps; a tanh RNN's influence fades within a few steps).
"""

from __future__ import annotations

import json
import math

import helpers
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab import RunConfig, build_model, make_task, train
from rnnlab.config import ACTIVATION_NAMES, CELL_NAMES
from rnnlab.events import INFLUENCE_FLOOR, Snapshot, relative_influence
from rnnlab.presets import PRESETS
from rnnlab.probe import (
    COST_SAMPLES,
    INFLUENCE_MAP_STEPS,
    INFLUENCE_SEQUENCES,
    INFLUENCE_SHARE,
    SnapshotSchedule,
    input_influence,
    probe,
    probe_batch,
    snapshot,
)
from rnnlab.trajectory import PATH_SEQUENCES, REFIT_SHARE, trajectory

COMBINATIONS = [(cell, activation) for cell in CELL_NAMES for activation in ACTIVATION_NAMES]
FUSED = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]
EVERY = 100  # directions enough to follow every output: the exact Jacobian norm


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(cell, activation, layers=2, task="adding", **options):
    """helpers.small_model, two layers of 6 units over 7 steps unless given."""
    options = {"hidden_size": 6, "seq_len": 7, **options}
    return helpers.small_model(cell, activation, layers, task, **options)


def textbook_output(model, x: torch.Tensor) -> torch.Tensor:
    """The model's output by the textbook equations, one autograd operation at a time."""
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[model.activation]
    B, T = x.shape[:2]
    inputs = x
    for k in range(model.rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = (
            getattr(model.rnn, f"{name}_l{k}").detach()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        h = c = x.new_zeros(B, model.rnn.hidden_size)
        hs = []
        for t in range(T):
            xw, gh = F.linear(inputs[:, t], w_ih, b_ih), F.linear(h, w_hh, b_hh)
            if model.cell == "rnn":
                h = act(xw + gh)  # h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
            elif model.cell == "lstm":
                i, f, g, o = (xw + gh).chunk(4, dim=-1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), act(g), o.sigmoid()
                c = f * c + i * g  # c_t = f⊙c_{t-1} + i⊙g
                h = o * act(c)  # h_t = o⊙act(c_t)
            else:
                (x_r, x_z, x_n), (h_r, h_z, h_n) = xw.chunk(3, dim=-1), gh.chunk(3, dim=-1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                n = act(x_n + r * h_n)
                h = (1 - z) * n + z * h  # h_t = (1 − z)⊙n + z⊙h_{t−1}
            hs.append(h)
        inputs = torch.stack(hs, dim=1)  # (B, T, H)
    head = model.head.weight.detach(), model.head.bias.detach()
    return F.linear(inputs if model.every_step else inputs[:, -1], *head)


def jacobian_norms(output_at, x: torch.Tensor, b: int, t_out: int) -> torch.Tensor:
    """‖∂ŷ_{t_out}/∂x_t‖ of sequence b for every t by autograd, ŷ = output_at(x)."""
    x = x.clone().requires_grad_()
    y = output_at(x)
    y = y[b, t_out] if y.dim() == 3 else y[b]
    rows = [torch.autograd.grad(y[k], x, retain_graph=True)[0][b] for k in range(len(y))]
    return torch.stack(rows).square().sum((0, 2)).sqrt()  # (T,)


@pytest.mark.parametrize("task", ["adding", "hello", "copy"])
@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_influence_equals_autograd_on_the_textbook_equations(cell, activation, task):
    model, task_ = small_model(cell, activation, task=task)
    model = model.double()
    x = probe_batch(task_, size=5)[0].double()
    result = input_influence(model, x, directions=EVERY)
    T = x.shape[1]
    assert result.captured == pytest.approx(1.0)
    assert result.last.shape == (min(len(x), INFLUENCE_SEQUENCES), T)
    for b in range(result.last.shape[0]):
        expected = jacobian_norms(lambda v: textbook_output(model, v), x, b, T - 1)
        torch.testing.assert_close(result.last[b], expected, rtol=1e-9, atol=1e-14)
    if task == "adding":
        assert result.map is None and len(result.map_steps) == 0
        return
    assert result.map.shape == (len(result.map_steps), T) and result.map_steps[-1] == T - 1
    for row, t_out in enumerate(result.map_steps.tolist()):
        expected = jacobian_norms(lambda v: textbook_output(model, v), x, 0, t_out)
        torch.testing.assert_close(result.map[row], expected, rtol=1e-9, atol=1e-14)
        assert (result.map[row, t_out + 1 :] == 0).all()  # x_t cannot move an earlier ŷ


@pytest.mark.parametrize("task", ["adding", "sine", "hello"])
@pytest.mark.parametrize(("cell", "activation"), FUSED)
def test_influence_equals_central_differences_on_the_inputs(cell, activation, task):
    model, task_ = small_model(cell, activation, task=task, hidden_size=4, seq_len=6)
    model = model.double()  # nn.RNN / nn.LSTM / nn.GRU themselves
    x = probe_batch(task_, size=3)[0].double()
    result = input_influence(model, x, directions=EVERY)
    B, T, D = x.shape
    eps = 1e-6
    with torch.no_grad():
        columns = torch.empty(B, T, D, *model(x).shape[1:], dtype=torch.float64)
        for b in range(B):
            for t in range(T):
                for d in range(D):
                    up, down = x.clone(), x.clone()
                    up[b, t, d] += eps
                    down[b, t, d] -= eps
                    columns[b, t, d] = (model(up)[b] - model(down)[b]) / (2 * eps)
    if model.every_step:  # columns: (B, T, D, T_out, O)
        last = columns[..., -1, :].square().sum((2, 3)).sqrt()  # (B, T)
        grid = columns[0].square().sum((1, 3)).sqrt().T  # (T_out, T)
        torch.testing.assert_close(result.map, grid[result.map_steps], rtol=1e-6, atol=1e-9)
    else:  # columns: (B, T, D, O)
        last = columns.square().sum((2, 3)).sqrt()
    torch.testing.assert_close(result.last, last[: len(result.last)], rtol=1e-6, atol=1e-9)


def test_influence_reuses_the_forward_pass_and_follows_few_directions_of_a_wide_head():
    model, task = small_model("lstm", "tanh", task="copy", hidden_size=12, seq_len=9)
    x = probe_batch(task)[0]
    exact = input_influence(model, x, directions=EVERY)
    assert exact.directions == 9 and exact.captured == pytest.approx(1.0)  # nine outputs
    few = input_influence(model, x, directions=2)
    assert few.directions == 2 and 0 < few.captured < 1
    assert (few.last <= exact.last * (1 + 1e-5)).all()  # a part of the whole Jacobian
    from rnnlab.probe import _scan

    again = input_influence(model, x, directions=2, layers=_scan(model, x))
    torch.testing.assert_close(again.last, few.last)
    assert len(few.map_steps) == INFLUENCE_MAP_STEPS and few.map_steps[-1] == x.shape[1] - 1


def test_a_tanh_rnns_influence_fades_within_a_few_steps_at_initialisation():
    model, task = small_model("rnn", "tanh", layers=1, hidden_size=32, seq_len=50)
    last = input_influence(model, probe_batch(task)[0]).last  # (4, 50)
    assert (last[:, 0] < 1e-4 * last[:, -1]).all()  # orders of magnitude below t = T − 1
    assert (last[:, -11] < 0.1 * last[:, -1]).all()  # already ten steps back


def test_a_trained_lstm_finds_the_two_marked_steps_of_the_adding_problem():
    """The teaching point at small scale: adding at T = 20, an LSTM trained briefly."""
    config = RunConfig(
        task="adding", cell="lstm", hidden_size=32, batch_size=64, seq_len=20, lr=1e-2,
        clip=1.0, steps=400, seed=0,
    )  # fmt: skip
    taken = [event for event in train(config, snapshot_every_s=math.inf)]
    final = [event for event in taken if event.kind == "snapshot"][-1]
    finished = taken[-1].summary
    assert finished["final_loss"] < 0.02  # baseline 0.167
    task = make_task(config)
    x = probe_batch(task)[0]
    markers = x[:INFLUENCE_SEQUENCES, :, 1] > 0  # (4, 20): the two marked steps per row
    last = torch.tensor(final.influence["last"])  # at every step: T ≤ MAX_STEPS
    top_two = torch.zeros_like(markers).scatter_(1, last.topk(2, dim=1).indices, True)
    found = (top_two == markers).all(1)
    assert found.sum() >= 3, (last, markers)
    assert final.influence["marked"] == [row.nonzero().flatten().tolist() for row in markers]
    assert final.influence["step"] == final.gradient_step == finished["steps"]


def test_snapshots_carry_influence_and_trajectories_of_the_documented_shape():
    config = RunConfig(task="text", cell="gru", hidden_size=16, seq_len=20, num_layers=2,
                       batch_size=4, steps=3)  # fmt: skip
    taken = [e for e in train(config, snapshot_every_s=0.0) if e.kind == "snapshot"]
    last = taken[-1].to_dict()
    assert json.loads(taken[-1].to_json()) == last
    influence = last["influence"]
    assert set(influence) == {
        "step", "seq_len", "steps", "last", "map_steps", "map", "directions", "captured",
        "marked",
    }  # fmt: skip
    assert influence["marked"] is None  # text marks no steps
    assert influence["steps"] == last["kept"]["steps"] and influence["seq_len"] == 20
    assert len(influence["last"]) == INFLUENCE_SEQUENCES
    assert all(len(row) == 20 for row in influence["last"])
    outputs = influence["map_steps"]
    assert outputs[0] == 0 and outputs[-1] == 19 and len(outputs) == INFLUENCE_MAP_STEPS
    assert [len(row) for row in influence["map"]] == list(range(1, len(outputs) + 1))
    assert influence["directions"] == 4 and 0 < influence["captured"] < 1  # 70 outputs

    assert len(last["trajectory"]) == 2
    for entry in last["trajectory"]:
        assert set(entry) == {
            "step", "reference_step", "components", "mean", "explained",
            "reference_explained", "paths",
        }  # fmt: skip
        assert np.shape(entry["components"]) == (2, 16) and len(entry["mean"]) == 16
        assert np.shape(entry["paths"]) == (PATH_SEQUENCES, 20, 2)
        assert 0 < sum(entry["explained"]) <= 1 + 1e-6

    relative = relative_influence(influence["last"][0])
    assert max(relative) == 1.0 and min(relative) >= INFLUENCE_FLOOR
    assert relative_influence([0.0, None]) == [INFLUENCE_FLOOR, None]


@pytest.mark.parametrize("name", ["Hello, RNN", "Why LSTM? long-range memory"])
def test_a_snapshots_influence_fits_in_five_kilobytes(name):
    config = PRESETS[name].config()
    task = make_task(config)
    model = build_model(config, task)
    schedule = SnapshotSchedule(task, "cpu", 1.0)
    fields = schedule.take(model, 1, final=True)
    event = Snapshot(step=1, elapsed_s=0.0, **fields)
    assert len(json.dumps(event.influence, separators=(",", ":"))) <= 5_000
    assert event.influence["step"] == 1


def test_the_paths_are_numpys_principal_components_of_the_centred_states():
    model, task = small_model("lstm", "tanh", layers=2, hidden_size=10, seq_len=15)
    x = probe_batch(task)[0]
    states = [layer["h"] for layer in probe(model, x).layers]
    steps = torch.arange(15)
    entries = trajectory(states, None, 3, steps)
    for h, entry in zip(states, entries, strict=True):
        points = h.reshape(-1, 10).double().numpy()
        centred = points - points.mean(0)
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        components = np.array(entry["components"])
        signs = np.sign((components * vt[:2]).sum(1))  # each component up to its sign
        np.testing.assert_allclose(components, signs[:, None] * vt[:2], atol=1e-4)
        np.testing.assert_allclose(entry["mean"], points.mean(0), atol=1e-4)
        shares = singular**2 / (singular**2).sum()
        np.testing.assert_allclose(entry["explained"], shares[:2], atol=2e-4)
        assert entry["reference_explained"] == entry["explained"]
        expected = (h[:PATH_SEQUENCES].double().numpy() - points.mean(0)) @ vt[:2].T
        reach = np.abs(expected).max()
        np.testing.assert_allclose(
            np.array(entry["paths"]), expected * signs, atol=reach * 2e-3 + 1e-3
        )
        assert entry["reference_step"] == 3


def explained_on(h: torch.Tensor, entry: dict) -> list[float]:
    """Shares of the variance of h: (B, T, H) along an entry's axes, by numpy."""
    points = h.reshape(-1, h.shape[-1]).double().numpy()
    centred = points - points.mean(0)
    along = centred @ np.array(entry["components"]).T
    return list((along**2).sum(0) / (centred**2).sum())


def test_the_axes_stay_from_their_reference_step_until_the_states_leave_their_plane():
    model, task = small_model("gru", "tanh", layers=1, hidden_size=8, seq_len=12)
    x = probe_batch(task)[0]
    steps = torch.arange(12)
    first = trajectory([probe(model, x).layers[0]["h"]], None, 1, steps)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(1.01)  # a little training
    h = probe(model, x).layers[0]["h"]
    second = trajectory([h], first, 2, steps)
    assert second[0]["reference_step"] == 1
    assert second[0]["components"] == first[0]["components"]
    assert second[0]["mean"] == first[0]["mean"]
    mean, axes = (
        torch.tensor(first[0][key], dtype=torch.float64) for key in ("mean", "components")
    )
    expected = (h[:PATH_SEQUENCES].double() - mean) @ axes.T  # on the first snapshot's axes
    torch.testing.assert_close(
        torch.tensor(second[0]["paths"], dtype=torch.float64),
        expected,
        atol=2e-3 * expected.abs().max(),
        rtol=0,
    )

    moved = [torch.randn(*h.shape, generator=torch.Generator().manual_seed(1)) * 3]
    moved[0][..., :2] = 0  # states where the old axes see almost nothing
    third = trajectory(moved, second, 9, steps)
    assert sum(second[0]["explained"]) >= REFIT_SHARE * sum(first[0]["explained"])
    assert sum(explained_on(moved[0], second[0])) < REFIT_SHARE * sum(first[0]["explained"])
    assert third[0]["reference_step"] == 9

    blown = [torch.full_like(h, math.nan)]
    assert trajectory(blown, third, 10, steps) == third  # nothing to fit: the axes stay


def test_a_schedule_keeps_the_axes_from_snapshot_to_snapshot():
    model, task = small_model("lstm", "tanh", layers=1, hidden_size=8, seq_len=12)
    schedule = SnapshotSchedule(task, "cpu", every_s=0.0)
    first = schedule.take(model, 1)["trajectory"]
    with torch.no_grad():
        model.rnn.weight_ih_l0.mul_(1.01)
    second = schedule.take(model, 2)["trajectory"]
    assert first[0]["reference_step"] == second[0]["reference_step"] == 1
    assert second[0]["paths"] != first[0]["paths"]


def test_influence_is_computed_only_while_it_costs_a_tenth_of_the_snapshots():
    model, task = small_model("lstm", "tanh", layers=1, hidden_size=8, seq_len=12)
    clock = {"wall": 0.0, "cpu": 0.0}
    schedule = SnapshotSchedule(
        task, "cpu", every_s=1.0, gradient_every_s=1.0,
        busy=lambda: clock["wall"], wall=lambda: clock["wall"], cpu=lambda: clock["cpu"],
    )  # fmt: skip
    first = schedule.take(model, 1)
    assert first["influence"]["step"] == 1  # the first snapshot has it
    schedule.influence_costs.extend([1.0] * COST_SAMPLES)  # with influence: 1 s
    schedule.plain_gradients_costs.extend([0.5] * COST_SAMPLES)  # without: 0.5 s
    schedule.spent_since_influence = 0.0
    assert not schedule.influence_due()
    schedule.spent_since_influence = 0.5 * (1 - INFLUENCE_SHARE) / INFLUENCE_SHARE
    assert schedule.influence_due()  # the 0.5 s it adds is a tenth of all snapshots cost

    schedule.spent_since_influence = 0.0
    clock["wall"] += 1e6
    later = schedule.take(model, 2)  # fresh gradients, but influence not due: carried
    assert later["gradient_step"] == 2 and later["influence"]["step"] == 1
    assert later["trajectory"][0]["step"] == 2  # paths come with every gradient snapshot
    clock["wall"] += 0.5  # not yet time for gradients again: both carried
    carried = schedule.take(model, 3)
    assert carried["gradient_step"] == 2 and carried["trajectory"][0]["step"] == 2
    final = schedule.take(model, 4, final=True)
    assert final["influence"]["step"] == 4  # the final snapshot always has it


def test_snapshot_without_the_new_pictures_and_a_blown_up_network_stay_valid_json():
    model, task = small_model("rnn", "relu", layers=1, hidden_size=4, task="sine", seq_len=30)
    x, y = probe_batch(task)
    plain = snapshot(model, task, x, y, influence=False, trajectories=False)
    assert "influence" not in plain and "trajectory" not in plain
    with torch.no_grad():
        model.rnn.weight_hh_l0.fill_(1e30)
    fields = snapshot(model, task, x, y)
    json.dumps(fields, allow_nan=False)
    assert fields["trajectory"] == [None]
    assert all(value is None or math.isfinite(value) for value in fields["influence"]["last"][0])
