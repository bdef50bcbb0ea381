"""The study note's claims that hold on every seed tried (bench/claims.py prints them all).

Measured on fresh models except the last, which takes a few training steps.
"""

from __future__ import annotations

import pytest
import torch

from rnnlab import RunConfig, build_model, gradients_through_time, make_task, probe, train
from rnnlab.probe import probe_batch

T = 50
SEEDS = range(3)
ADDING = dict(task="adding", cell="rnn", seq_len=T, hidden_size=32, batch_size=32)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gradient_ratio(activation: str, seed: int) -> tuple[float, float]:
    """‖∂L/∂h_1‖/‖∂L/∂h_T‖ of a fresh RNN in float64, and ‖W_hh‖₂."""
    config = RunConfig(activation=activation, seed=seed, **ADDING)
    task = make_task(config)
    model = build_model(config, task).double()
    x, y = probe_batch(task)
    norms = gradients_through_time(model, x.double(), y.double(), task.loss).norms[0]
    spectral_norm = torch.linalg.matrix_norm(model.rnn.weight_hh_l0.detach(), ord=2)
    return (norms[0] / norms[-1]).item(), spectral_norm.item()


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_vanish_faster_through_sigmoid_than_through_tanh(seed):
    sigmoid, sigmoid_w = gradient_ratio("sigmoid", seed)
    tanh, tanh_w = gradient_ratio("tanh", seed)
    assert 0 < sigmoid < tanh * 1e-20
    # The loss reads h_T only, so ∂L/∂h_1 = J_2ᵀ…J_Tᵀ ∂L/∂h_T with J_t = diag(act′) W_hh:
    # the ratio is at most (max act′ · ‖W_hh‖₂)^(T-1), max act′ = 1/4 for sigmoid, 1 for tanh.
    assert sigmoid <= (0.25 * sigmoid_w) ** (T - 1)
    assert tanh <= tanh_w ** (T - 1)


def mean_state_norms(init: str, seed: int) -> torch.Tensor:
    config = RunConfig(activation="relu", init=init, seed=seed, **ADDING)
    task = make_task(config)
    x, _ = probe_batch(task)
    return probe(build_model(config, task), x).layers[0]["h"].norm(dim=-1).mean(0)  # (T,)


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_states_grow_over_time_with_identity_recurrence_only(seed):
    identity = mean_state_norms("identity", seed)
    default = mean_state_norms("default", seed)
    assert identity[-1] > 10 * identity[0]
    assert default[-1] < 2 * default[0]


@pytest.mark.parametrize("seed", SEEDS)
def test_identity_relu_rnn_diverges_under_sgd_unless_gradients_are_clipped(seed):
    def status(clip: float) -> str:
        config = RunConfig(
            activation="relu", init="identity", optimizer="sgd", lr=0.1, clip=clip,
            steps=4, eval_every=4, seed=seed, **ADDING,
        )  # fmt: skip
        events = list(train(config, snapshot_every_s=None))
        return events[-1].summary["status"]

    assert status(clip=0.0) == "diverged"
    assert status(clip=1.0) == "completed"
