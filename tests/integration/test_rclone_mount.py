"""Sidecars on a real ``rclone mount`` (default VFS mode: no hard links, EIO for xattrs) of a local folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.jobs_memory import MemoryJobStore
from asrd.output.ownership import for_store, owner
from asrd.output.sidecars import move_sidecars, write_atomic


def _mounted(point: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == str(point) for line in f)


@pytest.fixture
def rclone_mount(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("rclone") is None:
        pytest.skip("rclone is not installed (apt-get install rclone fuse3)")
    if not os.path.exists("/dev/fuse") or (shutil.which("fusermount3") is None and shutil.which("fusermount") is None):
        pytest.skip("no FUSE here (/dev/fuse or fusermount missing)")
    remote, point = tmp_path / "remote", tmp_path / "mnt"
    remote.mkdir()
    point.mkdir()
    proc = subprocess.Popen(
        ["rclone", "mount", f":local:{remote}", str(point), "--config", os.devnull],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not _mounted(point):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None and proc.stderr else ""
                pytest.skip(f"rclone mount did not come up here: {err.strip()[-300:]}")
            time.sleep(0.1)
        yield point
    finally:
        proc.terminate()  # rclone unmounts on SIGTERM
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if _mounted(point):
            subprocess.run(["umount", "-l", str(point)], check=False)


def test_sidecars_are_written_replaced_and_moved_on_an_rclone_mount(rclone_mount: Path) -> None:
    ours = for_store(MemoryJobStore())  # the daemon's: the xattr (refused here) and the database
    src = rclone_mount / "memo.mp3"
    src.write_bytes(b"audio")
    target = rclone_mount / "memo.txt"
    write_atomic(target, b"first\n", src, replace=False, ownership=ours)
    write_atomic(target, b"second\n", src, replace=True, ownership=ours)
    assert target.read_bytes() == b"second\n"
    assert owner(target, ours) == str(src.resolve())
    from asrd.config import OutputSettings

    src.rename(rclone_mount / "talk.mp3")
    moved = move_sidecars(src, rclone_mount / "talk.mp3", [target], OutputSettings(formats=("txt",)), ownership=ours)
    assert [p.name for p in moved] == ["talk.txt"]
    assert sorted(os.listdir(rclone_mount)) == ["talk.mp3", "talk.txt"]  # no temp file left behind
