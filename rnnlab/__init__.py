"""rnnlab: train RNNs, LSTMs and GRUs and watch what happens inside them.

    from rnnlab import RunConfig, train
    for event in train(RunConfig(task="hello", cell="rnn")):
        print(event.to_dict())
"""

from .config import ConfigError, RunConfig
from .models import Recurrent, RecurrentNet, build_model
from .probe import Probe, gradients_through_time, probe, saturation, spectral_radius
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
    "Finished",
    "Probe",
    "Recurrent",
    "RecurrentNet",
    "RunConfig",
    "Snapshot",
    "Started",
    "Step",
    "TASKS",
    "Task",
    "available_devices",
    "build_model",
    "gradients_through_time",
    "make_task",
    "probe",
    "run",
    "saturation",
    "spectral_radius",
    "train",
]
