"""rnnlab: train RNNs, LSTMs and GRUs and watch what happens inside them.

    from rnnlab import RunConfig, train
    for event in train(RunConfig(task="hello", cell="rnn")):
        print(event.to_dict())
"""

from .config import ConfigError, RunConfig
from .models import Recurrent, RecurrentNet, build_model
from .tasks import TASKS, Task, make_task
from .train import Evaluation, Finished, Started, Step, available_devices, run, train

__all__ = [
    "ConfigError",
    "Evaluation",
    "Finished",
    "Recurrent",
    "RecurrentNet",
    "RunConfig",
    "Started",
    "Step",
    "TASKS",
    "Task",
    "available_devices",
    "build_model",
    "make_task",
    "run",
    "train",
]
