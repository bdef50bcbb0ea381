"""rnnlab: train RNNs, LSTMs and GRUs and watch what happens inside them.

>>> from rnnlab import RunConfig, train
>>> for event in train(RunConfig(task="hello", cell="rnn")):
...     print(event.to_dict())
>>> model, config = load_model("rnnlab-1a2b3c4d5e6f.pt")  # a run's weights, downloaded
>>> loss, metric = evaluate(model, config)                  # its final_loss again

Each name is imported from its module when first used (PEP 562), so that what needs no
PyTorch (RunConfig, the store, the events; the dashboard's server) does not import it.
"""

import importlib
import sys
import types
from typing import Any

_MODULES = {  # each public name -> the module of rnnlab that defines it
    "ConfigError": "config",
    "RunConfig": "config",
    "weights_file_bytes": "downloads",
    "Evaluation": "events",
    "Finished": "events",
    "Snapshot": "events",
    "Started": "events",
    "Step": "events",
    "Weights": "events",
    "JobError": "jobs",
    "JobManager": "jobs",
    "Progress": "jobs",
    "QueueFull": "jobs",
    "get_manager": "jobs",
    "Recurrent": "models",
    "RecurrentNet": "models",
    "build_model": "models",
    "Probe": "probe",
    "gradients_through_time": "probe",
    "probe": "probe",
    "saturation": "probe",
    "spectral_radius": "probe",
    "RunNotFound": "store",
    "RunRecord": "store",
    "RunStore": "store",
    "StoreError": "store",
    "open_store": "store",
    "Executor": "sweep",
    "Grid": "sweep",
    "LocalExecutor": "sweep",
    "RunResult": "sweep",
    "SweepResult": "sweep",
    "run_sweep": "sweep",
    "sweep_table": "sweep",
    "SearchSpace": "tune",
    "Study": "tune",
    "StudyRunner": "tune",
    "tune": "tune",
    "TASKS": "tasks",
    "Task": "tasks",
    "make_task": "tasks",
    "available_devices": "train",
    "run": "train",
    "train": "train",
    "WeightsError": "weights",
    "evaluate": "weights",
    "load_model": "weights",
    "read_weights": "weights",
}
# Functions named as their modules are: rnnlab.train, .probe and .tune are the functions.
_FUNCTIONS_NAMED_AS_MODULES = {name for name, module in _MODULES.items() if name == module}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # found here from now on, without this function
    return value


def __dir__() -> list[str]:
    return list(__all__)


class _Package(types.ModuleType):
    """The import system binds each submodule on its package as it loads it; for
    `train`, `probe` and `tune` that would hide the functions, so those bindings are skipped
    (`import rnnlab.train` still finds the module in sys.modules)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTIONS_NAMED_AS_MODULES and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
