"""Studies: Optuna searches over RunConfig's settings whose trials are ordinary runs.

space       which settings a study searches, read from RunConfig's field metadata
settings    a study's sampler, pruner and objective, kept in the study's storage
storage     the Optuna journal file beside the run store
runner      trains a study's trials on a job manager, for one person or a room
importance  what matters: importances with bootstrap intervals
view        a study as the Explore page draws it
study       tune(), and Study to read a finished one
"""

from .runner import StudyNotFound, StudyRunner, runner_for
from .settings import OBJECTIVES, PRUNERS, SAMPLERS, UNSOLVED_PENALTY, StudySettings
from .space import SEARCHABLE, Param, SearchSpace, param, parse_space
from .storage import open_storage, storage_path
from .study import Study, tune
from .view import study_view

__all__ = [
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "SEARCHABLE",
    "UNSOLVED_PENALTY",
    "Param",
    "SearchSpace",
    "Study",
    "StudyNotFound",
    "StudyRunner",
    "StudySettings",
    "open_storage",
    "param",
    "parse_space",
    "storage_path",
    "runner_for",
    "study_view",
    "tune",
]
