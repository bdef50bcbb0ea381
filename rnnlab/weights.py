"""Trained weights to take home: one .pt file per run, safe to open from a stranger.

    from rnnlab import load_model, evaluate
    model, config = load_model("rnnlab-1a2b3c.pt")   # the network build_model(config) builds
    loss, metric = evaluate(model, config)             # the run's final_loss and metric again

The file is torch.save of a dict holding only tensors and plain Python values, so
`torch.load(file, weights_only=True)` opens it without unpickling any object:

    rnnlab_weights   FORMAT, the version of this layout
    state_dict       float32 tensors under PyTorch's names (rnn.weight_ih_l0, ..., head.bias)
    config           RunConfig.to_dict() of the run
    step             the training step the weights are from
    input_size, output_size, every_step
                     the network's shape, so that a text task's network can be built
                     without its text
    vocab            a hello or text task's characters in one-hot order, else None
    run_id, summary  the run's id and summary (added when exported from the store)

A finished run keeps the weights it ended with; a diverged one keeps the weights from
before the step that diverged (that step is never applied), or none if those are not
finite either. Failed and interrupted runs keep none.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from typing import IO, Any

import torch

from .config import ConfigError, RunConfig
from .models import RecurrentNet
from .tasks import Task, make_task

FORMAT = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive

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
    name, data = _read(file)
    if not data.startswith(ZIP_MAGIC):
        raise WeightsError(
            f"{name} is not a PyTorch file (torch.save writes a zip archive; this starts "
            f"with {data[:8]!r})"
        )
    try:
        document = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise WeightsError(f"{name} is damaged: {_first_line(error)}") from None
        raise WeightsError(
            f"{name} holds Python objects, not only tensors and plain values; rnnlab does "
            "not unpickle objects from a file"
        ) from None
    except Exception as error:  # torch reports a damaged archive as RuntimeError and others
        raise WeightsError(f"{name} is damaged or cut short: {_first_line(error)}") from None
    _check(name, document)
    return document


def load_model(
    file: WeightsFile, *, device: str | torch.device = "cpu"
) -> tuple[RecurrentNet, RunConfig]:
    """The network of an rnnlab .pt file with its trained weights, and the run's config.

    The network is the one build_model(config) builds (its sizes come from the file, so a
    text task's network is built without the text). WeightsError if the file cannot be used.
    """
    name = _name(file)
    document = read_weights(file)
    try:
        config = RunConfig(**document["config"])
    except (ConfigError, TypeError) as error:
        raise WeightsError(f"{name} has a config this rnnlab cannot build: {error}") from None
    model = RecurrentNet(
        config.cell,
        config.activation,
        document["input_size"],
        config.hidden_size,
        config.num_layers,
        document["output_size"],
        every_step=document["every_step"],
        device="meta",
    ).to_empty(device=device)
    try:
        model.load_state_dict(document["state_dict"])
    except RuntimeError as error:
        raise WeightsError(
            f"{name}: the weights do not fit the network its config describes: {_first_line(error)}"
        ) from None
    if model.fused:
        model.rnn.flatten_parameters()
    return model, config


def evaluate(model: torch.nn.Module, config: RunConfig) -> tuple[float, float]:
    """Held-out loss and metric of `model` on the task `config` names, on the whole
    held-out set as a run's final evaluation is (so a reloaded run gives its final_loss)."""
    task = make_task(config)
    training = model.training
    try:
        return task.evaluate(model, next(model.parameters()).device)
    finally:
        model.train(training)


def weights_file_bytes(store: Any, run_id: str) -> bytes | None:
    """A run's weights as a .pt file to download (with its id and summary), or None if
    the run kept none (not finished, failed, or from before weights were kept)."""
    data = store.weights(run_id)
    if data is None:
        return None
    document = read_weights(data)
    run = store.get_run(run_id)
    return _save({**document, "run_id": run.id, "summary": run.summary})


def weights_file_name(run_id: str, config: Mapping[str, Any]) -> str:
    """A file name that says which run the weights are from: rnnlab-<id>-adding-lstm-h64.pt."""
    return (
        f"rnnlab-{run_id}-{config.get('task')}-{config.get('cell')}-h{config.get('hidden_size')}.pt"
    )


def _save(document: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(document, buffer)
    return buffer.getvalue()


def _name(file: WeightsFile) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    if isinstance(file, (bytes, bytearray, memoryview)):
        return "the weights file"
    return str(getattr(file, "name", "the weights file"))


def _read(file: WeightsFile) -> tuple[str, bytes]:
    name = _name(file)
    if isinstance(file, (bytes, bytearray, memoryview)):
        return name, bytes(file)
    try:
        if isinstance(file, (str, os.PathLike)):
            with open(file, "rb") as handle:
                return name, handle.read()
        return name, file.read()
    except OSError as error:
        raise WeightsError(f"cannot read {name}: {error.strerror or error}") from None


def _check(name: str, document: Any) -> None:
    """WeightsError unless `document` has the layout of the module doc."""
    if not isinstance(document, dict) or "rnnlab_weights" not in document:
        held = ", ".join(map(repr, list(document)[:5])) if isinstance(document, dict) else ""
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
