"""rnnlab: train RNNs, LSTMs and GRUs and watch what happens inside them.

>>> from rnnlab import RunConfig, train
>>> for event in train(RunConfig(task="hello", cell="rnn")):
...     print(event.to_dict())
>>> model, config = load_model("rnnlab-1a2b3c4d5e6f.pt")  # a run's weights, downloaded
>>> loss, metric = evaluate(model, config)                  # its final_loss again
"""

from .config import ConfigError, RunConfig
from .jobs import JobError, JobManager, Progress, QueueFull, get_manager
from .models import Recurrent, RecurrentNet, build_model
from .probe import Probe, gradients_through_time, probe, saturation, spectral_radius
from .store import RunNotFound, RunRecord, RunStore, StoreError, open_store
from .sweep import Executor, Grid, LocalExecutor, RunResult, SweepResult, run_sweep, sweep_table
from .tasks import TASKS, Task, make_task
from .train import (
    Evaluation,
    Finished,
    Snapshot,
    Started,
    Step,
    Weights,
    available_devices,
    run,
    train,
)
from .weights import WeightsError, evaluate, load_model, read_weights, weights_file_bytes

__all__ = [
    "ConfigError",
    "Evaluation",
    "Executor",
    "Finished",
    "Grid",
    "JobError",
    "JobManager",
    "LocalExecutor",
    "Probe",
    "Progress",
    "QueueFull",
    "Recurrent",
    "RecurrentNet",
    "RunConfig",
    "RunNotFound",
    "RunRecord",
    "RunResult",
    "RunStore",
    "Snapshot",
    "Started",
    "Step",
    "StoreError",
    "SweepResult",
    "TASKS",
    "Task",
    "Weights",
    "WeightsError",
    "available_devices",
    "build_model",
    "evaluate",
    "get_manager",
    "gradients_through_time",
    "load_model",
    "make_task",
    "open_store",
    "probe",
    "read_weights",
    "run",
    "run_sweep",
    "saturation",
    "spectral_radius",
    "sweep_table",
    "train",
    "weights_file_bytes",
]
