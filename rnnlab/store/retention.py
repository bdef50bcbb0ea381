"""Keeping the store's file bounded: which finished runs keep their weights and whole history.

    store.prune()                               # RetentionPolicy.from_environment()
    store.prune(RetentionPolicy(disk_budget_mb=256))
    store.pin(run_id)                           # keep it, whatever the count rules say

Runs that are queued or running are never touched. Of the finished ones:

    weights     each owner's newest `weights_per_owner` runs keep their weights, and so do
                pinned runs; the others' are dropped
    history     beyond each owner's newest `history_per_owner` runs, unpinned runs' steps and
                evaluations are thinned to `history_points` (the first, every k-th, the last,
                and the first solved evaluation); the one snapshot a run keeps stays
    owner share what one owner's runs take is kept under `owner_share` of the budget
    budget      what the file holds is kept under the budget less `headroom` (room for the
                write-ahead log and for runs that finish before the next prune)

Under the owner share or the budget, what goes first is: the weights of unpinned runs, oldest
first; then their history, thinned, and their snapshot; then the same of pinned runs, oldest
first (a pinned run is kept unless the bound cannot be met otherwise). A run's record (its
config and summary) is never dropped: Compare lists it, and its thinned curve still draws.

A run that finishes while the file is already at its budget (pruning lags behind runs that
finish faster) keeps no large weights: weights_fit, which the store asks before writing them.

Changes are written in short transactions (BATCH_SECONDS each), so that training runs'
writes wait little; the pages freed are given back to the file system (incremental vacuum)
and the write-ahead log is checkpointed and truncated. A file made before auto_vacuum was
set is converted by the first prune (one VACUUM).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .database import JOURNAL_SIZE_LIMIT, Database, RunNotFound
from .queries import Queries
from .schema import ACTIVE_STATUSES

MiB = 2**20
# Roughly what one step or evaluation row takes in the file, with its share of the b-tree.
ROW_BYTES = 56
# A prune's writes are split into transactions of about this long.
BATCH_SECONDS = 0.05
# Freed pages are first given back to the file system this many at a time (one transaction
# each); later chunks are sized to take about BATCH_SECONDS, and move at most 4x as many
# pages (what they move goes through the write-ahead log).
VACUUM_PAGES = 256
# More free pages than this (and than pages in use) are given back by a VACUUM instead.
VACUUM_ABOVE_PAGES = 65_536
# A prune with nothing to drop still checkpoints a write-ahead log longer than this,
# waiting at most IDLE_CHECKPOINT_PATIENCE_MS for other writers and readers.
IDLE_CHECKPOINT_WAL_BYTES = 4 * MiB
IDLE_CHECKPOINT_PATIENCE_MS = 200
# Rounds of planning and dropping in one prune (each round measures the file again).
MAX_ROUNDS = 8

_ACTIVE = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)

# What a plan asks for: drop a run's weights; thin its history; thin it and drop its snapshot.
DROP_WEIGHTS, THIN, SHRINK = "drop weights", "thin", "shrink"
# What a prune reports dropped.
WEIGHTS, HISTORY, SNAPSHOT = "weights", "history", "snapshot"


def _setting(default: float, lo: float, hi: float, variable: str, help: str) -> Any:
    return field(default=default, metadata={"range": (lo, hi), "env": variable, "help": help})


@dataclass(frozen=True)
class RetentionPolicy:
    """What a prune keeps; each field can be set by the environment variable it names."""

    # The store's file and its write-ahead log together stay under this.
    disk_budget_mb: float = _setting(
        1024, 1, 10**7, "RNNLAB_DISK_BUDGET_MB", "disk the run store may take, MB"
    )
    # Each owner's newest runs that keep their trained weights.
    weights_per_owner: int = _setting(
        10, 0, 10**6, "RNNLAB_KEEP_WEIGHTS", "newest runs of each owner that keep weights"
    )
    # Each owner's newest runs that keep every step; older ones are thinned.
    history_per_owner: int = _setting(
        20, 0, 10**6, "RNNLAB_KEEP_HISTORY", "newest runs of each owner that keep every step"
    )
    # Points an older run's steps (and its evaluations) are thinned to.
    history_points: int = _setting(
        500, 10, 10**6, "RNNLAB_HISTORY_POINTS", "points an older run's curve is thinned to"
    )
    # The most of the budget one owner's finished runs may take.
    owner_share: float = _setting(
        0.1, 0.0, 1.0, "RNNLAB_OWNER_SHARE", "share of the budget one owner's runs may take"
    )
    # Of the budget, what pruning leaves for the log and for runs that finish meanwhile.
    headroom: float = _setting(
        0.15, 0.0, 0.9, "RNNLAB_DISK_HEADROOM", "share of the budget left free by pruning"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            problem = _problem(f, value)
            if problem:
                raise ValueError(f"{f.name} {problem}")
            if f.type == "int":
                object.__setattr__(self, f.name, int(value))  # 3.0 from a command line: 3

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> RetentionPolicy:
        """The defaults, overridden by the environment's RNNLAB_* variables, then by the
        `overrides` that are not None; ValueError naming what is not a valid number."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            variable = f.metadata["env"]
            text = environ.get(variable, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = text
            problem = _problem(f, value)
            if problem:
                raise ValueError(f"{variable} {problem}")
            values[f.name] = value
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    @property
    def budget_bytes(self) -> int:
        return int(self.disk_budget_mb * MiB)

    @property
    def content_bytes(self) -> int:
        """What a prune brings the file's contents down to."""
        return int(self.budget_bytes * (1 - self.headroom))

    @property
    def owner_bytes(self) -> int:
        """The most one owner's finished runs may take."""
        return int(self.content_bytes * self.owner_share)

    def thinned_bytes(self) -> int:
        """About what a thinned run's steps and evaluations take."""
        return 2 * self.history_points * ROW_BYTES


def _problem(f: dataclasses.Field, value: Any) -> str | None:
    """What is wrong with `value` for setting `f`, or None."""
    whole = f.type == "int"
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return f"must be {kind}, got {value!r}"
    if whole and value != int(value):
        return f"must be {kind}, got {value!r}"
    lo, hi = f.metadata["range"]
    if not lo <= value <= hi:
        return f"is {value:g}, out of range; allowed {lo:g} to {hi:g}"
    return None


@dataclass
class Footprint:
    """One finished run as a prune sees it: whose, how old, and what it holds."""

    id: str
    owner: str
    created_at: float
    pinned: bool
    thinned: bool
    weights_bytes: int  # 0: it keeps no weights
    history_bytes: int  # its step and evaluation rows
    snapshot_bytes: int  # 0: it keeps no snapshot

    @property
    def total(self) -> int:
        return self.weights_bytes + self.history_bytes + self.snapshot_bytes


def plan_prune(
    runs: Iterable[Footprint], policy: RetentionPolicy, used_bytes: int
) -> list[tuple[str, str]]:
    """The (action, run id) pairs that bring finished `runs` (newest first) within the
    policy, for a file whose contents take `used_bytes`. Pure: nothing is read or written."""
    runs = [dataclasses.replace(run) for run in runs]
    actions: dict[tuple[str, str], None] = {}  # ordered, no repeats
    freed = 0

    def apply(action: str, run: Footprint) -> int:
        nonlocal freed
        before = run.total
        if action == DROP_WEIGHTS:
            run.weights_bytes = 0
        else:
            run.history_bytes = min(run.history_bytes, policy.thinned_bytes())
            run.thinned = True
            if action == SHRINK:
                run.snapshot_bytes = 0
        actions[(action, run.id)] = None
        freed += before - run.total
        return before - run.total

    by_owner: dict[str, list[Footprint]] = defaultdict(list)
    for run in runs:
        by_owner[run.owner].append(run)
    for owned in by_owner.values():
        for rank, run in enumerate(owned):
            if run.pinned:
                continue
            if rank >= policy.weights_per_owner and run.weights_bytes:
                apply(DROP_WEIGHTS, run)
            if rank >= policy.history_per_owner and not run.thinned:
                apply(THIN, run)

    for owned in by_owner.values():
        excess = sum(run.total for run in owned) - policy.owner_bytes
        for action, run in _what_goes_first(owned, policy):
            if excess <= 0:
                break
            excess -= apply(action, run)

    excess = used_bytes - freed - policy.content_bytes
    for action, run in _what_goes_first(runs, policy):
        if excess <= 0:
            break
        excess -= apply(action, run)
    return list(actions)


def _what_goes_first(
    runs: list[Footprint], policy: RetentionPolicy
) -> Iterable[tuple[str, Footprint]]:
    """Under a bound: unpinned weights, unpinned histories and snapshots, then the same of
    pinned runs; oldest first. Yields only what would still free something."""
    oldest_first = sorted(runs, key=lambda run: (run.created_at, run.id))
    for pinned in (False, True):
        for action in (DROP_WEIGHTS, SHRINK):
            for run in oldest_first:
                if run.pinned == pinned and _frees(action, run, policy):
                    yield action, run


def _frees(action: str, run: Footprint, policy: RetentionPolicy) -> bool:
    if action == DROP_WEIGHTS:
        return run.weights_bytes > 0
    return run.snapshot_bytes > 0 or run.history_bytes > policy.thinned_bytes()


def _kept_positions(count: int, points: int) -> list[int]:
    """Positions of the rows a curve of `count` rows keeps: the first, every k-th, the last;
    at most `points` of them."""
    if count <= points:
        return list(range(count))
    stride = math.ceil((count - 1) / (points - 1))
    kept = list(range(0, count - 1, stride))
    return [*kept, count - 1]


@dataclass(frozen=True)
class DiskUsage:
    """The store's file on disk: the database, its write-ahead log, and what is in use."""

    file_bytes: int
    wal_bytes: int
    used_bytes: int  # pages holding data (the rest of the file is free pages)

    @property
    def total_bytes(self) -> int:
        return self.file_bytes + self.wal_bytes


@dataclass(frozen=True)
class PruneReport:
    """What a prune dropped, and the store's size before and after."""

    weights_dropped: tuple[str, ...]  # run ids whose weights were dropped
    histories_thinned: tuple[str, ...]  # run ids whose steps and evaluations were thinned
    snapshots_dropped: tuple[str, ...]  # run ids whose snapshot was dropped
    before: DiskUsage
    after: DiskUsage
    budget_bytes: int
    converted: bool = False  # the file was made incremental (a VACUUM)
    checkpointed: bool = False  # the write-ahead log was checkpointed and truncated
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.weights_dropped or self.histories_thinned or self.snapshots_dropped)

    @property
    def over_budget(self) -> bool:
        """Even after pruning, the file is over the budget (pinned runs, records)."""
        return self.after.total_bytes > self.budget_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "changed": self.changed,
            "over_budget": self.over_budget,
        }


class Retention(Queries):
    """RunStore's part that pins runs and prunes the rest (see the module doc)."""

    def pin(self, run_id: str, pinned: bool = True) -> None:
        """Keep the run's weights and history through prunes (or stop keeping them)."""

        def work(db: sqlite3.Connection) -> None:
            changed = db.execute(
                "UPDATE runs SET pinned = ? WHERE id = ?", (int(pinned), run_id)
            ).rowcount
            if not changed:
                raise RunNotFound(f"no run with id {run_id!r}")

        self._write(work)

    def disk_usage(self) -> DiskUsage:
        """The file's size, its write-ahead log's, and the bytes of the pages in use."""
        return DiskUsage(
            file_bytes=_size(self.path), wal_bytes=self.wal_bytes(), used_bytes=self.used_bytes()
        )

    def prune(self, policy: RetentionPolicy | None = None) -> PruneReport:
        """Apply the retention policy (default: RetentionPolicy.from_environment()).

        Cheap when there is nothing to drop (a few queries): call it after each finished
        run, or every minute. Never touches queued or running runs.
        """
        policy = RetentionPolicy.from_environment() if policy is None else policy
        started = time.monotonic()
        before = self.disk_usage()
        self._measure_finished_runs()
        done: dict[str, list[str]] = {WEIGHTS: [], HISTORY: [], SNAPSHOT: []}
        for _ in range(MAX_ROUNDS):
            runs = self._footprints()
            plan = plan_prune(runs, policy, self.disk_usage().used_bytes)
            if not plan:
                break
            pinned = {run.id: run.pinned for run in runs}
            for effects, run_id in self._apply(plan, policy, pinned):
                for effect in effects:
                    done[effect].append(run_id)
        changed = any(done.values())
        if changed:
            self._give_back_free_pages()
        converted = self._convert_to_incremental()
        checkpointed = False
        if changed or converted:
            checkpointed = self.checkpoint()
        elif self.wal_bytes() > IDLE_CHECKPOINT_WAL_BYTES:
            checkpointed = self.checkpoint(IDLE_CHECKPOINT_PATIENCE_MS)
        return PruneReport(
            weights_dropped=tuple(dict.fromkeys(done[WEIGHTS])),
            histories_thinned=tuple(dict.fromkeys(done[HISTORY])),
            snapshots_dropped=tuple(dict.fromkeys(done[SNAPSHOT])),
            before=before,
            after=self.disk_usage(),
            budget_bytes=policy.budget_bytes,
            converted=converted,
            checkpointed=checkpointed,
            seconds=time.monotonic() - started,
        )

    def _footprints(self) -> list[Footprint]:
        """Every finished run, newest first, with what it holds."""
        rows = self._reader().execute(
            "SELECT r.id, r.owner, r.created_at, r.pinned, r.thinned,"
            " coalesce((SELECT length(data) FROM weights WHERE run_id = r.id), 0),"
            " coalesce(r.history_bytes, 0), coalesce(r.snapshot_bytes, 0)"
            f" FROM runs AS r WHERE r.status NOT IN ({_ACTIVE})"
            " ORDER BY r.created_at DESC, r.id"
        )
        return [
            Footprint(run_id, owner, created, bool(pinned), bool(thinned), *sizes)
            for run_id, owner, created, pinned, thinned, *sizes in rows
        ]

    def _measure_finished_runs(self) -> None:
        """Measure the history and snapshot of finished runs not measured since their last
        update."""
        unmeasured = [
            run_id
            for (run_id,) in self._reader().execute(
                "SELECT id FROM runs WHERE (measured_at IS NULL OR measured_at < updated_at)"
                f" AND status NOT IN ({_ACTIVE})"
            )
        ]
        self._in_batches(unmeasured, _measure)

    def _apply(
        self, plan: list[tuple[str, str]], policy: RetentionPolicy, pinned: dict[str, bool]
    ) -> list[tuple[tuple[str, ...], str]]:
        """Carry out the plan in short transactions; returns (what was dropped, run id)
        pairs. A run that was pinned, unpinned or deleted since `pinned` was read is left
        as it is."""

        def one(db: sqlite3.Connection, item: tuple[str, str]) -> tuple[tuple[str, ...], str]:
            action, run_id = item
            row = db.execute("SELECT status, pinned FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] in ACTIVE_STATUSES or bool(row[1]) != pinned.get(run_id):
                return (), run_id
            effects: list[str] = []
            if action == DROP_WEIGHTS:
                if db.execute("DELETE FROM weights WHERE run_id = ?", (run_id,)).rowcount:
                    effects.append(WEIGHTS)
                return tuple(effects), run_id
            if _thin(db, run_id, policy.history_points):
                effects.append(HISTORY)
            if (
                action == SHRINK
                and db.execute("DELETE FROM snapshots WHERE run_id = ?", (run_id,)).rowcount
            ):
                effects.append(SNAPSHOT)
            _measure(db, run_id)
            return tuple(effects), run_id

        return self._in_batches(plan, one)

    def _in_batches(self, items: list, work: Callable[[sqlite3.Connection, Any], Any]) -> list:
        """work(db, item) for each item, in transactions of about BATCH_SECONDS each;
        returns what work returned, in order."""
        results: list = []
        while len(results) < len(items):

            def batch(db: sqlite3.Connection, start: int = len(results)) -> list:
                ended = time.monotonic() + BATCH_SECONDS
                done = [work(db, items[start])]
                while start + len(done) < len(items) and time.monotonic() < ended:
                    done.append(work(db, items[start + len(done)]))
                return done

            results += self._write(batch)
        return results

    def _give_back_free_pages(self) -> None:
        """Return the free pages to the file system: a few at a time (each transaction
        about BATCH_SECONDS), or, when more than VACUUM_ABOVE_PAGES are free and more of
        the file is free than in use, with one VACUUM (freeing page by page costs in
        proportion to the free pages squared: 80 s for 700 MB; a VACUUM copies what is in
        use, through the write-ahead log, holding the write lock meanwhile)."""
        reader = self._reader()
        if reader.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            return
        pages = VACUUM_PAGES
        while free := reader.execute("PRAGMA freelist_count").fetchone()[0]:
            used = reader.execute("PRAGMA page_count").fetchone()[0] - free
            if free > max(used, VACUUM_ABOVE_PAGES):
                self._vacuum()
                return
            started = time.monotonic()
            with self._write_lock:
                # executescript steps the pragma to its end; execute() frees one page.
                self._writer.executescript(f"PRAGMA incremental_vacuum({pages});")
                self._keep_wal_short()  # the pages it moved went through the log
            took = max(time.monotonic() - started, 1e-4)
            pages = int(min(max(pages * BATCH_SECONDS / took, 16), 4 * VACUUM_PAGES))

    def _vacuum(self) -> bool:
        """Rewrite the file without its free pages (and incremental from then on); holds
        the write lock while it copies what is in use. False if it must wait."""
        with self._write_lock:
            try:
                self._writer.execute("PRAGMA auto_vacuum = INCREMENTAL")
                self._writer.execute("VACUUM")
            except sqlite3.OperationalError:
                return False
        return True

    def _convert_to_incremental(self) -> bool:
        """A file made without auto_vacuum = INCREMENTAL is converted: one VACUUM, which
        rewrites it once. False if it already was, or the VACUUM must wait."""
        if self._reader().execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            return False
        return self._vacuum()


def weights_fit(store: Database, size: int) -> bool:
    """Whether `size` more bytes of weights leave the store's contents within its budget
    (RetentionPolicy.from_environment()) less room for the write-ahead log: the backstop
    for when runs finish faster than prune drops old weights."""
    try:
        budget = RetentionPolicy.from_environment().budget_bytes
    except ValueError:  # said by whoever prunes; a run's end is no place for it
        budget = RetentionPolicy().budget_bytes
    return store.used_bytes() + size <= budget - JOURNAL_SIZE_LIMIT


def _size(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _measure(db: sqlite3.Connection, run_id: str) -> None:
    """Record what the run's steps, evaluations and snapshot take."""
    rows = db.execute(
        "SELECT (SELECT count(*) FROM steps WHERE run_id = ?)"
        " + (SELECT count(*) FROM evaluations WHERE run_id = ?)",
        (run_id, run_id),
    ).fetchone()[0]
    snapshot = db.execute(
        "SELECT length(CAST(data AS BLOB)) FROM snapshots WHERE run_id = ?", (run_id,)
    ).fetchone()
    db.execute(
        "UPDATE runs SET history_bytes = ?, snapshot_bytes = ?, measured_at = updated_at"
        " WHERE id = ?",
        (rows * ROW_BYTES, 0 if snapshot is None else snapshot[0], run_id),
    )


def _thin(db: sqlite3.Connection, run_id: str, points: int) -> bool:
    """Cut the run's steps and evaluations to at most `points` rows each (the first,
    every k-th, the last; of evaluations also the first solved one). True if any went."""
    cut = False
    for table, first_solved in (("steps", False), ("evaluations", True)):
        query = f"SELECT step FROM {table} WHERE run_id = ? ORDER BY step"
        steps = [step for (step,) in db.execute(query, (run_id,))]
        if len(steps) <= points:
            continue
        kept = {steps[i] for i in _kept_positions(len(steps), points - first_solved)}
        if first_solved:
            solved = db.execute(
                "SELECT min(step) FROM evaluations WHERE run_id = ? AND solved", (run_id,)
            ).fetchone()[0]
            if solved is not None:
                kept.add(solved)
        ordered = sorted(kept)
        db.executemany(
            f"DELETE FROM {table} WHERE run_id = ? AND step > ? AND step < ?",
            [(run_id, lo, hi) for lo, hi in itertools.pairwise(ordered) if hi - lo > 1],
        )
        cut = True
    db.execute("UPDATE runs SET thinned = 1 WHERE id = ?", (run_id,))
    return cut
