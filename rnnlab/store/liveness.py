"""Which runs are really running: every recording process holds a lock while it lives.

A process that records active runs holds an advisory lock on a file named after it in
`runs.alive/`; the operating system drops the lock when the process dies, however it dies.
Opening a store (and listing runs) marks the `queued` or `running` runs of processes that
no longer hold their lock as `interrupted`: never silently lost, never shown as running.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
import time
from pathlib import Path

from .database import Database, StoreError

# Listing runs looks for dead processes' runs at most this often.
RECOVER_SECONDS = 2.0


class _ProcessLock:
    """This process's claim to be alive, as an advisory lock on `<alive dir>/<token>.lock`.

    The lock file is created under a temporary name, locked, then renamed into place, so a
    file with the final name is always locked while its process lives.
    """

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(8)
        temporary = directory / f".{self.token}.tmp"
        self.fd = os.open(temporary, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self.fd):
            os.close(self.fd)
            raise StoreError(f"cannot lock {temporary}")
        os.replace(temporary, directory / f"{self.token}.lock")


_process_locks: dict[Path, _ProcessLock] = {}
_process_locks_guard = threading.Lock()


def process_token(directory: Path) -> str:
    """This process's token in `directory`, locked from the first call until it exits."""
    with _process_locks_guard:
        lock = _process_locks.get(directory)
        if lock is None:
            lock = _process_locks[directory] = _ProcessLock(directory)
        return lock.token


def _forget_process_locks() -> None:
    """In a forked child: the parent's locks are the parent's, not ours."""
    for lock in _process_locks.values():
        with contextlib.suppress(OSError):
            os.close(lock.fd)
    _process_locks.clear()


@atexit.register
def _release_process_locks() -> None:
    """On a clean exit, remove our lock files (a killed process leaves them to be reaped)."""
    for directory, lock in list(_process_locks.items()):
        with contextlib.suppress(OSError):
            os.unlink(directory / f"{lock.token}.lock")
        with contextlib.suppress(OSError):
            os.close(lock.fd)
    _process_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_process_locks)


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on fd without waiting; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class Liveness(Database):
    """RunStore's part that finds runs whose process died (see the module doc)."""

    def __init__(self, path=None):
        super().__init__(path)
        self._alive_dir = self.path.with_name(self.path.stem + ".alive")
        self._recovered_at = 0.0

    def _process_token(self) -> str:
        return process_token(self._alive_dir)

    def _recover_now_and_then(self) -> None:
        if time.monotonic() - self._recovered_at >= RECOVER_SECONDS:
            self.recover_interrupted()

    def recover_interrupted(self) -> list[str]:
        """Mark the queued and running runs of processes that died as interrupted.

        Returns the ids it marked. Called on opening the store and (at most every few
        seconds) when listing runs.
        """
        self._recovered_at = time.monotonic()
        own = _process_locks.get(self._alive_dir)
        rows = (
            self._reader()
            .execute("SELECT DISTINCT process FROM runs WHERE status IN ('queued', 'running')")
            .fetchall()
        )
        dead: dict[str | None, int | None] = {}
        for (token,) in rows:
            if own is not None and token == own.token:
                continue
            fd = self._open_alive_file(token)
            if fd is None or _try_lock(fd):
                dead[token] = fd
            else:
                os.close(fd)
        marked: list[str] = []
        if dead:
            now = time.time()

            def mark(db) -> list[str]:
                ids = []
                for token in dead:
                    ids += [
                        run_id
                        for (run_id,) in db.execute(
                            "SELECT id FROM runs WHERE process IS ?"
                            " AND status IN ('queued', 'running')",
                            (token,),
                        )
                    ]
                    db.execute(
                        "UPDATE runs SET status = 'interrupted', finished_at = ?, updated_at = ?,"
                        " error = 'the process running it stopped (killed, crashed or shut"
                        " down)' WHERE process IS ? AND status IN ('queued', 'running')",
                        (now, now, token),
                    )
                return ids

            marked = self._write(mark)
        for token, fd in dead.items():
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._alive_dir / f"{token}.lock")
                os.close(fd)
        self._remove_stale_alive_files()
        return marked

    def _open_alive_file(self, token: str | None) -> int | None:
        if not token or not token.isalnum():
            return None
        try:
            return os.open(self._alive_dir / f"{token}.lock", os.O_RDWR)
        except OSError:
            return None

    def _remove_stale_alive_files(self) -> None:
        """Lock files of dead processes that left no active runs (e.g. only read)."""
        own = _process_locks.get(self._alive_dir)
        try:
            names = [p for p in self._alive_dir.iterdir() if p.suffix == ".lock"]
        except OSError:
            return
        for path in names:
            if own is not None and path.stem == own.token:
                continue
            fd = self._open_alive_file(path.stem)
            if fd is None:
                continue
            if _try_lock(fd):
                with contextlib.suppress(OSError):
                    path.unlink()
            os.close(fd)
