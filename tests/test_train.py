import itertools
import json
import math
import threading

import pytest

from rnnlab import Evaluation, Finished, RunConfig, Started, Step, run, train
from rnnlab.tasks import Task

TINY = dict(task="adding", hidden_size=8, batch_size=8, seq_len=10, steps=5)


def losses(config: RunConfig) -> list[float]:
    return [event.loss for event in train(config) if isinstance(event, Step)]


@pytest.mark.parametrize(
    ("cell", "activation"),
    list(itertools.product(["rnn", "lstm", "gru"], ["tanh", "sigmoid", "relu"])),
)
def test_every_cell_and_activation_trains_to_a_finite_loss(cell, activation):
    summary = run(RunConfig(**TINY, cell=cell, activation=activation, num_layers=2))
    assert summary["status"] == "completed"
    assert summary["steps"] == 5
    assert math.isfinite(summary["final_loss"])


def test_event_stream_shape():
    events = list(train(RunConfig(**TINY, eval_every=2)))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    assert events[0].input_shape == (8, 10, 2)
    steps = [event.step for event in events if isinstance(event, Step)]
    assert steps == [1, 2, 3, 4, 5]
    assert [event.step for event in events if isinstance(event, Evaluation)] == [2, 4, 5]
    json.dumps([event.to_dict() for event in events])  # every event serialises


def test_hello_is_solved_by_an_rnn_within_300_steps():
    config = RunConfig(task="hello", cell="rnn", hidden_size=16, lr=1e-2, steps=300)
    summary = run(config)
    assert summary["solved"] is True
    assert summary["metric"] == 1.0
    assert summary["solved_at_step"] <= 300
    assert summary["final_loss"] < 0.1 * summary["baseline"]


def test_stop_when_solved_stops_at_the_solving_evaluation():
    config = RunConfig(
        task="hello", cell="gru", hidden_size=16, lr=1e-2, steps=2000, stop_when_solved=True
    )
    summary = run(config)
    assert summary["solved"] and summary["steps"] == summary["solved_at_step"] < 2000


def test_same_seed_same_losses_other_seed_other_losses():
    config = RunConfig(**{**TINY, "steps": 20}, cell="lstm", activation="relu")
    assert losses(config) == losses(config)
    assert losses(config) != losses(config.replace(seed=1))


def test_two_runs_training_at_once_in_threads_match_a_run_alone():
    configs = [
        RunConfig(**{**TINY, "steps": 30}, cell="gru"),
        RunConfig(**{**TINY, "steps": 30}, cell="rnn", activation="sigmoid"),
    ]
    alone = [losses(config) for config in configs]
    together: list[list[float]] = [[], []]

    def work(index: int) -> None:
        together[index] = losses(configs[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert together == alone


def test_exploding_relu_rnn_ends_diverged_not_in_an_exception():
    config = RunConfig(
        task="adding",
        cell="rnn",
        activation="relu",
        init="identity",
        hidden_size=32,
        seq_len=100,
        lr=10.0,
        clip=0.0,
        optimizer="sgd",
        steps=200,
    )
    events = list(train(config))
    summary = events[-1].summary
    assert summary["status"] == "diverged"
    assert summary["steps"] < 200
    last_step = [event for event in events if isinstance(event, Step)][-1]
    assert not (math.isfinite(last_step.loss) and math.isfinite(last_step.grad_norm))
    json.dumps(summary, allow_nan=False)  # NaN is reported as null, valid JSON


def test_cancel_from_another_thread_stops_cleanly():
    cancel = threading.Event()
    config = RunConfig(task="adding", hidden_size=8, batch_size=8, seq_len=10, steps=100_000)
    summary = None
    for event in train(config, cancel=cancel):
        if isinstance(event, Step) and event.step == 10:
            threading.Thread(target=cancel.set).start()
        if isinstance(event, Finished):
            summary = event.summary
    assert summary["status"] == "stopped"
    assert 10 <= summary["steps"] < 100_000
    assert math.isfinite(summary["final_loss"])


def test_summary_has_the_cli_contract_fields():
    summary = run(RunConfig(**TINY))
    for key in (
        "status",
        "steps",
        "final_loss",
        "best_loss",
        "metric_name",
        "metric",
        "baseline",
        "solved",
        "solved_at_step",
        "wall_s",
        "steps_per_s",
        "seed",
        "config",
    ):
        assert key in summary
    assert summary["config"] == RunConfig(**TINY).to_dict()
    assert summary["best_loss"] <= summary["final_loss"]


def test_the_summary_reports_the_last_steps_training_loss():
    config = RunConfig(task="hello", cell="gru", hidden_size=4, steps=7)
    events = list(train(config, snapshot_every_s=None))
    last_step = [e for e in events if e.kind == "step"][-1]
    assert events[-1].summary["final_train_loss"] == last_step.loss


def _count_evaluated_sequences(monkeypatch) -> list[int]:
    """Record how many held-out sequences each evaluation of train() looks at."""
    evaluate, counts = Task.evaluate, []

    def counting(task, model, device, sequences=None):
        counts.append(task.held_out_size if sequences is None else sequences)
        return evaluate(task, model, device, sequences)

    monkeypatch.setattr(Task, "evaluate", counting)
    return counts


def test_a_short_run_spends_little_on_evaluation_and_ends_on_the_whole_held_out_set(
    monkeypatch,
):
    counts = _count_evaluated_sequences(monkeypatch)
    config = RunConfig(task="adding", hidden_size=8, batch_size=64, seq_len=20, steps=400)
    events = list(train(config, snapshot_every_s=None))
    evaluations = [event for event in events if isinstance(event, Evaluation)]
    trained = config.steps * config.batch_size
    # A forward pass costs about half a training step per sequence: ≤ 5 % of the run.
    assert sum(counts) / 2 <= 0.05 * trained
    assert len(evaluations) >= 10  # still a held-out curve
    assert counts[-1] == 1000 and evaluations[-1].step == config.steps  # all of it
    assert events[-1].summary["final_loss"] == pytest.approx(evaluations[-1].loss)


def test_solved_is_decided_on_the_whole_held_out_set(monkeypatch):
    counts = _count_evaluated_sequences(monkeypatch)
    config = RunConfig(task="hello", cell="rnn", hidden_size=16, lr=1e-2, steps=300)
    config = config.replace(stop_when_solved=True)
    summary = run(config)
    assert summary["solved"] and summary["solved_at_step"] == summary["steps"]
    assert counts[-1] == 1  # hello's held-out set is one word: every evaluation is whole


def test_steps_per_s_counts_the_training_loop_not_the_set_up(monkeypatch):
    import sys
    import time

    module = sys.modules["rnnlab.train"]
    build_model = module.build_model

    def slow_build(*args, **kwargs):
        time.sleep(2.0)  # stands in for imports and model building on a cold process
        return build_model(*args, **kwargs)

    monkeypatch.setattr(module, "build_model", slow_build)
    summary = run(RunConfig(task="hello", cell="rnn", hidden_size=4, steps=30))
    assert summary["wall_s"] > 2.0
    assert summary["steps_per_s"] > 2 * summary["steps"] / summary["wall_s"]
