"""Keeps the run store within its disk budget while the pool trains.

A thread of its own prunes the store (RunStore.prune, rnnlab.store.retention) soon
after runs finish, and at least every PRUNE_EVERY_S, so that neither the pool's update
thread nor a page ever waits for it. A prune that fails is logged and tried again later:
the room keeps training either way.
"""

from __future__ import annotations

import logging
import threading

from ..store import RunStore
from ..store.retention import RetentionPolicy

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 60.0
# After a run finishes, the prune waits this long for others to finish too.
SETTLE_S = 2.0


class Upkeep:
    def __init__(self, store: RunStore, policy: RetentionPolicy | None = None):
        self.store = store
        self.policy = policy if policy is not None else RetentionPolicy.from_environment()
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rnnlab-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_finished(self) -> None:
        """A run ended (its weights may push the store past its budget)."""
        self._wanted.set()

    def close(self) -> None:
        self._closed.set()
        self._wanted.set()

    def _run(self) -> None:
        while not self._closed.is_set():
            if self._wanted.wait(PRUNE_EVERY_S):
                self._closed.wait(SETTLE_S)
            self._wanted.clear()
            if self._closed.is_set():
                return
            try:
                report = self.store.prune(self.policy)
            except Exception:
                log.exception("could not prune the run store")
                continue
            if report.weights_dropped or report.histories_thinned:
                log.info("pruned the run store: %s", report)
