import io
import math
import pickle
import zipfile

import pytest
import torch
from helpers import tiny
from torch import nn

from rnnlab import WeightsError, evaluate, load_model, read_weights, weights_file_bytes
from rnnlab.config import RunConfig
from rnnlab.models import build_model
from rnnlab.recording import RecordedRun
from rnnlab.store import RunStore
from rnnlab.train import Finished, Weights, train
from rnnlab.weights import weights_file_name

ADDING = RunConfig(task="adding", cell="lstm", hidden_size=16, seq_len=20, steps=30)
DIVERGES = RunConfig(
    task="sine", cell="rnn", activation="relu", init="identity", optimizer="sgd", lr=10.0,
    clip=0.0, hidden_size=8, seq_len=20, steps=50,
)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "runs.sqlite") as store:
        yield store


def recorded(store: RunStore, config: RunConfig) -> str:
    """A run trained and recorded as the CLI and the pool's workers do it."""
    run_id = store.create_run(config, status="running")
    for _ in RecordedRun(store, run_id, config, snapshot_every_s=None):
        pass
    return run_id


class Gadget:
    """Not a tensor nor a plain value: weights_only refuses to unpickle it."""


def test_a_reloaded_run_reproduces_its_final_loss(store, tmp_path):
    run_id = recorded(store, ADDING)
    run = store.get_run(run_id)
    path = tmp_path / weights_file_name(run.id, run.config)
    path.write_bytes(weights_file_bytes(store, run_id))
    assert path.name == f"rnnlab-{run_id}-adding-lstm-h16.pt"

    model, config = load_model(path)
    assert config == ADDING
    loss, metric = evaluate(model, config)
    assert loss == pytest.approx(run.summary["final_loss"], abs=1e-6)
    assert metric == pytest.approx(run.summary["metric"], abs=1e-6)

    reference = build_model(config)  # the same network, with its initial weights
    assert type(model.rnn) is type(reference.rnn) is nn.LSTM
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_the_file_is_plain_tensors_and_values_under_pytorchs_names(store, tmp_path):
    run_id = recorded(store, ADDING)
    document = torch.load(io.BytesIO(weights_file_bytes(store, run_id)), weights_only=True)
    assert document["rnnlab_weights"] == 1 and document["run_id"] == run_id
    assert document["config"] == ADDING.to_dict() and document["step"] == 30
    assert document["summary"]["final_loss"] == store.get_run(run_id).summary["final_loss"]
    state_dict = document["state_dict"]
    assert set(state_dict) == {
        "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0",
        "head.weight", "head.bias",
    }  # fmt: skip
    assert state_dict["rnn.weight_hh_l0"].shape == (4 * 16, 16)  # gates i, f, g, o
    assert all(t.dtype == torch.float32 for t in state_dict.values())
    lstm = nn.LSTM(2, 16, batch_first=True)  # the weights move to PyTorch's own module
    lstm.load_state_dict({k.removeprefix("rnn."): v for k, v in state_dict.items() if "rnn." in k})


def test_a_character_task_keeps_its_vocabulary_and_our_own_cells_reload():
    config = RunConfig(task="hello", cell="gru", activation="sigmoid", hidden_size=8, steps=40)
    events = list(train(config, snapshot_every_s=None))
    weights = next(e for e in events if isinstance(e, Weights))
    assert weights.to_dict() == {"kind": "weights", "step": 40, "size_bytes": len(weights.data)}
    assert read_weights(weights.data)["vocab"] == ["h", "e", "l", "o"]
    model, reloaded = load_model(io.BytesIO(weights.data))
    assert not model.fused  # a sigmoid GRU runs on rnnlab.models.Recurrent
    assert evaluate(model, reloaded)[0] == pytest.approx(events[-1].summary["final_loss"], abs=1e-6)


def test_a_diverged_run_keeps_the_weights_from_before_the_step_that_diverged(store):
    run_id = recorded(store, DIVERGES)
    run = store.get_run(run_id)
    assert run.status == "diverged"
    model, config = load_model(weights_file_bytes(store, run_id))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert read_weights(store.weights(run_id))["step"] == run.summary["steps"]
    loss, _ = evaluate(model, config)
    final = run.summary["final_loss"]
    assert (final is None and not math.isfinite(loss)) or loss == pytest.approx(final, abs=1e-6)


def test_weights_are_written_with_the_final_status_and_deleted_with_the_run(store):
    run_id = store.create_run(tiny(), status="running")
    for event in train(tiny(), snapshot_every_s=None):
        store.add(run_id, event)
        if isinstance(event, Weights):
            assert store.weights(run_id) is None  # not before the run has finished
    assert read_weights(store.weights(run_id))["config"] == tiny().to_dict()
    store.delete_run(run_id)
    with store._transaction() as db:
        assert db.execute("SELECT count(*) FROM weights").fetchone() == (0,)


def test_unfinished_failed_and_stopped_runs(store):
    queued = store.create_run(tiny())
    assert store.weights(queued) is None and weights_file_bytes(store, queued) is None
    failed = store.create_run(tiny(), status="running")
    store.fail(failed, "RuntimeError: boom")
    assert weights_file_bytes(store, failed) is None

    config = tiny(steps=200_000)
    stopped = store.create_run(config, status="running")
    run = RecordedRun(store, stopped, config, snapshot_every_s=None)
    for event in run:
        if event.kind == "step" and event.step == 5:
            run.stop("enough")
        assert not isinstance(event, Finished) or event.summary["status"] == "stopped"
    assert read_weights(store.weights(stopped))["step"] == 5  # the model as it was stopped


def _valid_file() -> bytes:
    return next(e for e in train(tiny(), snapshot_every_s=None) if isinstance(e, Weights)).data


def _saved(document) -> bytes:
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: bytes(range(256)) * 8, "is not a PyTorch file"),
        (lambda: b"", "is not a PyTorch file"),
        (lambda: pickle.dumps({"state_dict": {}}), "is not a PyTorch file"),
        (lambda: _valid_file()[:-300], "is damaged or cut short"),
        (lambda: _valid_file()[:2000], "is damaged or cut short"),
        (lambda: _saved({"model": torch.zeros(3)}), "not rnnlab weights .*'model'"),
        (lambda: _saved([torch.zeros(3)]), "not rnnlab weights .*list"),
        (lambda: _saved({"rnnlab_weights": 1, "x": Gadget()}), "holds Python objects"),
        (lambda: _saved({"rnnlab_weights": 99}), "newer rnnlab"),
        (lambda: _saved({"rnnlab_weights": 1, "state_dict": {"w": 1}}), "no state_dict"),
    ],
    ids=["random", "empty", "pickle", "truncated", "half", "foreign", "list", "object",
         "newer", "no-tensors"],
)  # fmt: skip
def test_a_bad_file_gets_a_clear_error_naming_it(tmp_path, make, message):
    path = tmp_path / "downloaded.pt"
    path.write_bytes(make())
    with pytest.raises(WeightsError, match=message) as caught:
        load_model(path)
    assert str(path) in str(caught.value) and isinstance(caught.value, ValueError)
    error = caught.value  # no traceback from torch chained to it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_weights_that_do_not_fit_their_config_or_a_missing_file(tmp_path):
    document = read_weights(_valid_file())
    document["config"]["hidden_size"] = 5
    path = tmp_path / "edited.pt"
    path.write_bytes(_saved(document))
    with pytest.raises(WeightsError, match=f"{path}: the weights do not fit"):
        load_model(path)
    document["config"]["colour"] = "red"
    path.write_bytes(_saved(document))
    with pytest.raises(WeightsError, match="config this rnnlab cannot build"):
        load_model(path)
    with pytest.raises(WeightsError, match="cannot read .*missing.pt"):
        load_model(tmp_path / "missing.pt")
    assert zipfile.is_zipfile(io.BytesIO(_valid_file()))
