"""Trained weights to take home: one .pt file per run, safe to open from a stranger.

    from rnnlab import load_model, evaluate
    model, config = load_model("rnnlab-1a2b3c.pt")   # the network build_model(config) builds
    loss, metric = evaluate(model, config)             # the run's final_loss and metric again

The file is torch.save of a dict holding only tensors and plain Python values, so
`torch.load(file, weights_only=True)` opens it without unpickling any object:

    rnnlab_weights   FORMAT, the version of this layout
    state_dict       float32 tensors under PyTorch's names (rnn.weight_ih_l0, ..., head.bias)
    config           RunConfig.to_dict() of the run (an exported file's text_file is the
                     text's base name only: the server's folders are no one's business)
    step             the training step the weights are from
    input_size, output_size, every_step
                     the network's shape, so that a text task's network can be built
                     without its text
    vocab            a hello or text task's characters in one-hot order, else None
    run_id, summary  the run's id and summary (added when exported from the store)

A finished run keeps the weights it ended with; a diverged one keeps the weights from
before the step that diverged (that step is never applied), or none if those are not
finite either. Failed and interrupted runs keep none.

Opening a stranger's file costs no more than opening the largest file a run can leave.
It is read up to MAX_FILE_BYTES; its zip members' declared sizes are checked and each is
read no further than it declares, and torch.load reads the members rewritten from what
was read, so a zip bomb or a lying header is refused. The network is allocated only once
the stored config passes RunConfig and every tensor has the shape and dtype of that
config's network, compared on the meta device.

A text task's text is not in the file, only its vocabulary: evaluate reads the text from
config.text_file, which an export leaves as the base name; `config.replace(text_file=...)`
points it elsewhere.
"""

from __future__ import annotations

import io
import ntpath
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import IO, Any

import torch

from .config import ConfigError, RunConfig
from .models import RecurrentNet
from .tasks import Task, make_task
from .text import MAX_VOCAB

FORMAT = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
CENTRAL_DIRECTORY_MAGIC = b"PK\x01\x02"  # begins each member's entry in the archive's index

# The largest file a run leaves is an LSTM of 4 layers of 512 units on a text of 256
# characters: 8.0 M float32 parameters, 32,057,069 bytes (30.6 MiB). torch.save stores
# its members uncompressed, so the archive unpacks to about as much.
MAX_FILE_BYTES = 40 * 2**20
MAX_UNPACKED_BYTES = 40 * 2**20
# data.pkl and torch's other small records (all but the tensors' data/N): about 5 KB in
# any run's file. Each byte of pickle can build a 56-byte Python object, so keep it small.
MAX_RECORD_BYTES = 256 * 2**10
# Members: 18 tensors at most (4 layers x 4, the head's 2) and 6 records of torch.save.
MAX_MEMBERS = 64
# Weights barely compress (float32 noise); a file that unpacks to far more is a zip bomb.
MAX_COMPRESSION_RATIO = 50

WeightsFile = str | os.PathLike[str] | bytes | IO[bytes]


class WeightsError(ValueError):
    """A file is not rnnlab weights this version can load; the message names it and says why."""


def encode_weights(model: torch.nn.Module, config: RunConfig, task: Task, step: int) -> bytes:
    """The model's weights as the bytes of an rnnlab .pt file (see the module doc)."""
    state_dict = {
        name: tensor.detach().to("cpu", torch.float32).clone()  # own storage, not a view
        for name, tensor in model.state_dict().items()
    }
    vocab = getattr(task, "vocab", None)
    document = {
        "rnnlab_weights": FORMAT,
        "state_dict": state_dict,
        "config": config.to_dict(),
        "step": step,
        "input_size": task.input_dim,
        "output_size": task.output_dim,
        "every_step": task.predicts_every_step,
        "vocab": None if vocab is None else list(vocab),
    }
    return _save(document)


def read_weights(file: WeightsFile) -> dict[str, Any]:
    """The contents of an rnnlab .pt file (a path, its bytes or an open binary file),
    checked; WeightsError naming the file if it is damaged, foreign or unsafe."""
    document, _config, _network = _opened(file)
    return document


def load_model(
    file: WeightsFile, *, device: str | torch.device = "cpu"
) -> tuple[RecurrentNet, RunConfig]:
    """The network of an rnnlab .pt file with its trained weights, and the run's config.

    The network is the one build_model(config) builds (its sizes come from the file, so a
    text task's network is built without the text). WeightsError if the file cannot be used.
    """
    document, config, network = _opened(file)
    model = network.to_empty(device=device)  # the first allocation: every shape is checked
    model.load_state_dict(document["state_dict"])
    if model.fused:
        model.rnn.flatten_parameters()
    return model, config


def evaluate(model: torch.nn.Module, config: RunConfig) -> tuple[float, float]:
    """Held-out loss and metric of `model` on the task `config` names, on the whole
    held-out set as a run's final evaluation is (so a reloaded run gives its final_loss).
    A text task reads its text from config.text_file (see the module doc)."""
    task = make_task(config)
    training = model.training
    try:
        return task.evaluate(model, next(model.parameters()).device)
    finally:
        model.train(training)


def exported_weights(data: bytes, run_id: str, summary: dict[str, Any] | None) -> bytes:
    """A run's stored weights file as it is handed out (rnnlab.downloads): checked, with
    the run's id and summary, and no path of the server's."""
    document = read_weights(data)
    if summary and isinstance(summary.get("config"), Mapping):
        summary = {**summary, "config": _without_server_paths(summary["config"])}
    return _save(
        {
            **document,
            "config": _without_server_paths(document["config"]),
            "run_id": run_id,
            "summary": summary,
        }
    )


def _without_server_paths(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's config to hand out: text_file keeps the file's base name, not its folder
    (an upload's place on the server, or someone's home directory)."""
    return {**config, "text_file": ntpath.basename(config.get("text_file") or "")}


def _save(document: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return buffer.getvalue()


def _opened(file: WeightsFile) -> tuple[dict[str, Any], RunConfig, RecurrentNet]:
    """A file's checked contents, its config, and the network they fit on the meta device."""
    name, data = _read(file)
    if not data.startswith(ZIP_MAGIC):
        raise WeightsError(
            f"{name} is not a PyTorch file (torch.save writes a zip archive; this starts "
            f"with {data[:8]!r})"
        )
    document = _unpickled(name, _repacked(name, data))
    _check(name, document)
    try:
        config = RunConfig(**document["config"])
    except (ConfigError, TypeError) as error:
        raise WeightsError(f"{name} has a config this rnnlab cannot build: {error}") from None
    return document, config, _network(name, document, config)


def _name(file: WeightsFile) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    if isinstance(file, (bytes, bytearray, memoryview)):
        return "the weights file"
    return str(getattr(file, "name", "the weights file"))


def _read(file: WeightsFile) -> tuple[str, bytes]:
    """The file's name and bytes, read no further than MAX_FILE_BYTES + 1."""
    name = _name(file)
    try:
        if isinstance(file, (bytes, bytearray, memoryview)):
            data = memoryview(file).cast("B")[: MAX_FILE_BYTES + 1].tobytes()
        elif isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:
                if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:  # a pipe says 0
                    raise _too_large(name)
                data = handle.read(MAX_FILE_BYTES + 1)
        else:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise WeightsError(f"cannot read {name}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _too_large(name)
    return name, data


def _too_large(name: str) -> WeightsError:
    return WeightsError(
        f"{name} is larger than {MAX_FILE_BYTES / 2**20:.0f} MB; no run's weights are that "
        "large, so rnnlab does not open it"
    )


def _repacked(name: str, data: bytes) -> bytes:
    """The archive rewritten uncompressed from its members, each read no further than
    its declared size once those sizes are checked; WeightsError for a zip bomb, a
    lying header or a damaged archive."""
    if data.count(CENTRAL_DIRECTORY_MAGIC) > MAX_MEMBERS:
        raise WeightsError(f"{name} holds more than {MAX_MEMBERS} files; rnnlab weights do not")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except Exception as error:  # zipfile reports a damaged index as BadZipFile and others
        raise WeightsError(f"{name} is damaged or cut short: {_first_line(error)}") from None
    members = archive.infolist()
    _check_members(name, members, len(data))
    output = io.BytesIO()
    try:
        with archive, zipfile.ZipFile(output, "w") as repacked:
            for member in members:
                with archive.open(member) as packed:
                    content = packed.read(member.file_size + 1)  # inflates no further
                if len(content) != member.file_size:
                    raise zipfile.BadZipFile(f"{member.filename} is not the size it declares")
                repacked.writestr(member.filename, content)
    except Exception as error:  # a damaged member: BadZipFile (bad CRC), zlib.error, EOFError
        raise WeightsError(f"{name} is damaged or cut short: {_first_line(error)}") from None
    return output.getvalue()


def _check_members(name: str, members: list[zipfile.ZipInfo], file_size: int) -> None:
    """WeightsError unless the archive's declared sizes are those of rnnlab weights."""
    names = [member.filename for member in members]
    if len(set(names)) != len(names):
        raise WeightsError(f"{name} is damaged: its archive names a member twice")
    for member in members:
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise WeightsError(
                f"{name}: {member.filename} is packed with zip method {member.compress_type}; "
                "torch.save stores members uncompressed (deflate is read too)"
            )
        parts = member.filename.split("/")
        is_tensor_data = len(parts) == 3 and parts[1] == "data"  # archive/data/0, ...
        if not is_tensor_data and member.file_size > MAX_RECORD_BYTES:
            raise WeightsError(
                f"{name}: {member.filename} unpacks to {member.file_size:,} bytes; rnnlab "
                f"weights keep at most {MAX_RECORD_BYTES // 2**10} KB beside their tensors"
            )
    unpacked = sum(member.file_size for member in members)
    if unpacked > min(MAX_UNPACKED_BYTES, MAX_COMPRESSION_RATIO * file_size):
        raise WeightsError(
            f"{name} unpacks to {unpacked:,} bytes from {file_size:,} (a zip bomb?); rnnlab "
            f"weights unpack to at most {MAX_UNPACKED_BYTES / 2**20:.0f} MB and barely compress"
        )


def _unpickled(name: str, data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise WeightsError(f"{name} is damaged: {_first_line(error)}") from None
        raise WeightsError(
            f"{name} holds Python objects, not only tensors and plain values; rnnlab does "
            "not unpickle objects from a file"
        ) from None
    except Exception as error:  # torch reports a damaged archive as RuntimeError and others
        raise WeightsError(f"{name} is damaged or cut short: {_first_line(error)}") from None


def _check(name: str, document: Any) -> None:
    """WeightsError unless `document` has the layout of the module doc."""
    if not isinstance(document, dict) or "rnnlab_weights" not in document:
        held = (
            ", ".join(repr(key) for key in list(document)[:5] if isinstance(key, str))
            if isinstance(document, dict)
            else ""
        )
        raise WeightsError(
            f"{name} is a PyTorch file but not rnnlab weights (no 'rnnlab_weights' entry"
            + (f"; it holds {held})" if held else f"; it holds a {type(document).__name__})")
        )
    version = document["rnnlab_weights"]
    if not isinstance(version, int) or version > FORMAT:
        raise WeightsError(
            f"{name} was written by a newer rnnlab (weights format {version!r}; this version "
            f"reads up to {FORMAT}); upgrade rnnlab to load it"
        )
    state_dict = document.get("state_dict")
    if not isinstance(state_dict, dict) or not all(
        isinstance(t, torch.Tensor) for t in state_dict.values()
    ):
        raise WeightsError(f"{name} has no state_dict of tensors")
    for key, kind in (
        ("config", dict),
        ("input_size", int),
        ("output_size", int),
        ("every_step", bool),
    ):
        if not isinstance(document.get(key), kind):
            raise WeightsError(f"{name} lacks its {key!r} entry (or it is not a {kind.__name__})")
    vocab = document.get("vocab")
    if vocab is not None and not (
        isinstance(vocab, list)
        and 0 < len(vocab) <= MAX_VOCAB
        and all(isinstance(ch, str) and len(ch) == 1 for ch in vocab)
    ):
        raise WeightsError(f"{name}: its vocab is not a list of 1 to {MAX_VOCAB} characters")


def _network(name: str, document: dict[str, Any], config: RunConfig) -> RecurrentNet:
    """The network `config` describes, on the meta device (shapes, no memory), once the
    file's sizes, vocabulary and every tensor's shape and dtype are that network's."""
    vocab = document.get("vocab")
    if config.task == "text":  # the text is not in the file; its vocabulary sizes the net
        if vocab is None:
            raise WeightsError(f"{name}: a text task's weights without their vocab")
        sizes = (len(vocab), len(vocab), True)
    else:
        task = make_task(config)  # every task but text is made from the config alone
        sizes = (task.input_dim, task.output_dim, task.predicts_every_step)
        task_vocab = getattr(task, "vocab", None)
        if vocab != (None if task_vocab is None else list(task_vocab)):
            raise WeightsError(f"{name}: its vocab {vocab!r} is not the {config.task} task's")
    stored = (document["input_size"], document["output_size"], document["every_step"])
    if stored != sizes:
        raise WeightsError(
            f"{name}: its input_size, output_size and every_step {stored} are not the "
            f"{config.task} task's {sizes}"
        )
    input_size, output_size, every_step = sizes
    network = RecurrentNet(
        config.cell,
        config.activation,
        input_size,
        config.hidden_size,
        config.num_layers,
        output_size,
        every_step=every_step,
        device="meta",
    )
    expected, state_dict = network.state_dict(), document["state_dict"]
    for key in [*expected, *(key for key in state_dict if key not in expected)]:
        if key not in state_dict:
            problem = f"it lacks {key}"
        elif key not in expected:
            problem = f"{key!r} is not one of its tensors"
        elif not _same(state_dict[key], expected[key]):
            problem = f"{key} is {_described(state_dict[key])}, not {_described(expected[key])}"
        else:
            continue
        raise WeightsError(
            f"{name}: the weights do not fit the network its config describes: {problem}"
        )
    return network


def _same(tensor: torch.Tensor, expected: torch.Tensor) -> bool:
    return (
        tensor.shape == expected.shape
        and tensor.dtype == expected.dtype
        and tensor.layout == expected.layout
    )


def _described(tensor: torch.Tensor) -> str:
    """float32 (64, 16); a layout other than strided is named after it."""
    text = f"{str(tensor.dtype).removeprefix('torch.')} {tuple(tensor.shape)}"
    return text if tensor.layout == torch.strided else f"{text} {tensor.layout}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
