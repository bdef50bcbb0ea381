"""The study note's claims, and what the presets and Learn say will happen, measured on every
seed tried at a small scale (bench/claims.py prints the full-scale figures).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rnnlab import (
    RunConfig,
    build_model,
    gradients_through_time,
    load_model,
    make_task,
    probe,
    train,
)
from rnnlab.presets import PRESETS
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


@pytest.mark.parametrize("seed", SEEDS)
def test_tanh_vanishes_too_at_the_per_step_factors_learn_quotes(seed):
    # Learn: "about 10⁻¹¹ with tanh, a factor of 0.6 per step, against 10⁻⁴⁰ with sigmoid,
    # 0.15 per step" (medians of bench/claims.py's five seeds; here each of three).
    sigmoid, _ = gradient_ratio("sigmoid", seed)
    tanh, _ = gradient_ratio("tanh", seed)
    assert 0.5 < tanh ** (1 / (T - 1)) < 0.7
    assert 0.1 < sigmoid ** (1 / (T - 1)) < 0.2


def preset(name: str, **changes) -> RunConfig:
    return replace(PRESETS[name].config(), **changes)


def summary_of(config: RunConfig) -> dict:
    return list(train(config, snapshot_every_s=None))[-1].summary


def test_the_hello_preset_gets_every_pair_right_within_a_few_dozen_steps():
    for seed in SEEDS:
        summary = summary_of(preset("Hello, RNN", steps=60, seed=seed))
        assert summary["solved_at_step"] is not None and summary["solved_at_step"] <= 60, seed


@pytest.mark.parametrize("seed", SEEDS)
def test_the_relu_preset_diverges_at_step_2_even_at_a_tenth_of_the_rate_but_not_clipped(seed):
    for lr in (0.01, 0.001):
        config = preset("Why not relu?", steps=5, eval_every=5, lr=lr, seed=seed)
        events = list(train(config, snapshot_every_s=None))
        first_step = next(event for event in events if event.kind == "step")
        assert first_step.grad_norm > 500, "the first gradient norm is in the hundreds or more"
        summary = events[-1].summary
        assert (summary["status"], summary["steps"]) == ("diverged", 1), lr
    clipped = summary_of(preset("Why not relu?", steps=5, eval_every=5, clip=1.0, seed=seed))
    assert clipped["status"] == "completed"


def test_the_copy_preset_keeps_some_forget_gates_open_through_the_wait_not_all():
    # The preset at a small scale (hidden 32, batch 32, 150 steps); bench/claims.py runs it
    # whole: 34-43 of 64 units open after 2,000 steps, recall still near chance.
    config = preset(
        "Forget gate at work: copy memory", hidden_size=32, batch_size=32, steps=150,
        eval_every=150, seed=0,
    )  # fmt: skip
    task = make_task(config)
    x, _ = probe_batch(task)
    wait = slice(task.memory, task.memory + config.seq_len)  # the blanks between

    def forget_per_unit(model) -> torch.Tensor:
        return probe(model, x).layers[0]["f"][:, wait].mean((0, 1))  # (H,)

    fresh = forget_per_unit(build_model(config, task))
    assert ((fresh > 0.6) & (fresh < 0.85)).all(), "forget-gate bias 1: every unit near 0.73"
    weights = next(e for e in train(config, snapshot_every_s=None) if e.kind == "weights")
    trained = forget_per_unit(load_model(weights.data)[0])
    open_units = int((trained > 0.9).sum())
    assert 32 // 3 <= open_units <= 0.85 * 32, open_units
