"""The state directory lock: one daemon per state directory, and a killed daemon never blocks a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from asrd.control.statedir import LOCK_NAME, AlreadyRunning, StateLock, running_pid

HOLD = (
    "import sys, time; from pathlib import Path; from asrd.control.statedir import StateLock; "
    "StateLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(600)"
)


def test_a_second_daemon_is_refused_naming_the_first(tmp_path: Path) -> None:
    assert running_pid(tmp_path / "state") is None  # nothing there yet
    first = StateLock(tmp_path / "state")
    first.acquire()
    try:
        assert running_pid(tmp_path / "state") == os.getpid()
        with pytest.raises(AlreadyRunning, match=rf"pid {os.getpid()}\).*{tmp_path / 'state'}"):
            StateLock(tmp_path / "state").acquire()
    finally:
        first.release()
    assert running_pid(tmp_path / "state") is None
    again = StateLock(tmp_path / "state")
    again.acquire()  # released: the next one takes it
    again.release()


def test_a_lock_left_by_a_killed_daemon_is_taken(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert running_pid(state) == holder.pid
        with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
            StateLock(state).acquire()
        os.kill(holder.pid, signal.SIGKILL)  # kill -9: no cleanup runs
        holder.wait(10)
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert (state / LOCK_NAME).read_text().strip() == str(holder.pid)  # the stale file is still there
    assert running_pid(state) is None
    lock = StateLock(state)
    lock.acquire()
    try:
        assert (state / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert running_pid(state) == os.getpid()
    finally:
        lock.release()
