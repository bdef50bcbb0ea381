"""rnnlab: train RNNs, LSTMs and GRUs and watch what happens inside them.

>>> from rnnlab import RunConfig, train
>>> for event in train(RunConfig(task="hello", cell="rnn")):
...     print(event.to_dict())
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
    available_devices,
    run,
    train,
)

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
    "available_devices",
    "build_model",
    "get_manager",
    "gradients_through_time",
    "make_task",
    "open_store",
    "probe",
    "run",
    "run_sweep",
    "saturation",
    "spectral_radius",
    "sweep_table",
    "train",
]
