import itertools

import pytest
import torch
from torch import nn

from rnnlab.cells import CELLS
from rnnlab.config import RunConfig
from rnnlab.models import FUSED, Recurrent, RecurrentScan, build_model, is_fused
from rnnlab.specs import count_parameters, task_spec
from rnnlab.steps import STEPS
from rnnlab.tasks import make_task

REFERENCES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
COMBINATIONS = list(itertools.product(["rnn", "lstm", "gru"], ["tanh", "sigmoid", "relu"]))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_custom_cells_equal_pytorch_with_copied_weights(cell, num_layers):
    torch.manual_seed(0)
    reference = REFERENCES[cell](5, 7, num_layers, batch_first=True)
    ours = Recurrent(cell, "tanh", 5, 7, num_layers)
    ours.load_state_dict(reference.state_dict())  # same names, same gate order
    x = torch.randn(3, 11, 5, requires_grad=True)

    expected, ours_out = reference(x)[0], ours(x)
    assert torch.allclose(ours_out, expected, atol=1e-5)

    upstream = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, *reference.parameters()], upstream)
    our_grads = torch.autograd.grad(ours_out, [x, *ours.parameters()], upstream)
    for ours_grad, expected_grad in zip(our_grads, expected_grads, strict=True):
        assert torch.allclose(ours_grad, expected_grad, atol=1e-5)


@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_hand_written_backward_matches_finite_differences(cell, activation):
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * 4
    generator = torch.Generator().manual_seed(1)
    xw = torch.randn(5, 2, gates, dtype=torch.float64, generator=generator, requires_grad=True)
    w_hh = torch.randn(gates, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    b_hh = torch.randn(gates, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *inputs: RecurrentScan.apply(*inputs, cell, activation), (xw, w_hh, b_hh)
    )


@pytest.mark.parametrize(("cell", "activation"), COMBINATIONS)
def test_state_dicts_move_between_fused_and_custom(cell, activation):
    custom = Recurrent(cell, activation, 3, 6, 2)
    fused = REFERENCES[cell](3, 6, 2, batch_first=True)
    fused.load_state_dict(custom.state_dict())
    assert custom.state_dict().keys() == fused.state_dict().keys()


def test_fused_path_is_used_where_pytorch_has_it():
    assert {combo for combo in COMBINATIONS if is_fused(*combo)} == {
        ("rnn", "tanh"),
        ("rnn", "relu"),
        ("lstm", "tanh"),
        ("gru", "tanh"),
    }
    assert isinstance(build_model(RunConfig(cell="lstm")).rnn, nn.LSTM)
    assert isinstance(build_model(RunConfig(cell="lstm", activation="relu")).rnn, Recurrent)


def test_build_model_is_seeded_and_leaves_the_global_rng_alone():
    config = RunConfig(task="adding", cell="gru", hidden_size=8, seq_len=10, seed=3)
    before = torch.random.get_rng_state()
    first, second = build_model(config), build_model(config)
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    other = build_model(config.replace(seed=4))
    assert not torch.equal(next(other.parameters()), next(first.parameters()))


def test_initialisation_schemes():
    hidden = 16
    orthogonal = build_model(RunConfig(cell="lstm", hidden_size=hidden, init="orthogonal"))
    for block in orthogonal.rnn.weight_hh_l0.detach().split(hidden):
        assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)
    assert (orthogonal.rnn.bias_hh_l0 == 0).all()

    irnn = build_model(
        RunConfig(cell="rnn", activation="relu", hidden_size=hidden, init="identity")
    )
    assert torch.equal(irnn.rnn.weight_hh_l0.detach(), torch.eye(hidden))

    forget = build_model(RunConfig(cell="lstm", hidden_size=hidden, init="forget_bias"))
    total_bias = (forget.rnn.bias_ih_l0 + forget.rnn.bias_hh_l0).detach()
    assert torch.equal(total_bias[hidden : 2 * hidden], torch.ones(hidden))  # i, f, g, o


def test_every_cell_has_its_time_loop_and_fused_module():
    assert set(STEPS) == set(FUSED) == set(CELLS)


# Every task, and the hello task with 2, 4 and 11 input channels (its word's letters).
SIZED_TASKS = [
    {"task": "hello", "word": "ab"},
    {"task": "hello", "word": "hello"},
    {"task": "hello", "word": "abcdefghijk"},
    {"task": "text"},
    {"task": "adding"},
    {"task": "copy"},
    {"task": "sine"},
]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("settings", SIZED_TASKS, ids=lambda s: "-".join(s.values()))
def test_the_parameter_count_without_torch_is_the_models(cell, settings):
    base = RunConfig(cell=cell, seq_len=12, **settings)
    task = make_task(base)
    spec = task_spec(base)
    for activation, num_layers, hidden_size in itertools.product(
        ["tanh", "sigmoid"], [1, 2, 4], [1, 7]
    ):
        config = base.replace(activation=activation, num_layers=num_layers, hidden_size=hidden_size)
        model = build_model(config, task)
        counted = sum(p.numel() for p in model.parameters())
        assert count_parameters(config, spec) == counted, (activation, num_layers, hidden_size)


@pytest.mark.parametrize("task_name", ["hello", "adding", "copy", "sine", "text"])
def test_heads_match_the_task(task_name):
    config = RunConfig(task=task_name, hidden_size=8, seq_len=12)
    task = make_task(config)
    model = build_model(config, task)
    x, y = task.sample(3, torch.Generator().manual_seed(0))
    output = model(x)
    assert torch.isfinite(task.loss(output, y))
    if task.predicts_every_step:
        assert output.shape == (x.shape[0], x.shape[1], task.output_dim)
    else:
        assert output.shape == (x.shape[0], task.output_dim)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_scan_keeps_its_buffers_as_saved_tensors_that_backward_frees(cell):
    model = Recurrent(cell, "sigmoid", 2, 8)
    out = model(torch.randn(3, 5, 2))
    scan = out.grad_fn.next_functions[0][0]  # the RecurrentScan node under the transpose
    assert vars(scan) == {"cell": cell, "activation": "sigmoid"}  # no tensors on ctx
    assert all(t.shape[:2] == (5, 3) for t in scan.saved_tensors[1:])  # (T, B, ·) buffers
    out.sum().backward()
    with pytest.raises(RuntimeError, match="freed"):
        _ = scan.saved_tensors


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_double_backward_is_refused_with_a_clear_error(cell):
    model = Recurrent(cell, "relu", 2, 4)
    out = model(torch.randn(3, 5, 2))
    (grad,) = torch.autograd.grad(out.square().sum(), model.weight_hh_l0, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice.*once_differentiable"):
        grad.sum().backward()
