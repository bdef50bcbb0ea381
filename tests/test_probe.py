"""The probe against PyTorch's own modules, and snapshots as train() emits them.

The probe runs the layers again with the training path's own cells, so its gates must
be the very numbers training computes, and its h the model's own output; gates and
gradients through time are checked against the textbook equations under autograd, finite
differences through PyTorch's nn.*Cell modules and the model's own backward pass.
"""

from __future__ import annotations

import copy
import json
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers import small_model
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlab import (
    Probe,
    Recurrent,
    RunConfig,
    Snapshot,
    gradients_through_time,
    make_task,
    probe,
    saturation,
    spectral_radius,
    train,
)
from rnnlab.cells import CELLS
from rnnlab.config import ACTIVATION_NAMES, CELL_NAMES
from rnnlab.events import layer_view
from rnnlab.probe import (
    COST_SAMPLES,
    GRADIENT_SHARE,
    MAX_GRADIENT_HISTORY,
    MAX_SNAPSHOT_SHARE,
    SnapshotSchedule,
    heatmap,
    probe_batch,
    snapshot,
)
from rnnlab.steps import STEPS

COMBINATIONS = [(cell, activation) for cell in CELL_NAMES for activation in ACTIVATION_NAMES]
FUSED = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny; on a busy two-core machine a second intra-op thread
    only adds hand-offs that make each operation many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_input(model, batch: int, T: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(batch, T, model.rnn.input_size, generator=generator)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_recomputed_states_equal_the_models_output(cell, activation, layers):
    model, _ = small_model(cell, activation, layers)
    x = random_input(model, batch=3, T=12)
    result = probe(model, x)
    assert isinstance(result, Probe) and len(result.layers) == layers
    for layer in result.layers:
        assert tuple(layer) == CELLS[cell].states
        assert all(t.shape == (3, 12, 8) for t in layer.values())
    with torch.no_grad():
        expected = model.features(x)
    torch.testing.assert_close(result.layers[-1]["h"], expected, rtol=0, atol=1e-5)


def scan_nodes(output: torch.Tensor) -> list:
    """The RecurrentScan nodes in output's autograd graph, first layer first."""
    found, stack = [], [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            if "RecurrentScan" in node.name():
                found.append(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return found[::-1]


@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_the_probe_shows_exactly_the_gates_training_computes(cell, activation):
    model, _ = small_model(cell, activation, 2)
    custom = Recurrent(cell, activation, model.rnn.input_size, 8, 2)  # fused or not
    custom.load_state_dict(model.rnn.state_dict())
    model.rnn, model.fused = custom, False
    x = random_input(model, batch=3, T=12)

    h = model.features(x)  # the training path: one RecurrentScan per layer
    saved = [STEPS[cell](activation, *node.saved_tensors) for node in scan_nodes(h)]
    layers = probe(model, x).layers
    assert len(saved) == len(layers) == 2
    for steps, layer in zip(saved, layers, strict=True):
        for name, values in steps.states().items():  # (T, B, H)
            assert torch.equal(layer[name], values.transpose(0, 1)), name
    assert torch.equal(layers[-1]["h"], h.detach())


@settings(max_examples=15, deadline=None)
@given(
    cell=st.sampled_from(CELL_NAMES),
    activation=st.sampled_from(ACTIVATION_NAMES),
    layers=st.integers(1, 3),
    batch=st.integers(1, 4),
    T=st.integers(1, 20),
    hidden=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_recomputed_states_equal_the_models_output_for_any_shape(
    cell, activation, layers, batch, T, hidden, seed
):
    model, _ = small_model(cell, activation, layers, hidden_size=hidden, seed=seed)
    x = random_input(model, batch, T, seed)
    with torch.no_grad():
        expected = model.features(x)
    torch.testing.assert_close(probe(model, x).layers[-1]["h"], expected, rtol=0, atol=1e-5)


def test_gates_lie_in_their_ranges_and_the_lstm_cell_state_adds_up():
    model, _ = small_model("lstm", "relu", 2)
    layers = probe(model, random_input(model, 2, 10)).layers
    for layer in layers:
        for gate in ("i", "f", "o"):
            assert layer[gate].min() >= 0 and layer[gate].max() <= 1
        assert layer["g"].min() >= 0  # relu candidate
        c_prev = torch.cat([torch.zeros_like(layer["c"][:, :1]), layer["c"][:, :-1]], 1)
        torch.testing.assert_close(layer["c"], layer["f"] * c_prev + layer["i"] * layer["g"])
        torch.testing.assert_close(layer["h"], layer["o"] * layer["c"].relu())


@pytest.mark.parametrize(("cell", "activation"), [("lstm", "tanh"), ("gru", "sigmoid")])
def test_probing_changes_neither_parameters_nor_gradients(cell, activation):
    model, task = small_model(cell, activation, 2)
    x, y = probe_batch(task, size=4)
    task.loss(model(x), y).backward()
    before = {name: (p.detach().clone(), p.grad.clone()) for name, p in model.named_parameters()}
    probe(model, x)
    gradients_through_time(model, x, y, task.loss)
    snapshot(model, task, x, y)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name][0]) and torch.equal(p.grad, before[name][1]), name
        assert p.requires_grad

    fresh, _ = small_model(cell, activation, 2)
    gradients_through_time(fresh, x, y, task.loss)
    assert all(p.grad is None for p in fresh.parameters())


def reference_hidden_gradients(model, x, y, loss, eps=1e-6) -> torch.Tensor:
    """∂L/∂h_t of every layer and step by central differences, in float64, through
    PyTorch's own nn.RNNCell / nn.LSTMCell / nn.GRUCell with the model's weights.

    A perturbation added to h_t of layer k flows on to layer k at t + 1 and to layer
    k + 1 at t, so the difference quotient is the total derivative. (layers, B, T, H).
    """
    rnn, H = model.rnn, model.rnn.hidden_size
    cells = []
    for layer in range(rnn.num_layers):
        size = rnn.input_size if layer == 0 else H
        if model.cell == "rnn":
            cell = nn.RNNCell(size, H, nonlinearity=model.activation)
        else:
            cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[model.cell](size, H)
        cell = cell.double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(rnn, f"{name}_l{layer}"))
        cells.append(cell)
    head = copy.deepcopy(model.head).double()
    B, T = x.shape[:2]

    def loss_with(delta: torch.Tensor) -> float:
        inputs = x
        for layer, cell in enumerate(cells):
            h = c = x.new_zeros(B, H)
            outputs = []
            for t in range(T):
                if model.cell == "lstm":
                    h, c = cell(inputs[:, t], (h, c))
                else:
                    h = cell(inputs[:, t], h)
                h = h + delta[layer, :, t]
                outputs.append(h)
            inputs = torch.stack(outputs, dim=1)
        out = head(inputs if model.every_step else inputs[:, -1])
        return loss(out, y).item()

    delta = x.new_zeros(rnn.num_layers, B, T, H)
    grads = torch.empty_like(delta)
    with torch.no_grad():
        for index in range(delta.numel()):
            flat = delta.view(-1)
            flat[index] = eps
            up = loss_with(delta)
            flat[index] = -eps
            down = loss_with(delta)
            flat[index] = 0.0
            grads.view(-1)[index] = (up - down) / (2 * eps)
    return grads


def textbook_layers(model, x: torch.Tensor, delta: torch.Tensor) -> list[dict]:
    """Every layer's gates and states by the textbook equations, one autograd operation at
    a time, with delta[k, :, t] added to h_t of layer k, so that ∂L/∂delta is ∂L/∂h_t."""
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[model.activation]
    B, T = x.shape[:2]
    layers, inputs = [], x
    for k in range(model.rnn.num_layers):
        w_ih, w_hh, b_ih, b_hh = (
            getattr(model.rnn, f"{name}_l{k}").detach()
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        h = c = x.new_zeros(B, model.rnn.hidden_size)
        steps = []
        for t in range(T):
            xw, gh = F.linear(inputs[:, t], w_ih, b_ih), F.linear(h, w_hh, b_hh)
            if model.cell == "rnn":
                state = {"pre": xw + gh, "h": act(xw + gh)}
            elif model.cell == "lstm":
                i, f, g, o = (xw + gh).chunk(4, dim=-1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), act(g), o.sigmoid()
                c = f * c + i * g
                state = {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * act(c)}
            else:
                (x_r, x_z, x_n), (h_r, h_z, h_n) = xw.chunk(3, dim=-1), gh.chunk(3, dim=-1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                n = act(x_n + r * h_n)
                state = {"r": r, "z": z, "n": n, "h": (1 - z) * n + z * h}
            h = state["h"] = state["h"] + delta[k, :, t]
            steps.append(state)
        layers.append({name: torch.stack([s[name] for s in steps], dim=1) for name in steps[0]})
        inputs = layers[-1]["h"]  # (B, T, H)
    return layers


@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_gates_and_gradients_through_time_equal_autograd_on_the_textbook_equations(
    cell, activation
):
    model, task = small_model(cell, activation, 2, seq_len=6)
    model = model.double()
    x, y = probe_batch(task, size=3)
    x, y = x.double(), y.double()
    delta = x.new_zeros(2, 3, 6, 8, requires_grad=True)  # (layers, B, T, H)
    expected = textbook_layers(model, x, delta)
    (expected_hidden,) = torch.autograd.grad(
        task.loss(model.head(expected[-1]["h"][:, -1]), y), delta
    )

    result = gradients_through_time(model, x, y, task.loss)
    for layer in range(2):
        torch.testing.assert_close(
            result.hidden[layer], expected_hidden[layer], rtol=1e-9, atol=1e-12
        )
        for name, values in result.probe.layers[layer].items():
            torch.testing.assert_close(values, expected[layer][name].detach(), msg=name)


@pytest.mark.parametrize("task", ["adding", "hello"])
@pytest.mark.parametrize(("cell", "activation"), FUSED)
def test_gradients_through_time_equal_finite_differences(cell, activation, task):
    model, task_ = small_model(cell, activation, 2, task=task, hidden_size=3, seq_len=5)
    model = model.double()
    x, y = probe_batch(task_, size=2)
    x = x.double()
    if task == "adding":
        y = y.double()
    result = gradients_through_time(model, x, y, task_.loss)
    expected = reference_hidden_gradients(model, x, y, task_.loss)
    for layer in range(2):
        torch.testing.assert_close(result.hidden[layer], expected[layer], rtol=1e-6, atol=1e-9)
        norms = expected[layer].square().sum((0, 2)).sqrt()  # ‖∂L/∂h_t‖ over batch, units
        torch.testing.assert_close(result.norms[layer], norms, rtol=1e-6, atol=1e-9)
    assert result.loss == pytest.approx(task_.loss(model(x), y).item())


@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_gradients_agree_with_the_models_own_backward_pass(cell, activation):
    model, task = small_model(cell, activation, 2, seq_len=7)
    model = model.double()
    x, y = probe_batch(task, size=3)
    x, y = x.double(), y.double()
    result = gradients_through_time(model, x, y, task.loss)

    reference = copy.deepcopy(model)
    x_leaf = x.clone().requires_grad_()
    task.loss(reference(x_leaf), y).backward()  # the model's own backward, fused or not
    torch.testing.assert_close(result.inputs, x_leaf.grad, rtol=1e-9, atol=1e-12)
    for layer in range(2):
        h = result.probe.layers[layer]["h"]
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # (B, T, H)
        terms = torch.einsum("btg,bth->tgh", result.recurrent[layer], h_prev)  # (T, G·H, H)
        torch.testing.assert_close(
            terms.sum(0), getattr(reference.rnn, f"weight_hh_l{layer}").grad, rtol=1e-9, atol=1e-12
        )
        torch.testing.assert_close(
            result.recurrent[layer].sum((0, 1)),
            getattr(reference.rnn, f"bias_hh_l{layer}").grad,
            rtol=1e-9,
            atol=1e-12,
        )
        torch.testing.assert_close(
            result.contributions[layer], terms.flatten(1).norm(dim=1), rtol=1e-9, atol=1e-12
        )
        assert result.contributions[layer][0] == 0  # h_{-1} = 0


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_spectral_radius_per_gate_block(cell):
    model, _ = small_model(cell, "tanh", 2, init="orthogonal")
    radii = spectral_radius(model)
    blocks = {
        "rnn": ["W_hh"],
        "lstm": ["W_hi", "W_hf", "W_hg", "W_ho"],
        "gru": ["W_hr", "W_hz", "W_hn"],
    }
    assert [list(r) for r in radii] == [blocks[cell]] * 2
    for layer in radii:  # every eigenvalue of an orthogonal matrix has modulus 1
        assert all(value == pytest.approx(1.0, abs=1e-5) for value in layer.values())

    with torch.no_grad():
        weight = model.rnn.weight_hh_l0
        weight.zero_()
        weight[:8].copy_(torch.diag(torch.linspace(-3, 2, 8)))
    assert spectral_radius(model)[0][blocks[cell][0]] == pytest.approx(3.0)


def test_saturation_counts_steps_below_and_above_the_thresholds():
    f = torch.tensor([[[0.05, 0.5], [0.95, 0.5], [0.5, 0.99], [0.09, 0.91]]])  # (1, 4, 2)
    half = torch.full_like(f, 0.5)
    layer = {"i": half, "f": f, "g": half, "o": half, "c": half, "h": half}
    result = saturation(Probe("lstm", "tanh", [layer]))
    assert list(result[0]) == ["i", "f", "o"]
    torch.testing.assert_close(result[0]["f"]["left"], torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(result[0]["f"]["right"], torch.tensor([0.25, 0.5]))
    assert result[0]["i"]["left"].sum() == 0 and result[0]["i"]["right"].sum() == 0
    assert saturation(Probe("rnn", "tanh", [{"pre": half, "h": half}])) == [{}]


def snapshots(events) -> list[Snapshot]:
    return [event for event in events if event.kind == "snapshot"]


def test_train_snapshots_at_the_cadence_and_always_at_the_end():
    config = RunConfig(task="hello", cell="lstm", hidden_size=8, steps=6)
    events = list(train(config, snapshot_every_s=0.0))
    taken = snapshots(events)
    assert [s.step for s in taken] == [1, 2, 3, 4, 5, 6, 6]
    assert events[-2] is taken[-1] and events[-1].kind == "finished"
    assert all(isinstance(s, Snapshot) for s in taken)

    assert snapshots(train(config, snapshot_every_s=None)) == []
    only_final = snapshots(events := list(train(config, snapshot_every_s=math.inf)))
    assert len(only_final) == 1 and events[-2] is only_final[0]
    assert len(snapshots(train(config))) >= 1
    with pytest.raises(ValueError, match="snapshot_every_s"):
        list(train(config, snapshot_every_s=-1.0))


class FakeClocks:
    """A schedule's wall and busy clocks, moved by hand."""

    def __init__(self) -> None:
        self.wall, self.busy = 0.0, 0.0

    def schedule(self, task, every_s: float = 1.0, **options) -> SnapshotSchedule:
        return SnapshotSchedule(
            task, "cpu", every_s, busy=lambda: self.busy, wall=lambda: self.wall, **options
        )


GATES_SHARE = MAX_SNAPSHOT_SHARE - GRADIENT_SHARE


def test_snapshots_wait_longer_when_they_cost_more():
    _, task = small_model("rnn", "tanh")
    clocks = FakeClocks()
    schedule = clocks.schedule(task, every_s=0.5)
    clocks.wall = clocks.busy = 10.0  # 10 s later, and the run computed all that time
    schedule.costs.extend([0.1] * COST_SAMPLES)
    assert schedule.due()
    schedule.costs.extend([1.0] * COST_SAMPLES)  # this slow waits at least 1.0 / its share
    assert 1.0 / GATES_SHARE > 10.0 and not schedule.due()


def test_one_snapshot_paused_by_a_busy_machine_does_not_hold_back_the_next():
    _, task = small_model("rnn", "tanh")
    clocks = FakeClocks()
    schedule = clocks.schedule(task, every_s=0.5)
    clocks.wall, clocks.busy = 10.0, 2.0
    schedule.costs.extend([0.01, 0.01, 0.5])  # the last one was paused half-way
    assert schedule.cost == 0.01 and schedule.due()
    schedule.costs.extend([0.5] * COST_SAMPLES)  # slow every time: it really costs that
    assert not schedule.due()


def test_a_snapshot_costs_its_processor_time_not_the_time_it_was_paused():
    """On a full machine the operating system may pause a run in mid-snapshot: the wall
    and busy clocks run on, the processor time does not, and that is the cost."""
    model, task = small_model("rnn", "tanh")
    clocks, cpu = FakeClocks(), [0.0]

    def paused_snapshot(*args, **kwargs):
        clocks.busy += 0.5  # paused for half a second inside the snapshot
        cpu[0] += 0.002  # of which it computed 2 ms
        return snapshot(*args, **kwargs)

    schedule = clocks.schedule(task, every_s=1.0, cpu=lambda: cpu[0])
    schedule.gradients = {"gradient_step": 0}  # gradients not due: a gates-only snapshot
    schedule.gradients_last = schedule.gradients_last_busy = 0.0
    schedule.gradient_every_s = 1e9
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys.modules["rnnlab.probe"], "snapshot", paused_snapshot)
        schedule.take(model, 1)
    assert schedule.cost == pytest.approx(0.002)
    clocks.wall += 1.0
    clocks.busy += 0.002 / GATES_SHARE
    assert schedule.due()  # not 0.5 s / its share of the run's time later


def test_snapshots_of_interleaved_runs_are_budgeted_on_their_own_time():
    """Ten seconds passed, but this run computed for only 0.2 s of them (others had the
    core): a 0.1 s snapshot must wait for 0.1 / its share of the run's own time."""
    _, task = small_model("rnn", "tanh")
    clocks = FakeClocks()
    schedule = clocks.schedule(task, every_s=0.5)
    clocks.wall, clocks.busy = 10.0, 0.2
    schedule.costs.append(0.1)
    assert not schedule.due()
    clocks.busy = 0.1 / GATES_SHARE
    assert schedule.due()


def test_gradients_are_computed_less_often_than_gates_but_first_and_last():
    model, task = small_model("lstm", "tanh")
    clocks = FakeClocks()
    schedule = clocks.schedule(task, every_s=1.0, gradient_every_s=5.0)
    taken = []
    for step in range(1, 21):
        clocks.wall += 1.0
        clocks.busy += 1.0
        if schedule.due():
            taken.append(schedule.take(model, step))
    taken.append(schedule.take(model, 20, final=True))
    assert len(taken) == 21
    fresh = [fields["gradient_step"] for fields in taken]
    assert fresh[0] == 1 and fresh[-1] == 20
    assert sorted(set(fresh)) == [1, 6, 11, 16, 20]  # every 5 s, and at the end
    assert [step for step, _ in taken[-1]["gradient_history"]] == [1, 6, 11, 16, 20]

    schedule.gradients_costs.extend([1.0] * COST_SAMPLES)  # wait 1.0 / GRADIENT_SHARE busy s
    clocks.wall += 10.0
    clocks.busy += 1.0 / GRADIENT_SHARE - 1.0
    assert schedule.due() and not schedule.gradients_due()
    clocks.busy += 1.0
    assert schedule.gradients_due()


def test_gradient_history_is_thinned_but_covers_the_whole_run():
    model, task = small_model("rnn", "tanh")
    schedule = SnapshotSchedule(task, "cpu", every_s=0.0)
    for step in range(1, 201):
        history = schedule.take(model, step)["gradient_history"]
        assert len(history) <= MAX_GRADIENT_HISTORY
    steps = [step for step, _ in history]
    assert steps[0] == 1 and steps[-1] == 200 and steps == sorted(steps)
    assert len(history) > MAX_GRADIENT_HISTORY // 2


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_quantised_heatmaps_decode_to_the_probes_values(cell):
    model, task = small_model(cell, "tanh", 2, hidden_size=40, seq_len=130)
    x, y = probe_batch(task)
    fields = snapshot(model, task, x, y)
    kept = fields["kept"]
    steps, units = torch.tensor(kept["steps"]), torch.tensor(kept["units"])
    assert len(steps) == 100 and len(units) == 32
    exact = probe(model, x)
    for layer, heatmaps in zip(exact.layers, fields["layers"], strict=True):
        assert tuple(heatmaps) == CELLS[cell].states
        for name, entry in heatmaps.items():
            truth = layer[name][0][steps][:, units]  # (steps, units)
            level = (entry["hi"] - entry["lo"]) / 255
            assert (heatmap(entry, kept) - truth).abs().max() <= level / 2 + 1e-5, name
            if name in CELLS[cell].sigmoid:
                assert (entry["lo"], entry["hi"]) == (0.0, 1.0)
            else:
                assert entry["hi"] == -entry["lo"] == pytest.approx(truth.abs().max().item())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_snapshots_gradients_are_those_through_time_at_their_step(cell):
    model, task = small_model(cell, "tanh", 2, seq_len=130)
    clocks = FakeClocks()
    schedule = clocks.schedule(task, every_s=1.0, gradient_every_s=5.0)
    first = schedule.take(model, 7)
    expected = gradients_through_time(model, schedule.x, schedule.y, task.loss)
    steps = torch.tensor(first["kept"]["steps"])
    assert first["gradient_step"] == 7
    for layer in range(2):
        for field, exact in (
            ("gradient_norms", expected.norms),
            ("gradient_contributions", expected.contributions),
        ):
            got = torch.tensor(first[field][layer], dtype=torch.float64)
            torch.testing.assert_close(got, exact[layer][steps].double(), rtol=1e-3, atol=0)
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(2)  # trained on, but gradients are not due again yet
    clocks.wall += 1.0
    later = schedule.take(model, 8)
    assert later["gradient_step"] == 7 and later["gradient_norms"] == first["gradient_norms"]
    assert later["layers"] != first["layers"]
    assert later["gradient_history"] == [[7, first["gradient_norms"][0]]]


def test_layer_view_is_one_layers_share_of_a_snapshot():
    config = RunConfig(task="adding", cell="gru", hidden_size=8, seq_len=12, steps=2, num_layers=2)
    last = snapshots(train(config, snapshot_every_s=math.inf))[-1]
    view = layer_view(last.to_dict(), 1)
    assert set(view) == {
        "step", "steps", "units", "hidden_size", "seq_len", "layer", "layers", "cell",
        "gates", "gate_means", "saturation", "spectral_radius", "state_norms",
        "gradient_step", "gradient_norms", "gradient_contributions", "predictions",
        "probe_loss",
    }  # fmt: skip
    assert (view["layer"], view["layers"], view["cell"]) == (1, 2, "gru")
    assert (view["hidden_size"], view["seq_len"], view["step"]) == (8, 12, 2)
    assert list(view["gates"]) == ["r", "z", "n", "h"] and view["gates"] == last.layers[1]
    assert list(view["saturation"]) == ["r", "z"] and list(view["spectral_radius"]) == [
        "W_hr", "W_hz", "W_hn"
    ]  # fmt: skip
    assert len(view["state_norms"]) == len(view["gradient_contributions"]) == 12
    assert len(view["gradient_norms"]) == 2
    assert json.loads(json.dumps(view, allow_nan=False)) == view


def test_snapshot_is_plain_json_and_uses_the_same_probe_batch_every_time():
    config = RunConfig(task="text", cell="gru", hidden_size=16, seq_len=20, batch_size=4, steps=3)
    taken = snapshots(train(config, snapshot_every_s=0.0))
    first, last = taken[0].to_dict(), taken[-1].to_dict()
    assert first["kind"] == "snapshot"
    text = json.dumps(last, allow_nan=False)
    assert json.loads(text) == last == json.loads(taken[-1].to_json())
    assert taken[-1].to_json() is taken[-1].to_json()  # encoded once

    assert first["predictions"]["input"] == last["predictions"]["input"]
    assert first["predictions"]["target"] == last["predictions"]["target"]
    assert first["layers"] != last["layers"]  # trained in between
    predictions = last["predictions"]
    assert predictions["kind"] == "next_symbol" and len(predictions["top"]) == 20
    for step in predictions["top"]:
        probabilities = [p for _, p in step]
        assert len(step) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1.0 + 1e-3

    task = make_task(config)
    x, y = probe_batch(task)
    assert "".join(predictions["input"]) == task.decode(x[0].argmax(-1))
    assert "".join(predictions["target"]) == task.decode(y[0])
    assert last["kept"]["sequences"] == 8
    assert list(last["layers"][0]) == ["r", "z", "n", "h"]
    assert list(last["saturation"][0]) == ["r", "z"]
    assert list(last["spectral_radius"][0]) == ["W_hr", "W_hz", "W_hn"]


def test_snapshot_of_the_hello_word_lists_its_characters():
    config = RunConfig(task="hello", cell="rnn", hidden_size=4, steps=1)
    (last,) = snapshots(train(config, snapshot_every_s=math.inf))
    predictions = last.predictions
    assert predictions["input"] == list("hell") and predictions["target"] == list("ello")
    assert {char for step in predictions["top"] for char, _ in step} <= set("helo")


def test_long_and_wide_runs_are_downsampled_and_say_what_was_kept():
    model, task = small_model("lstm", "tanh", 2, hidden_size=100, seq_len=300)
    x, y = probe_batch(task, size=2)
    last = Snapshot(
        step=0, elapsed_s=0.0, gradient_step=0, gradient_history=[], **snapshot(model, task, x, y)
    )
    kept = last.kept
    assert (kept["seq_len"], kept["hidden_size"]) == (300, 100)
    assert len(kept["steps"]) == 100 and kept["steps"][0] == 0 and kept["steps"][-1] == 299
    assert len(kept["units"]) == 32 and kept["units"][0] == 0 and kept["units"][-1] == 99
    assert len(set(kept["steps"])) == 100 and len(set(kept["units"])) == 32
    for layer in last.layers:
        assert list(layer) == ["i", "f", "g", "o", "c", "h"]
        assert all(heatmap(entry, kept).shape == (100, 32) for entry in layer.values())
    for curves in (last.gradient_norms, last.gradient_contributions, last.state_norms):
        assert [len(curve) for curve in curves] == [100, 100]
    assert all(len(gate["left"]) == 32 for gate in last.saturation[1].values())
    assert last.predictions["kind"] == "last_value" and len(last.predictions["predicted"]) == 2
    assert len(json.dumps(last.to_dict(), allow_nan=False)) < 100_000


def test_snapshot_of_a_blown_up_network_is_still_valid_json():
    model, task = small_model("rnn", "relu", hidden_size=4, task="sine", seq_len=30)
    with torch.no_grad():
        model.rnn.weight_hh_l0.fill_(1e30)
    x, y = probe_batch(task)
    fields = snapshot(model, task, x, y)
    json.dumps(fields, allow_nan=False)
    assert fields["probe_loss"] is None
    assert fields["predictions"]["kind"] == "series"
    h = fields["layers"][0]["h"]
    assert h["lo"] == -h["hi"] and torch.isfinite(heatmap(h, fields["kept"])).all()
