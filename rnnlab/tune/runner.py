"""A study's trials, trained as ordinary runs on a job manager's pool.

    runner = StudyRunner.open("what-matters", manager, settings)   # or reopen by name
    runner.add(owner, trials=20, label="Ana")    # Ana asks 20 more trials
    runner.view()                                # what the Explore page draws
    runner.stop(owner)

Optuna asks and is told (ask-and-tell); rnnlab trains. A thread per study asks a trial
whenever one of its contributors has budget left and fewer trials waiting than
WAITING_PER_OWNER, submits it to the manager under that contributor's name (so the
room's caps and fair shares apply to trials as to any run), feeds each held-out
evaluation to the pruner (`trial.report`), stops a trial the pruner gives up on (it
ends `pruned` at its next step) and tells Optuna how each trial ended. Several people
may add trials to one study at once: every ask goes through this runner's lock, and the
storage's own lock keeps several processes apart.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from ..config import ConfigError
from ..jobs import JobError, JobManager, QueueFull, TooLarge
from ..store import ACTIVE_STATUSES, RunNotFound
from .settings import StudySettings
from .storage import open_storage, storage_path

log = logging.getLogger(__name__)

POLL_S = 0.25
# Trials of one contributor waiting for a worker at a time: the sampler learns from the
# trials that finish meanwhile, and the contributor's queue keeps room for other runs.
WAITING_PER_OWNER = 2
# A study's curves keep at most this many evaluations per trial.
CURVE_POINTS = 120
SETTINGS_ATTRIBUTE = "rnnlab"

optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyNotFound(LookupError):
    """No study of that name is in the storage."""


@dataclass
class Followed:
    """One trial as the runner follows it while its run trains."""

    number: int
    trial: optuna.Trial
    owner: str
    label: str | None
    values: dict[str, Any]
    run_id: str | None = None  # None until the manager takes it
    reported: int = 0  # the last step reported to the pruner
    pruned_at: int | None = None
    told: bool = False  # Optuna has been told how it ended (or is being told)
    curve: list[tuple[int, float | None]] = field(default_factory=list)


@dataclass
class Contributor:
    """Someone who pressed Start in this study: their budget and the name they go by."""

    owner: str
    label: str | None
    remaining: int
    asked: int = 0


class StudyRunner:
    """Runs one study's trials on `manager`; thread-safe. Open one with StudyRunner.open."""

    def __init__(
        self,
        study: optuna.Study,
        settings: StudySettings,
        manager: JobManager,
        *,
        parallel: int | None = None,
    ):
        self.study, self.settings, self.manager = study, settings, manager
        self.name = study.study_name
        self.parallel = parallel  # trials training at once per contributor; None: the caps'
        self._lock = threading.RLock()
        self._followed: dict[int, Followed] = {}
        self._contributors: dict[str, Contributor] = {}
        self._finished: dict[int, dict[str, Any]] = {}  # number -> what view() shows
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition(self._lock)
        self.version = 0  # counts changes, so a view can be kept until the next one
        self._adopt_finished_runs()

    @classmethod
    def open(
        cls,
        name: str,
        manager: JobManager,
        settings: StudySettings | None = None,
        *,
        storage: Any = None,
        parallel: int | None = None,
    ) -> StudyRunner:
        """The study `name` in `storage` (the journal beside the manager's run store by
        default, rnnlab.tune.storage): created with
        `settings` if it does not exist, else reopened with the settings it was created
        with (StudyNotFound if it does not exist and no settings are given)."""
        if storage is None:
            storage = open_storage(storage_path(manager.store.path))
        stored = stored_settings(name, storage)
        if stored is None and settings is None:
            raise StudyNotFound(f"no study named {name!r}")
        chosen = stored or settings
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=chosen.make_sampler(),
            pruner=chosen.make_pruner(),
            direction=chosen.direction,
            load_if_exists=True,
        )
        if stored is None:
            study.set_user_attr(SETTINGS_ATTRIBUTE, chosen.to_dict())
        return cls(study, chosen, manager, parallel=parallel)

    # -- what callers do ----------------------------------------------------------------

    def add(self, owner: str, trials: int, *, label: str | None = None) -> int:
        """`owner` asks for `trials` more trials (a grid stops at its last point); returns
        how many were added. Training starts at once, on the runner's thread."""
        if trials < 1:
            raise ConfigError("ask for at least one trial", "trials")
        with self._lock:
            if self.settings.sampler == "grid":
                asked = len(self.study.get_trials(deepcopy=False)) + sum(
                    c.remaining for c in self._contributors.values()
                )
                trials = min(trials, max(0, self.settings.space.grid_size() - asked))
            contributor = self._contributors.get(owner)
            if contributor is None:
                contributor = self._contributors[owner] = Contributor(owner, label, 0)
            contributor.remaining += trials
            contributor.label = label or contributor.label
            self._changed_now()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name=f"rnnlab-study-{self.name}", daemon=True
                )
                self._thread.start()
        return trials

    def stop(self, owner: str | None = None) -> int:
        """Drop the trials not yet asked and stop the ones training, of `owner` (None:
        everyone's); they end `stopped` and count as failed trials. Returns how many runs
        were stopped."""
        with self._lock:
            for contributor in self._contributors.values():
                if owner is None or contributor.owner == owner:
                    contributor.remaining = 0
            chosen = [f for f in self._followed.values() if owner is None or f.owner == owner]
            self._changed_now()
        stopped = 0
        for followed in chosen:
            if followed.run_id is not None:
                stopped += self.manager.cancel(followed.run_id, reason="the study was stopped")
        return stopped

    def busy(self) -> bool:
        """Whether trials are training or waiting to be asked."""
        with self._lock:
            return bool(self._followed) or any(c.remaining for c in self._contributors.values())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no trial trains and none waits to be asked; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.busy():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(POLL_S if left is None else min(left, POLL_S))
        return True

    def remaining(self, owner: str | None = None) -> int:
        """Trials still to be asked (of `owner`, or everyone's)."""
        with self._lock:
            return sum(
                c.remaining
                for c in self._contributors.values()
                if owner is None or c.owner == owner
            )

    def running(self, owner: str | None = None) -> list[Followed]:
        with self._lock:
            return [f for f in self._followed.values() if owner is None or f.owner == owner]

    def finished_by(self, owner: str) -> list[int]:
        """The numbers of the trials `owner` asked for that have ended in this process."""
        with self._lock:
            return [n for n, f in self._finished.items() if f["owner"] == owner]

    def label_of(self, number: int) -> str | None:
        """The name the contributor of trial `number` goes by, if this runner knows it."""
        with self._lock:
            if number in self._followed:
                return self._followed[number].label
            return self._finished.get(number, {}).get("label")

    def curves(self) -> dict[int, list[tuple[int, float | None]]]:
        """Each trial's held-out curve as the pruner saw it: trial number -> (step, value)."""
        with self._lock:
            result = {n: list(f.get("curve", [])) for n, f in self._finished.items()}
            result.update({n: list(f.curve) for n, f in self._followed.items()})
            return result

    # -- the runner's thread ------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                self._follow()
                self._launch()
            except Exception:
                log.exception("study %s: a pass of its runner failed", self.name)
            with self._lock:
                if not self.busy() or self.manager.closed:
                    self._thread = None
                    self._changed_now()
                    return
                self._changed.wait(POLL_S)

    def _follow(self) -> None:
        """Report new evaluations, prune, and tell Optuna how finished trials ended."""
        for followed in self.running():
            if followed.run_id is None:
                continue
            for step, loss, metric in self.manager.evaluations(
                followed.run_id, since=followed.reported
            ):
                value = self.settings.intermediate(loss, metric)
                followed.reported = step
                if followed.pruned_at is not None or value is None or not math.isfinite(value):
                    continue  # a pruned trial's last report is the one it was judged on
                followed.trial.report(value, step)
                followed.curve.append((step, value))
                self._changed_now()
                if followed.pruned_at is None and followed.trial.should_prune():
                    followed.pruned_at = step
                    self.manager.cancel(
                        followed.run_id,
                        status="pruned",
                        reason=f"pruned at step {step} by the {self.settings.pruner} pruner: "
                        f"its held-out value {value:.4g} was behind the other trials' there",
                    )
            progress = self.manager.progress(followed.run_id)
            if progress is None or progress.status in ACTIVE_STATUSES:
                continue
            self._tell(followed, progress.status, progress.summary, progress.error, progress.cpu_s)

    def _tell(
        self,
        followed: Followed,
        status: str,
        summary: dict[str, Any] | None,
        error: str | None,
        cpu_s: float,
    ) -> None:
        trial, value = followed.trial, self.settings.value(summary)
        steps = (summary or {}).get("steps", followed.reported)
        with self._lock:  # told once, whatever Optuna says below
            if followed.told:
                return
            followed.told = True
        for key, attribute in (
            ("status", status),
            ("steps", steps),
            ("cpu_s", round(cpu_s, 3)),
            ("error", error),
        ):
            trial.set_user_attr(key, attribute)
        try:
            if status == "completed" and value is not None and math.isfinite(value):
                self.study.tell(trial, value)
                self._keep_if_best(followed)
            elif status == "pruned" and followed.curve:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, state=TrialState.FAIL)
        except RuntimeError:
            # A grid sampler calls study.stop() once its last point is told, which only
            # Optuna's own loop may do; the trial is recorded all the same.
            if self.study.trials[followed.number].state == TrialState.RUNNING:
                raise
        finally:
            with self._lock:
                self._followed.pop(followed.number, None)
                self._finished[followed.number] = {
                    "label": followed.label,
                    "owner": followed.owner,
                    "curve": followed.curve[-CURVE_POINTS:],
                }
                self._changed_now()

    def _keep_if_best(self, followed: Followed) -> None:
        """Pin the run of a trial that is the study's best so far: the store's pruning
        keeps its weights and history however many trials come after (rnnlab.store.
        retention), so the best settings found can always be reloaded."""
        if self.study.best_trial.number != followed.number or followed.run_id is None:
            return
        try:
            self.manager.store.pin(followed.run_id)
        except Exception:  # the run is gone, or the store busy: only the pin is lost
            log.warning("study %s: could not pin its best run %s", self.name, followed.run_id)

    def _launch(self) -> None:
        """Ask and submit trials while contributors have budget and room to wait."""
        with self._lock:
            order = sorted(
                (c for c in self._contributors.values() if c.remaining > 0),
                key=lambda c: (self._count(c.owner), c.asked),
            )
        for contributor in order:
            while contributor.remaining > 0 and self._room_for(contributor.owner):
                if not self._submit_next(contributor):
                    break

    def _count(self, owner: str) -> int:
        return sum(f.owner == owner for f in self._followed.values())

    def _room_for(self, owner: str) -> bool:
        """Whether `owner` may have one more trial now: fewer than WAITING_PER_OWNER of
        theirs wait for a worker, and fewer than `parallel` train."""
        followed = self.running(owner)
        if self.parallel is not None and len(followed) >= self.parallel:
            return False
        waiting = 0
        for f in followed:
            if f.run_id is None:
                return False  # one the manager would not take yet
            progress = self.manager.progress(f.run_id)
            waiting += progress is not None and progress.status == "queued"
        return waiting < WAITING_PER_OWNER

    def _submit_next(self, contributor: Contributor) -> bool:
        """Ask one trial for `contributor` and hand it to the manager; False when the
        manager cannot take it now (it is kept and handed over on a later pass)."""
        with self._lock:
            pending = next(
                (
                    f
                    for f in self._followed.values()
                    if f.owner == contributor.owner and f.run_id is None
                ),
                None,
            )
            if pending is None:
                trial = self.study.ask()
                values = self.settings.space.suggest(trial)
                contributor.remaining -= 1
                contributor.asked += 1
                pending = Followed(
                    trial.number, trial, contributor.owner, contributor.label, values
                )
                self._followed[trial.number] = pending
                self._changed_now()
        trial = pending.trial
        try:
            config = self.settings.space.config(self.settings.base, pending.values)
            run_id = self.manager.submit(
                config,
                owner=contributor.owner,
                label=contributor.label,
                study=self.name,
                trial=trial.number,
                snapshot_every_s=math.inf,
            )
        except QueueFull:
            return False
        except (ConfigError, TooLarge) as error:
            # A combination RunConfig or this machine refuses (init=identity with an LSTM,
            # a step too slow here): the trial fails, says why, and the sampler learns.
            self._tell(pending, "failed", None, str(error), 0.0)
            return True
        except JobError as error:
            # The contributor may add no more runs (their session closed, the server is
            # stopping): this trial fails, saying why, and their other trials are dropped.
            with self._lock:
                contributor.remaining = 0
            self._tell(pending, "failed", None, str(error), 0.0)
            return False
        trial.set_user_attr("run_id", run_id)
        with self._lock:
            pending.run_id = run_id
            self._changed_now()
        return True

    def _adopt_finished_runs(self) -> None:
        """Tell Optuna how trials left running by an earlier process ended, where their
        runs have ended in the store (a server restart ends them `interrupted`)."""
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            run_id = frozen.user_attrs.get("run_id")
            if run_id is None:
                continue
            try:
                record = self.manager.store.get_run(run_id)
            except RunNotFound:
                record = None
            if record is not None and record.status in ACTIVE_STATUSES:
                continue  # another process may be training it
            trial = optuna.Trial(self.study, frozen._trial_id)
            followed = Followed(frozen.number, trial, record.owner if record else "", None, {})
            followed.curve = [
                (step, value) for step, value in sorted(frozen.intermediate_values.items())
            ]
            self._tell(
                followed,
                record.status if record else "failed",
                record.summary if record else None,
                record.error if record else "its run is gone from the store",
                0.0,
            )

    def _changed_now(self) -> None:
        """Something a view shows changed (lock held or not: RLock)."""
        with self._lock:
            self.version += 1
            self._changed.notify_all()


_runners: dict[tuple[int, str], StudyRunner] = {}
_runners_lock = threading.Lock()


def runner_for(
    name: str, manager: JobManager, settings: StudySettings | None = None
) -> StudyRunner:
    """This process's one runner of study `name` on `manager`, shared by everyone who
    opens the study (a room study): made, or reopened from the storage, on first use.
    `settings` only matter for a study that does not exist yet."""
    with _runners_lock:
        runner = _runners.get((id(manager), name))
        if runner is None or runner.manager.closed:
            runner = _runners[(id(manager), name)] = StudyRunner.open(name, manager, settings)
        return runner


def stored_settings(name: str, storage: Any) -> StudySettings | None:
    """The settings study `name` was created with; None if there is no such study."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    stored = study.user_attrs.get(SETTINGS_ATTRIBUTE)
    if stored is None:
        raise StudyNotFound(f"study {name!r} was not made by rnnlab (it has no settings)")
    return StudySettings.from_dict(stored)
