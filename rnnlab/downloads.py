"""A run's trained weights as a file to download: its name and its bytes.

Importing this needs no PyTorch, so the dashboard's pages can offer the file; making the
bytes does: rnnlab.weights checks the stored file and saves it again with the run's id
and summary, and is imported by the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def weights_file_bytes(store: Any, run_id: str) -> bytes | None:
    """A run's weights as a .pt file to download (rnnlab.weights.exported_weights: the
    stored file with the run's id and summary), or None if the run kept none (not
    finished, failed, or from before weights were kept)."""
    data = store.weights(run_id)
    if data is None:
        return None
    from .weights import exported_weights  # PyTorch, in the process that makes the file

    run = store.get_run(run_id)
    return exported_weights(data, run.id, run.summary)


def weights_file_name(run_id: str, config: Mapping[str, Any]) -> str:
    """A file name that says which run the weights are from: rnnlab-<id>-adding-lstm-h64.pt."""
    return (
        f"rnnlab-{run_id}-{config.get('task')}-{config.get('cell')}-h{config.get('hidden_size')}.pt"
    )
