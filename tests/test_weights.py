import io
import json
import math
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import tiny
from torch import nn

import rnnlab
from rnnlab import WeightsError, evaluate, load_model, read_weights, weights_file_bytes
from rnnlab.__main__ import main
from rnnlab.config import RunConfig
from rnnlab.downloads import weights_file_name
from rnnlab.models import RecurrentNet, build_model
from rnnlab.recording import RecordedRun
from rnnlab.store import RunStore
from rnnlab.tasks import TextTask
from rnnlab.text import MAX_VOCAB
from rnnlab.train import Finished, Weights, train
from rnnlab.weights import MAX_FILE_BYTES, MAX_UNPACKED_BYTES, encode_weights

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


def test_the_largest_file_a_run_can_leave_fits_under_the_caps():
    config = RunConfig(
        task="text", cell="lstm", hidden_size=512, num_layers=4, batch_size=1, seq_len=1, steps=1
    )
    task = TextTask("".join(map(chr, range(0x100, 0x100 + 300))) * 2, seq_len=1)
    assert len(task.vocab) == MAX_VOCAB  # 255 characters and the one for all others
    data = encode_weights(build_model(config, task), config, task, step=1)
    assert 0.7 * MAX_FILE_BYTES < len(data) < MAX_FILE_BYTES  # the cap is sized from it
    unpacked = sum(member.file_size for member in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert unpacked < MAX_UNPACKED_BYTES
    model, reloaded = load_model(data)
    assert reloaded == config and model.rnn.weight_ih_l0.shape == (4 * 512, MAX_VOCAB)


def test_a_file_larger_than_any_runs_weights_is_refused_unread(tmp_path):
    data = _valid_file() + bytes(MAX_FILE_BYTES)
    path = tmp_path / "large.pt"
    path.write_bytes(data)
    opened = io.BytesIO(data)
    for file in (path, data, opened):
        with pytest.raises(WeightsError, match="is larger than 40 MB"):
            load_model(file)
    assert opened.tell() == MAX_FILE_BYTES + 1


PEAK_OF_LOADING = """
import json, resource, sys, time
import torch
from rnnlab import WeightsError, load_model

def peaks():
    with open("/proc/self/status") as status:
        virtual = next(int(line.split()[1]) for line in status if line.startswith("VmPeak:"))
    return virtual / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

torch.set_num_threads(1)  # no thread stacks and arenas started meanwhile
virtual, resident = peaks()
start = time.perf_counter()
try:
    load_model(sys.argv[1])
    outcome = "loaded"
except WeightsError as error:
    outcome = str(error)
seconds = time.perf_counter() - start
virtual_after, resident_after = peaks()
print(json.dumps({"outcome": outcome, "seconds": seconds,
                  "virtual_mb": virtual_after - virtual, "resident_mb": resident_after - resident}))
"""


def _loaded_in_a_fresh_process(path: Path) -> dict:
    """load_model(path) in a new interpreter: what it said, and by how many MB its peak
    virtual and resident memory grew (virtual counts memory allocated but never touched)."""
    package_root = str(Path(rnnlab.__file__).parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_LOADING, str(path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _claiming(
    config: RunConfig,
    input_size: int,
    output_size: int,
    *,
    every_step: bool = True,
    vocab: list[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict:
    """A weights document for `config` whose network has the sizes given, not the task's."""
    network = RecurrentNet(
        config.cell,
        config.activation,
        input_size,
        config.hidden_size,
        config.num_layers,
        output_size,
        every_step=every_step,
    )
    return {
        "rnnlab_weights": 1, "config": config.to_dict(), "step": 1,
        "state_dict": {key: value.to(dtype) for key, value in network.state_dict().items()},
        "input_size": input_size, "output_size": output_size, "every_step": every_step,
        "vocab": vocab,
    }  # fmt: skip


SMALL_ADDING = RunConfig(task="adding", cell="gru", hidden_size=8, seq_len=10, steps=1)
SMALL_TEXT = RunConfig(task="text", cell="lstm", hidden_size=8, seq_len=10, steps=1)


@pytest.mark.skipif(sys.platform != "linux", reason="reads VmPeak from /proc/self/status")
def test_a_claim_of_a_huge_network_is_refused_before_anything_is_allocated(tmp_path):
    config = RunConfig(task="adding", cell="rnn", hidden_size=1, seq_len=2, steps=1)
    document = _claiming(config, 2, 1)
    document["input_size"] = 250_000_000  # weight_ih_l0 would be (1, 250M): 1 GB
    path = tmp_path / "claims-a-gigabyte.pt"
    path.write_bytes(_saved(document))
    assert path.stat().st_size < 4096
    loading = _loaded_in_a_fresh_process(path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}: its input_size, .* are not the adding task's .*",
        loading["outcome"],
    )
    assert loading["virtual_mb"] < 256 and loading["resident_mb"] < 200


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """A valid file but that its first tensor's member inflates to 2.3 GB of zeros
    (2.3 MB packed), written 16 MB at a time."""
    valid = zipfile.ZipFile(io.BytesIO(_valid_file()))
    path = tmp_path_factory.mktemp("bomb") / "bomb.pt"
    zeros = bytes(16 * 2**20)
    with zipfile.ZipFile(path, "w", compresslevel=1) as bomb:
        for member in valid.infolist():
            if not member.filename.endswith("/data/0"):
                bomb.writestr(member.filename, valid.read(member))
                continue
            packed = zipfile.ZipInfo(member.filename)
            packed.compress_type = zipfile.ZIP_DEFLATED
            with bomb.open(packed, "w", force_zip64=True) as inflating:
                for _ in range(140):
                    inflating.write(zeros)
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="reads VmPeak from /proc/self/status")
def test_a_zip_bomb_is_refused_without_inflating_it(zip_bomb):
    assert zip_bomb.stat().st_size < MAX_FILE_BYTES
    loading = _loaded_in_a_fresh_process(zip_bomb)
    assert re.fullmatch(
        rf"{re.escape(str(zip_bomb))} unpacks to 2,3\d\d,[\d,]+ bytes from .* \(a zip bomb\?\).*",
        loading["outcome"],
    )
    assert loading["virtual_mb"] < 256 and loading["resident_mb"] < 200


def _declaring(data: bytes, member: str, size: int) -> bytes:
    """The archive with `member`'s uncompressed size in its local and central headers
    replaced by `size`, its data left as it is: a lying header."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    patched = bytearray(data)
    struct.pack_into("<I", patched, info.header_offset + 22, size)  # local file header
    entry = patched.index(b"PK\x01\x02")
    while patched[entry + 46 : entry + 46 + len(member)] != member.encode():
        entry = patched.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", patched, entry + 24, size)  # its central directory entry
    return bytes(patched)


def test_a_member_that_holds_more_than_its_header_declares_is_refused(tmp_path):
    valid = zipfile.ZipFile(io.BytesIO(_valid_file()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as lying:
        for member in valid.infolist():
            content = valid.read(member)
            if member.filename.endswith("/data/0"):
                declared, name = len(content), member.filename
                content += bytes(64 * 2**20)  # inflates 64 MB further than declared
            lying.writestr(member.filename, content, zipfile.ZIP_DEFLATED)
    path = tmp_path / "lying.pt"
    path.write_bytes(_declaring(buffer.getvalue(), name, declared))
    with pytest.raises(
        WeightsError, match=f"{re.escape(str(path))} is damaged or cut short: Bad CRC-32"
    ):
        load_model(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _claiming(SMALL_ADDING, 3, 1, every_step=False),
         r"input_size, .* \(3, 1, False\) are not the adding task's \(2, 1, False\)"),
        (lambda: _claiming(SMALL_ADDING, 2, 1), r"\(2, 1, True\) are not the adding task's"),
        (lambda: _claiming(SMALL_ADDING, 2, 1, every_step=False, dtype=torch.float64),
         r"do not fit .*: rnn.weight_ih_l0 is float64 \(24, 2\), not float32 \(24, 2\)"),
        (lambda: _claiming(SMALL_TEXT, 300, 300, vocab=[chr(0x100 + i) for i in range(300)]),
         "its vocab is not a list of 1 to 256 characters"),
        (lambda: _claiming(SMALL_TEXT, 12, 12, vocab=list("abcdefghij")),
         r"not the text task's \(10, 10, True\)"),
        (lambda: _claiming(tiny(), 4, 4, vocab=list("abcd")),
         r"its vocab \['a', 'b', 'c', 'd'\] is not the hello task's"),
    ],
    ids=["input-size", "every-step", "float64", "vocab-size", "text-size", "hello-vocab"],
)  # fmt: skip
def test_weights_that_are_not_the_network_their_config_describes(tmp_path, make, message):
    path = tmp_path / "claims.pt"
    path.write_bytes(_saved(make()))
    with pytest.raises(WeightsError, match=message) as caught:
        load_model(path)
    assert str(caught.value).startswith(f"{path}") and "\n" not in str(caught.value)


def test_an_export_carries_the_texts_base_name_not_the_servers_folders(
    store, tmp_path, monkeypatch
):
    folder = tmp_path / "srv-uploads-7f3a"
    folder.mkdir()
    text = folder / "0c1d2e.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    config = RunConfig(task="text", text_file=str(text), cell="gru", hidden_size=8, seq_len=10,
                       batch_size=4, steps=5)  # fmt: skip
    run_id = recorded(store, config)
    data = weights_file_bytes(store, run_id)
    assert str(folder).encode() not in data and b"srv-uploads" not in data
    document = read_weights(data)
    assert document["config"]["text_file"] == document["summary"]["config"]["text_file"]
    assert document["config"]["text_file"] == "0c1d2e.txt"

    model, reloaded = load_model(data)
    assert reloaded == config.replace(text_file="0c1d2e.txt")
    monkeypatch.chdir(folder)  # the text beside the downloaded weights
    final_loss = store.get_run(run_id).summary["final_loss"]
    assert evaluate(model, reloaded)[0] == pytest.approx(final_loss, abs=1e-6)


def test_the_cli_says_in_one_line_that_stored_weights_are_damaged(
    store, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path))  # the CLI's store is the fixture's
    run_id = recorded(store, tiny())
    with store._transaction() as db:
        db.execute("UPDATE weights SET data = ? WHERE run_id = ?", (_valid_file()[:2000], run_id))
    target = tmp_path / "out.pt"
    with pytest.raises(SystemExit) as exited:
        main(["runs", "export", run_id, "--format", "pt", "-o", str(target)])
    error = capsys.readouterr().err
    assert exited.value.code == 2 and error.count("\n") == 1 and not target.exists()
    assert error.startswith(f"rnnlab: error: run {run_id}'s stored weights cannot be exported: ")
