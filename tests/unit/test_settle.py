"""StabilityTracker with a fake clock and a fake stat(): each scenario runs in microseconds."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from asrd.control.settle import Ready, StabilityTracker

SETTLE = 5.0
A = Path("/inbox/a.m4a")
B = Path("/inbox/b.m4a")


class FakeFS:
    """Files as (size, mtime_ns, inode, mode); counts stat() calls."""

    def __init__(self) -> None:
        self.files: dict[Path, tuple[int, int, int, int]] = {}
        self.errors: dict[Path, OSError] = {}
        self.calls = 0
        self._next_inode = 100

    def write(self, path: Path, size: int, mtime_ns: int, mode: int = stat.S_IFREG | 0o644) -> None:
        inode = self.files[path][2] if path in self.files else self._new_inode()
        self.files[path] = (size, mtime_ns, inode, mode)

    def replace(self, path: Path, size: int, mtime_ns: int) -> None:
        self.files[path] = (size, mtime_ns, self._new_inode(), stat.S_IFREG | 0o644)

    def _new_inode(self) -> int:
        self._next_inode += 1
        return self._next_inode

    def stat(self, path: Path) -> os.stat_result:
        self.calls += 1
        if path in self.errors:
            raise self.errors[path]
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
        size, mtime_ns, inode, mode = self.files[path]
        # (mode, ino, dev, nlink, uid, gid, size, atime, mtime, ctime) + float times + ns times
        return os.stat_result(
            (mode, inode, 42, 1, 0, 0, size, 0, mtime_ns // 10**9, 0, 0.0, mtime_ns / 1e9, 0.0, 0, mtime_ns, 0)
        )


@pytest.fixture
def fs() -> FakeFS:
    return FakeFS()


@pytest.fixture
def tracker(fs: FakeFS) -> StabilityTracker:
    return StabilityTracker(SETTLE, stat=fs.stat)


def run(tracker: StabilityTracker, start: float, stop: float, tick: float = 0.5) -> list[tuple[float, Ready]]:
    """Step every ``tick`` seconds from ``start`` to ``stop`` inclusive; (time, Ready) for each result."""
    out = []
    steps = round((stop - start) / tick)
    for i in range(steps + 1):
        now = start + i * tick
        out.extend((now, r) for r in tracker.step(now))
    return out


def test_quiet_and_unchanged_file_is_ready_once(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 1000, 1)
    tracker.touch(A, 0.0)
    results = run(tracker, 0.0, 30.0)
    assert [r for _, r in results] == [Ready(A, 1000, 1, 42, fs.files[A][2])]
    when = results[0][0]
    assert SETTLE <= when <= SETTLE + tracker.recheck_seconds + 0.5
    assert tracker.pending == 0


def test_events_keep_a_file_waiting(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 1000, 1)
    for i in range(40):  # an event every 0.5 s for 20 s, content unchanged (close/open cycles)
        now = i * 0.5
        tracker.touch(A, now)
        assert tracker.step(now) == []
    results = run(tracker, 20.0, 40.0)
    assert len(results) == 1
    assert results[0][0] >= 19.5 + SETTLE


def test_slow_writer_without_events_waits_for_unchanged_size(tracker: StabilityTracker, fs: FakeFS) -> None:
    # NFS: one event at creation, then only growth that stat() sees
    tracker.touch(A, 0.0)
    ready = []
    for i in range(200):  # 100 bytes every 0.1 s for 20 s
        now = i * 0.1
        fs.write(A, 100 * (i + 1), i)
        ready += tracker.step(now)
    assert ready == []
    results = run(tracker, 20.0, 40.0, tick=0.1)
    assert [r.size for _, r in results] == [20000]
    assert results[0][0] >= 19.9 + SETTLE


def test_two_observations_settle_apart_are_needed(tracker: StabilityTracker, fs: FakeFS) -> None:
    # The first look happens long after the last event (a busy main loop): still needs a second look.
    fs.write(A, 10, 1)
    tracker.touch(A, 0.0)
    assert tracker.step(100.0) == []
    assert tracker.step(100.0 + SETTLE - 0.1) == []
    assert len(tracker.step(100.0 + SETTLE + tracker.recheck_seconds)) == 1


def test_replaced_file_restarts_the_wait(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    tracker.touch(A, 0.0)
    assert tracker.step(0.0) == []
    fs.replace(A, 10, 1)  # same size and mtime, new inode: renamed over
    assert tracker.step(SETTLE) == []
    [ready] = tracker.step(2 * SETTLE)
    assert ready.inode == fs.files[A][2]


def test_zero_byte_placeholder_waits_until_filled(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 0, 1)
    tracker.touch(A, 0.0)
    assert run(tracker, 0.0, 60.0) == []
    assert tracker.pending == 1  # waiting, not failed
    calls = fs.calls
    assert run(tracker, 60.5, 600.0) == []
    assert fs.calls == calls  # parked: an empty file costs no stat() until an event names it
    fs.write(A, 5000, 2)
    tracker.touch(A, 601.0)
    results = run(tracker, 601.0, 620.0)
    assert [r.size for _, r in results] == [5000]


def test_vanished_file_is_dropped_silently(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    tracker.touch(A, 0.0)
    tracker.step(0.0)
    del fs.files[A]
    assert run(tracker, 1.0, 20.0) == []
    assert tracker.pending == 0


def test_not_regular_files_are_dropped(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 4096, 1, mode=stat.S_IFDIR | 0o755)
    fs.write(B, 10, 1, mode=stat.S_IFLNK | 0o777)
    tracker.touch(A, 0.0)
    tracker.touch(B, 0.0)
    assert tracker.step(0.0) == []
    assert tracker.pending == 0


def test_stat_errors_other_than_missing_keep_waiting(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    fs.errors[A] = OSError(errno.ESTALE, "Stale file handle")
    tracker.touch(A, 0.0)
    assert run(tracker, 0.0, 20.0) == []
    assert tracker.pending == 1
    del fs.errors[A]
    assert len(run(tracker, 20.5, 40.0)) == 1


def test_forget_and_retouch(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    fs.write(B, 10, 1)
    tracker.touch(A, 0.0)
    tracker.touch(B, 0.0)
    tracker.forget(A)
    tracker.forget(Path("/never/touched"))
    assert [r.path for _, r in run(tracker, 0.0, 20.0)] == [B]
    # Seen again after being ready: tracked again (the job store decides whether it is new work).
    tracker.touch(B, 30.0)
    assert B in tracker
    assert [r.path for _, r in run(tracker, 30.0, 50.0)] == [B]


def test_ready_in_first_touched_order(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(B, 10, 1)
    fs.write(A, 10, 1)
    tracker.touch(B, 0.0)
    tracker.touch(A, 0.0)
    assert [r.path for _, r in run(tracker, 0.0, 20.0)] == [B, A]


def test_stat_is_rate_limited(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    for i in range(100):  # an event and a step every 10 ms for 1 s
        tracker.touch(A, i * 0.01)
        tracker.step(i * 0.01)
    assert fs.calls <= 1 / tracker.recheck_seconds + 1


def test_settle_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        StabilityTracker(0)


def test_waiting_says_what_each_file_waits_for_and_until_when(tracker: StabilityTracker, fs: FakeFS) -> None:
    fs.write(A, 10, 1)
    fs.write(B, 0, 1)
    tracker.touch(A, 0.0)
    tracker.touch(B, 0.0)
    tracker.step(0.0)
    fs.write(A, 20, 2)  # still being written
    tracker.step(2.0)
    by_path = {w.path: w for w in tracker.waiting()}
    assert by_path[A].changing and not by_path[A].empty and by_path[A].ready_at == 2.0 + SETTLE
    assert not by_path[B].changing and by_path[B].empty
    ready = run(tracker, 2.5, 20.0)
    assert [r.path for _, r in ready] == [A]
    assert 7.0 <= ready[0][0] <= 7.0 + tracker.recheck_seconds  # at the first look after ready_at
    assert [w.path for w in tracker.waiting()] == [B]  # the placeholder waits on
