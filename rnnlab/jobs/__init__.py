"""The shared training pool: worker processes, room rules and the live feed.

manager = get_manager()                    # one per server process
run_id = manager.submit(config, owner=session_id)
manager.live(run_id, since=step)           # new points, from memory

settings    defaults and what the environment overrides (RNNLAB_WORKERS, ...)
pool        the worker processes (or Ray actors) and the thread reading them
admission   caps per owner, who is still there, the names owners go by
feed        each live run's state, and the one JSON shape of progress
stored      runs that left memory, answered in the same shapes from the store
watch       what pages and routes read: progress, points, pictures, rows
manager     JobManager, which ties them together, and get_manager()
"""

from .admission import JobError, QueueFull, TooLarge
from .feed import LiveRun, Progress
from .manager import JobManager, get_manager
from .settings import EXECUTORS, default_executor, default_orphan_after_s, default_workers

__all__ = [
    "EXECUTORS",
    "JobError",
    "JobManager",
    "LiveRun",
    "Progress",
    "QueueFull",
    "TooLarge",
    "default_executor",
    "default_orphan_after_s",
    "default_workers",
    "get_manager",
]
