"""The daemon's state directory: the lock that keeps a second daemon out, and where things live."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "asrd.lock"
DB_NAME = "jobs.sqlite3"
STATUS_NAME = "status.json"
WEB_TOKEN_NAME = "web-token"  # [web] auth = "token": the dashboard's login token (mode 0600)


class AlreadyRunning(Exception):
    """Another daemon holds the state directory."""


class StateLock:
    """An exclusive ``flock`` on ``state_dir/asrd.lock`` for the daemon's lifetime.

    The kernel drops the lock when the process dies, kill -9 included, so a stale lock file
    never blocks a restart.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise AlreadyRunning(
                f"another asrd daemon ({who}) is already using the state directory {self.path.parent}; "
                "stop it first, or give this one its own [daemon] state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def running_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding ``state_dir``, or None when none does."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    finally:
        os.close(fd)
    return None
