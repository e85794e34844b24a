"""The watcher and the stability tracker wired as the daemon wires them, on real folders.

Real watchdog observers, real files, real rsync, the real monotonic clock; a short settle time keeps
the whole file well under 30 s.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers import inotify_c

from asrd.config import InboxSettings
from asrd.control import watch
from asrd.control.ignore import IgnoreRules
from asrd.control.settle import Ready, StabilityTracker
from asrd.control.watch import InboxWatcher, choose_mode, default_settle_seconds, mount_type, parse_mountinfo, scan

SETTLE = 0.5
LINUX = os.path.exists("/proc/self/mountinfo")
needs_inotify = pytest.mark.skipif(not LINUX, reason="inotify specifics")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a watchdog thread running (Home Assistant does the same)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3
    while (leaked := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"threads left running: {leaked}"


class FakeClock:
    """The tracker's clock for tests whose claim is about timing: it moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """The daemon's loop in miniature: callbacks fill a set; pump() drains it into the tracker.

    The tracker reads the real monotonic clock unless ``use_fake_clock()`` was called; then time moves
    only by ``advance()``, and ``sync()`` waits (in real time) until the watcher has delivered every event
    so far, so a machine under load cannot turn a writer's pause into a settled file.
    """

    SYNC_NAME = "sync-marker.txt"  # a sidecar name: the watcher reports it, the rules never accept it

    def __init__(self, inbox: InboxSettings) -> None:
        self.inbox = inbox
        self.root = Path(inbox.path)
        self.rules = IgnoreRules(inbox.include, inbox.exclude)
        self.tracker = StabilityTracker(SETTLE)
        self.reported: list[Path] = []  # every path the watcher named, in order
        self.ready: list[tuple[float, Ready]] = []
        self.overflows = 0
        self._lock = threading.Lock()
        self._incoming: set[Path] = set()
        self.watcher = InboxWatcher(inbox, self._on_path, self._on_overflow)
        self.clock: Callable[[], float] = time.monotonic
        self._fake: FakeClock | None = None

    def use_fake_clock(self) -> FakeClock:
        self._fake = FakeClock()
        self.clock = self._fake
        return self._fake

    def advance(self, seconds: float) -> None:
        """Move the fake clock on by ``seconds`` in small steps, pumping at each."""
        assert self._fake is not None
        end = self._fake.now + seconds
        while self._fake.now < end - 1e-9:
            self._fake.now = min(self._fake.now + 0.01, end)
            self.pump()

    def sync(self, timeout: float = 10.0) -> None:
        """Return once the watcher has reported everything that happened in the inbox before this call.
        inotify delivers one watch's events in order, so the marker's event comes after all of them."""
        marker = self.root / self.SYNC_NAME
        with self._lock:
            seen = self.reported.count(marker)
        with open(marker, "ab") as f:
            f.write(b".")
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self.reported.count(marker) > seen:
                    return
            assert time.monotonic() < deadline, "the watcher did not report the sync marker"
            time.sleep(0.005)

    def _on_path(self, path: Path) -> None:  # watchdog's thread: record and return
        with self._lock:
            self._incoming.add(path)
            self.reported.append(path)

    def _on_overflow(self) -> None:  # watchdog's inotify thread
        with self._lock:
            self.overflows += 1

    def pump(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, set()
        now = self.clock()
        for path in incoming:
            if path.is_dir() and not path.is_symlink():  # a folder arrived: its files may have no events
                for found in scan(self.inbox, self.rules, under=path):
                    self.tracker.touch(found, now)
            elif self.rules.accepts(path.relative_to(self.root)):
                self.tracker.touch(path, now)
        self.ready.extend((now, r) for r in self.tracker.step(now))

    def run_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            time.sleep(0.02)

    def run_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out; ready={self.ready} reported={self.reported[-5:]}"
            self.pump()
            time.sleep(0.02)

    def run_while(self, worker: Callable[[], None]) -> None:
        """Run ``worker`` in a thread, pumping meanwhile (the writer and the daemon run concurrently)."""
        thread = threading.Thread(target=worker)
        thread.start()
        while thread.is_alive():
            self.pump()
            time.sleep(0.02)
        thread.join()

    def ready_paths(self) -> list[Path]:
        return [r.path for _, r in self.ready]

    def settle_once(self, path: Path) -> Ready:
        """Wait for ``path`` to be ready, then check that nothing else turns up for a while."""
        self.run_until(lambda: bool(self.ready))
        self.run_for(2 * SETTLE)  # long enough for a second Ready to show up if there were one
        assert self.ready_paths() == [path]
        return self.ready[0][1]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def rig(inbox: Path) -> Iterator[Rig]:
    rig = Rig(InboxSettings(path=inbox, watch="native"))
    rig.watcher.start()
    yield rig
    rig.watcher.stop()


def test_slow_writer_is_ready_once_after_it_stops(rig: Rig, inbox: Path) -> None:
    # 100 B every 50 ms for 2 s (paperless test_handles_slow_write), on the tracker's clock: however long
    # the machine stalls between two writes, the tracker sees 50 ms pass.
    clock = rig.use_fake_clock()
    target = inbox / "memo.m4a"
    with open(target, "wb") as f:
        for _ in range(40):
            f.write(b"x" * 100)
            f.flush()
            rig.sync()
            rig.advance(0.05)
    finished = clock.now
    assert rig.ready == []
    rig.sync()
    rig.advance(SETTLE - 0.05)
    assert rig.ready == [], "ready before the settle time had passed since the last write"
    rig.advance(SETTLE)
    assert rig.ready_paths() == [target] and rig.ready[0][1].size == 4000
    assert rig.ready[0][0] - finished >= SETTLE
    rig.advance(2 * SETTLE)
    assert rig.ready_paths() == [target]  # once


def test_writer_opening_and_closing_repeatedly_gives_one_ready(rig: Rig, inbox: Path) -> None:
    clock = rig.use_fake_clock()
    target = inbox / "memo.m4a"
    for _ in range(8):
        with open(target, "ab") as f:
            f.write(b"y" * 1000)
        rig.sync()
        rig.advance(0.1)
    finished = clock.now
    assert rig.ready == []
    rig.sync()
    rig.advance(3 * SETTLE)
    assert rig.ready_paths() == [target] and rig.ready[0][1].size == 8000
    assert rig.ready[0][0] - finished >= SETTLE - 0.1


def test_real_rsync_temp_then_rename(rig: Rig, inbox: Path, tmp_path: Path) -> None:
    source = tmp_path / "phone"
    source.mkdir()
    (source / "memo.m4a").write_bytes(os.urandom(2_000_000))
    # --bwlimit keeps the transfer (and so the temp file) around long enough to be seen.
    rig.run_while(lambda: subprocess.run(["rsync", "-a", "--bwlimit=8000", f"{source}/", f"{inbox}/"], check=True))
    temps = {p.name for p in rig.reported if p.name.startswith(".memo.m4a.")}
    assert temps, "rsync's .memo.m4a.XXXXXX temp file was never reported"
    assert rig.settle_once(inbox / "memo.m4a").size == 2_000_000


def test_temp_name_then_rename(rig: Rig, inbox: Path) -> None:
    # Syncthing, Chrome and Firefox at once, each writing slowly under its temp name, then renaming.
    temps = {".syncthing.a.m4a.tmp": "a.m4a", "b.m4a.crdownload": "b.m4a", "c.m4a.part": "c.m4a"}
    files = {name: open(inbox / name, "wb") for name in temps}  # noqa: SIM115

    def writer() -> None:
        for _ in range(5):
            for f in files.values():
                f.write(b"z" * 500)
                f.flush()
            time.sleep(0.05)
        for name, final in temps.items():
            files[name].close()
            os.rename(inbox / name, inbox / final)

    rig.run_while(writer)
    assert {inbox / name for name in temps} <= set(rig.reported)
    rig.run_until(lambda: len(rig.ready) == 3)
    rig.run_for(2 * SETTLE)
    assert sorted(rig.ready_paths()) == [inbox / "a.m4a", inbox / "b.m4a", inbox / "c.m4a"]
    assert {r.size for _, r in rig.ready} == {2500}


def test_zero_byte_placeholder_is_ready_only_when_filled(rig: Rig, inbox: Path) -> None:
    target = inbox / "memo.m4a"
    target.touch()
    rig.run_for(2 * SETTLE)
    assert rig.ready == []
    assert rig.tracker.pending == 1  # waiting, not failed
    target.write_bytes(b"a" * 1234)
    assert rig.settle_once(target).size == 1234


def test_file_deleted_before_settling(rig: Rig, inbox: Path) -> None:
    target = inbox / "memo.m4a"
    target.write_bytes(b"b" * 100)
    rig.run_for(0.1)
    target.unlink()
    rig.run_for(3 * SETTLE)
    assert rig.ready == []
    assert rig.tracker.pending == 0


def test_litter_is_never_ready(rig: Rig, inbox: Path) -> None:
    (inbox / "@eaDir").mkdir()
    for name in ("._memo.m4a", ".DS_Store", "Thumbs.db", "@eaDir/x.m4a", "memo.srt", ".memo.m4a.AbC123"):
        (inbox / name).write_bytes(b"litter")
    (inbox / "memo.m4a").write_bytes(b"real")
    assert rig.settle_once(inbox / "memo.m4a").size == 4
    assert inbox / "._memo.m4a" in rig.reported  # seen, and ignored


def test_folder_moved_in_at_once(rig: Rig, inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "upload"
    (outside / "day1").mkdir(parents=True)
    (outside / "day1" / "a.m4a").write_bytes(b"a" * 10)
    (outside / "b.mp3").write_bytes(b"b" * 10)
    os.rename(outside, inbox / "upload")
    rig.run_until(lambda: len(rig.ready) == 2)
    rig.run_for(2 * SETTLE)
    assert sorted(rig.ready_paths()) == [inbox / "upload" / "b.mp3", inbox / "upload" / "day1" / "a.m4a"]


def test_polling_mode_sees_a_new_file(inbox: Path) -> None:
    rig = Rig(InboxSettings(path=inbox, watch="poll", poll_interval_seconds=0.2))
    rig.watcher.start()
    try:
        assert rig.watcher.mode == "poll"
        (inbox / "sub").mkdir()
        (inbox / "sub" / "memo.m4a").write_bytes(b"p" * 50)
        assert rig.settle_once(inbox / "sub" / "memo.m4a").size == 50
    finally:
        rig.watcher.stop()
    assert rig.watcher.mode is None


def test_symlinked_inbox_reports_paths_under_the_configured_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    rig = Rig(InboxSettings(path=link, watch="native"))
    rig.watcher.start()
    try:
        (real / "memo.m4a").write_bytes(b"s")
        assert rig.settle_once(link / "memo.m4a").size == 1
    finally:
        rig.watcher.stop()


def test_restart_after_the_folder_vanishes(rig: Rig, inbox: Path) -> None:
    assert rig.watcher.healthy()
    shutil.rmtree(inbox)
    deadline = time.monotonic() + 5
    while rig.watcher.healthy():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rig.watcher.stop()
    with pytest.raises(FileNotFoundError):
        rig.watcher.start()  # still gone: the daemon logs it and tries again later
    inbox.mkdir()
    rig.watcher.start()
    assert rig.watcher.healthy()
    (inbox / "memo.m4a").write_bytes(b"back")
    assert rig.settle_once(inbox / "memo.m4a").size == 4


def test_folder_replaced_under_the_watch_is_unhealthy(rig: Rig, inbox: Path, tmp_path: Path) -> None:
    # Like a NAS unmounted and mounted again: same path, another directory.
    os.rename(inbox, tmp_path / "old")
    inbox.mkdir()
    assert not rig.watcher.healthy()


@needs_inotify
def test_overflow_reported_by_watchdog_reaches_on_overflow(rig: Rig) -> None:
    # The kernel's IN_Q_OVERFLOW (wd -1), fed through watchdog's own handling.
    event = inotify_c.InotifyEvent(-1, inotify_c.InotifyConstants.IN_Q_OVERFLOW, 0, b"")
    rig.watcher._observer._inotify_fd.handle_event(event)  # type: ignore[union-attr]
    assert rig.overflows == 1


def _max_queued_events() -> int:
    try:
        return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
@pytest.mark.skipif(not 0 < _max_queued_events() <= 65536, reason="needs a default-sized inotify queue")
def test_real_queue_overflow_reaches_on_overflow_and_watching_goes_on(rig: Rig, inbox: Path) -> None:
    # Alternating writes to two files never coalesce: 40,000 events fill the kernel queue (16,384 by
    # default) far faster than watchdog's Python reader drains it, so IN_Q_OVERFLOW is certain. The
    # reader must get through the queued events before it meets the overflow: a few seconds.
    script = (
        "import os, sys\n"
        "a, b = (os.open(p, os.O_WRONLY | os.O_CREAT) for p in sys.argv[1:])\n"
        "for _ in range(20_000):\n"
        "    os.write(a, b'x'); os.write(b, b'x')\n"
    )
    subprocess.run([sys.executable, "-c", script, inbox / "a.m4a", inbox / "b.m4a"], check=True)
    rig.run_until(lambda: rig.overflows > 0, timeout=30)
    assert rig.watcher.healthy()
    (inbox / "after.m4a").write_bytes(b"x")
    rig.run_until(lambda: inbox / "after.m4a" in rig.reported)


def _fail_inotify_add_watch(monkeypatch: pytest.MonkeyPatch, fails: Callable[[bytes], bool]) -> None:
    real = inotify_c.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        if fails(path):
            ctypes.set_errno(errno.ENOSPC)  # what watchdog reads with ctypes.get_errno()
            return -1
        return real(fd, path, mask)

    monkeypatch.setattr(inotify_c, "inotify_add_watch", add_watch)


@needs_inotify
def test_enospc_on_the_root_falls_back_to_polling(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fail_inotify_add_watch(monkeypatch, lambda path: True)
    rig = Rig(InboxSettings(path=inbox, watch="native", poll_interval_seconds=0.2))
    with caplog.at_level(logging.WARNING, logger="asrd.control.watch"):
        rig.watcher.start()
    try:
        assert rig.watcher.mode == "poll"
        assert "fs.inotify.max_user_watches=524288" in caplog.text
        (inbox / "memo.m4a").write_bytes(b"e")
        rig.settle_once(inbox / "memo.m4a")
    finally:
        rig.watcher.stop()


@needs_inotify
def test_enospc_on_a_subfolder_is_detected(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # watchdog tolerates a failing descendant silently; only the fdinfo check notices.
    (inbox / "a" / "b").mkdir(parents=True)
    _fail_inotify_add_watch(monkeypatch, lambda path: path.endswith(b"/b"))
    rig = Rig(InboxSettings(path=inbox, watch="native"))
    with caplog.at_level(logging.WARNING, logger="asrd.control.watch"):
        rig.watcher.start()
    try:
        assert rig.watcher.mode == "poll"
        assert "could not watch 1 folder" in caplog.text
    finally:
        rig.watcher.stop()


@needs_inotify
def test_all_subfolders_watched_stays_native(inbox: Path) -> None:
    for sub in ("a/b/c", "d", "with space/é"):
        (inbox / sub).mkdir(parents=True)
    (inbox / "loop").symlink_to(inbox)
    rig = Rig(InboxSettings(path=inbox, watch="native"))
    rig.watcher.start()
    try:
        assert rig.watcher.mode == "native"
    finally:
        rig.watcher.stop()


@needs_inotify
def test_emfile_falls_back_to_polling(
    monkeypatch: pytest.MonkeyPatch, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def inotify_init() -> int:
        ctypes.set_errno(errno.EMFILE)
        return -1

    monkeypatch.setattr(inotify_c, "inotify_init", inotify_init)
    rig = Rig(InboxSettings(path=inbox, watch="native"))
    with caplog.at_level(logging.WARNING, logger="asrd.control.watch"):
        rig.watcher.start()
    rig.watcher.stop()
    assert "fs.inotify.max_user_instances" in caplog.text
    assert "inotify instance limit reached" in rig.watcher.reason


def test_scan_finds_existing_files_without_following_symlinks(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.m4a").write_bytes(b"x")
    for rel in (
        "a.m4a",
        "sub/b.MP3",
        "sub/deeper/c.wav",
        "@eaDir/d.m4a",
        ".stversions/e.m4a",
        "sub/._f.m4a",
        "notes.txt",
        "sub/g.m4a.part",
    ):
        (inbox / rel).parent.mkdir(parents=True, exist_ok=True)
        (inbox / rel).write_bytes(b"x")
    (inbox / "sub" / "loop").symlink_to(inbox)  # a loop
    (inbox / "escape").symlink_to(outside)  # out of the inbox
    (inbox / "link.m4a").symlink_to(outside / "secret.m4a")  # a file symlink out of the inbox
    settings = InboxSettings(path=inbox)
    rules = IgnoreRules()
    expected = [inbox / "a.m4a", inbox / "sub" / "b.MP3", inbox / "sub" / "deeper" / "c.wav"]
    assert list(scan(settings, rules)) == expected
    assert list(scan(settings, rules, under=inbox / "sub" / "deeper")) == expected[2:]
    assert list(scan(settings, rules, under=inbox / "@eaDir")) == []
    assert list(scan(settings, rules, under=inbox / "sub" / "loop")) == []
    assert list(scan(settings, rules, under=inbox / "sub" / "loop" / "sub")) == []
    assert list(scan(settings, rules, under=outside)) == []
    assert list(scan(InboxSettings(path=inbox, recursive=False), rules)) == expected[:1]


def test_scan_survives_unreadable_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests may run as root, where chmod 000 does not stop anyone: make scandir() fail instead.
    inbox = tmp_path / "inbox"
    (inbox / "locked").mkdir(parents=True)
    (inbox / "locked" / "x.m4a").write_bytes(b"x")
    (inbox / "z.m4a").write_bytes(b"z")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> Iterator[os.DirEntry[str]]:
        if str(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(watch.os, "scandir", scandir)
    assert list(scan(InboxSettings(path=inbox), IgnoreRules())) == [inbox / "z.m4a"]
    assert list(scan(InboxSettings(path=tmp_path / "missing"), IgnoreRules())) == []


MOUNTINFO = r"""22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/volume1/voice rw,vers=4.2
41 22 0:36 / /mnt/win rw,relatime shared:21 - cifs //winbox/share rw,vers=3.1.1
42 22 0:37 / /home/me/remote rw,nosuid,nodev shared:22 - fuse.sshfs me@host:/srv rw,user_id=1000
43 22 8:17 / /media/usb\040stick rw,relatime shared:23 - vfat /dev/sdb1 rw
44 40 0:38 / /mnt/nas/local rw,relatime - ext4 /dev/sdc1 rw
45 22 0:39 / /mnt/stack rw - nfs nas:/a rw
46 22 0:40 / /mnt/stack rw - xfs /dev/sdd1 rw
47 22 0:41 / /mnt/ntfs rw - fuseblk /dev/sde1 rw
48 22 0:42 / /mnt/vm rw - virtiofs share rw
"""


@pytest.mark.parametrize(
    ("path", "fstype", "mode"),
    [
        ("/srv/inbox", "ext4", "native"),
        ("/mnt/nas", "nfs4", "poll"),
        ("/mnt/nas/voice/2024", "nfs4", "poll"),
        ("/mnt/nasty", "ext4", "native"),  # a prefix of the name is not a parent
        ("/mnt/nas/local/inbox", "ext4", "native"),
        ("/mnt/win/Recordings", "cifs", "poll"),
        ("/home/me/remote/inbox", "fuse.sshfs", "poll"),
        ("/media/usb stick/VOICE", "vfat", "native"),
        ("/mnt/stack", "xfs", "native"),  # the last mount on a point hides the earlier one
        ("/mnt/ntfs", "fuseblk", "native"),
        ("/mnt/vm/in", "virtiofs", "poll"),
    ],
)
def test_mount_type_and_auto_mode(path: str, fstype: str, mode: str) -> None:
    assert mount_type(path, MOUNTINFO) == fstype
    chosen, reason = choose_mode(path, "auto", MOUNTINFO)
    assert chosen == mode
    assert fstype in reason


def test_choose_mode_honours_explicit_settings() -> None:
    assert choose_mode("/mnt/nas", "native", MOUNTINFO)[0] == "native"
    assert "missed" in choose_mode("/mnt/nas", "native", MOUNTINFO)[1]
    assert choose_mode("/x", "auto", "") == ("native", "filesystem type unknown, assumed local")
    assert choose_mode("/srv", "poll", MOUNTINFO)[0] == "poll"


def test_parse_mountinfo_tolerates_odd_lines() -> None:
    assert parse_mountinfo("garbage\n\n" + MOUNTINFO.splitlines()[0]) == [("/", "ext4")]
    assert mount_type("/x", "") == "unknown"
    assert watch._parse_bsd_mount(
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "//me@nas._smb._tcp.local/Voice Memos on /Volumes/Voice Memos (smbfs, nodev, nosuid, mounted by me)\n"
    ) == [("/", "apfs"), ("/Volumes/Voice Memos", "smbfs")]


@needs_inotify
def test_mount_type_of_this_machine(tmp_path: Path) -> None:
    assert mount_type(tmp_path) != "unknown"
    assert default_settle_seconds("native") == 5.0
    assert default_settle_seconds("poll") == 30.0
