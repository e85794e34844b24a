"""Watch inbox folders: native events on local disks, polling on network mounts, and a scan.

The watcher only says "look at this path"; the stability tracker (``asrd.settle``) decides when a
file is complete and the daemon's periodic rescan catches whatever the watcher missed. Callbacks run
on watchdog's threads and must only record the path (paperless-ngx and Home Assistant do the same).

What watchdog 7.1 does and what we add:
- inotify sees only changes made through this kernel: on NFS/SMB/FUSE mounts, files written by other
  machines produce no events (watchdog #504, #668), so ``auto`` polls there.
- ``start()`` raises ``OSError(ENOSPC, "inotify watch limit reached")`` when the *root* cannot be
  watched and ``Observer()`` raises ``OSError(EMFILE, "inotify instance limit reached")`` when no
  inotify instance is left (watchdog #673, #846). A subfolder that cannot be watched is skipped
  *silently* (inotify.py ``_add_callback``), so after starting we compare the folders with the
  watches listed in ``/proc/self/fdinfo`` and poll instead when any are missing (a folder created
  later that hits the limit is missed silently too: the daemon's periodic rescan finds its files).
- IN_Q_OVERFLOW: since 7.1 (#654) watchdog logs a warning and re-adds its recursive watches but emits
  no event to handlers, so we hook the watch group's ``on_queue_overflow`` to ask for a rescan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from asrd.config import InboxSettings
from asrd.control.ignore import IgnoreRules

__all__ = ["InboxWatcher", "choose_mode", "default_settle_seconds", "mount_type", "parse_mountinfo", "scan"]

log = logging.getLogger(__name__)

# Filesystems whose files change without this kernel seeing it (another machine, the VM host).
_REMOTE_TYPES = frozenset(
    (
        *("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afpfs", "webdav", "davfs", "ncpfs"),
        *("9p", "virtiofs", "drvfs", "vboxsf", "vmhgfs", "prl_fs"),  # VM and WSL shares
        *("fuse", "afs", "coda", "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "ocfs2", "gfs2"),
        *("macfuse", "osxfuse"),
    )
)
# Only the events that can mean "new or changed content": no IN_OPEN/IN_CLOSE_NOWRITE, so our own
# decoding of a file does not look like activity on it.
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
_LIMIT_HINTS = {
    errno.ENOSPC: "raise the watch limit: sysctl fs.inotify.max_user_watches=524288 (persist in /etc/sysctl.d/)",
    # watchdog says "instance limit" for any EMFILE from inotify_init(), a full fd table included.
    errno.EMFILE: "raise the instance limit: sysctl fs.inotify.max_user_instances=1024 (persist in"
    " /etc/sysctl.d/), or the open-files limit (ulimit -n, LimitNOFILE=)",
}
_INOTIFY_WD = re.compile(r"^inotify wd:\S+ ino:([0-9a-f]+) sdev:([0-9a-f]+)", re.MULTILINE)
_OCTAL = re.compile(r"\\([0-7]{3})")
_BSD_MOUNT = re.compile(r"^.+? on (?P<point>.+) \((?P<type>[^,()]+)[^()]*\)$")


def default_settle_seconds(mode: str) -> float:
    """Quiet time when ``settle_seconds`` is not configured: polled shares report changes late."""
    return 30.0 if mode == "poll" else 5.0


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) for each line of ``/proc/self/mountinfo``, in mount order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:] or len(fields) < 10:
            continue
        dash = fields.index("-", 6)  # optional fields ("shared:1") end at a lone "-"
        # The kernel escapes space, tab, newline and backslash in paths as \ooo.
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        mounts.append((point, fields[dash + 1]))
    return mounts


def _parse_bsd_mount(text: str) -> list[tuple[str, str]]:
    """(mount point, type) from macOS/BSD ``mount`` output: ``//u@nas/x on /Volumes/x (smbfs, ...)``."""
    return [(m["point"], m["type"]) for line in text.splitlines() if (m := _BSD_MOUNT.match(line))]


def _mount_table() -> list[tuple[str, str]]:
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            return parse_mountinfo(os.fsdecode(f.read()))
    except OSError:
        pass
    try:  # macOS and the BSDs have no /proc
        out = subprocess.run(["mount"], capture_output=True, timeout=5, check=False).stdout
        return _parse_bsd_mount(os.fsdecode(out))
    except (OSError, subprocess.SubprocessError):
        return []


def mount_type(path: Path | str, mountinfo: str | None = None) -> str:
    """Filesystem type of the mount holding ``path`` ("ext4", "nfs4", "fuse.sshfs"), or "unknown".

    ``mountinfo`` is the text of ``/proc/self/mountinfo``; by default it is read (tests inject it).
    """
    resolved = os.path.realpath(path)
    table = _mount_table() if mountinfo is None else parse_mountinfo(mountinfo)
    best, best_len = "unknown", -1
    for point, fstype in table:
        inside = point == "/" or resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best_len:  # ">=": the last mount stacked on a point is the visible one
            best, best_len = fstype, len(point)
    return best


def _is_remote(fstype: str) -> bool:
    # fuse.sshfs, fuse.rclone, fuse.s3fs...; fuseblk (ntfs-3g on a local disk) is written through this kernel.
    return fstype in _REMOTE_TYPES or fstype.startswith("fuse.")


def choose_mode(path: Path | str, requested: str, mountinfo: str | None = None) -> tuple[str, str]:
    """("native" | "poll", reason) for watching ``path`` under ``watch = requested``."""
    fstype = mount_type(path, mountinfo)
    remote = _is_remote(fstype)
    if requested == "poll":
        return "poll", f"watch = poll in the config ({fstype})"
    if requested == "native":
        note = "; changes made by other machines will be missed until a rescan" if remote else ""
        return "native", f"watch = native in the config ({fstype}{note})"
    if remote:
        return "poll", f"{fstype} is a network/FUSE/VM mount where inotify misses remote writes (watchdog #504)"
    if fstype == "unknown":
        return "native", "filesystem type unknown, assumed local"
    return "native", f"{fstype} is a local filesystem"


class _Recorder(FileSystemEventHandler):
    """Turns watchdog events into ``on_path`` calls, on the observer thread, and nothing else."""

    def __init__(self, on_path: Callable[[Path], None], watched_root: str, root: Path) -> None:
        self._on_path = on_path
        self._watched_root = watched_root
        self._root = root

    def dispatch(self, event: FileSystemEvent) -> None:
        target = event.dest_path if isinstance(event, (FileMovedEvent, DirMovedEvent)) else event.src_path
        if not target:
            return
        path = os.fsdecode(target)
        # Report paths under the configured root even when watchdog watches its resolved form.
        if path.startswith(self._watched_root) and self._watched_root != str(self._root):
            path = str(self._root) + path[len(self._watched_root) :]
        try:
            self._on_path(Path(path))
        except Exception:  # an exception here would kill watchdog's dispatch thread
            log.exception("watch callback failed for %s", path)


class InboxWatcher:
    """One inbox's watchdog observer: native events or polling, restartable, with a health check.

    ``start()`` raises OSError when the folder cannot be watched at all (missing, unmounted); the
    daemon logs it and tries again later. When ``healthy()`` turns false (the folder was deleted or
    unmounted and mounted again, or a watchdog thread died) the daemon calls ``stop()``, ``start()``.
    After every ``start()`` the daemon must scan the inbox: a new observer takes the folder as it
    finds it as its baseline, so files that arrived while nothing watched produce no event
    (paperless #13011).
    """

    def __init__(self, inbox: InboxSettings, on_path: Callable[[Path], None], on_overflow: Callable[[], None]) -> None:
        self.inbox = inbox
        self._on_path = on_path
        self._on_overflow = on_overflow
        self._observer: BaseObserver | None = None
        self._root_id: tuple[int, int] | None = None
        self._mode: str | None = None
        self.reason = ""

    @property
    def mode(self) -> str | None:
        """The watch mode, "native" or "poll", while started; None when stopped."""
        return self._mode

    def start(self) -> None:
        if self._observer is not None:
            return
        root = Path(self.inbox.path)
        # inotify adds watches with IN_DONT_FOLLOW: a symlinked inbox must be watched as its target.
        watched = os.path.realpath(root)
        st = os.stat(watched)  # FileNotFoundError for a missing or unmounted inbox
        mode, reason = choose_mode(watched, self.inbox.watch)
        if mode == "native":
            try:
                self._observer = self._start_native(watched, root)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                hint = _LIMIT_HINTS[err.errno]
                log.warning("%s: cannot watch with inotify (%s); polling instead; %s", root, err.strerror, hint)
                mode, reason = "poll", f"inotify unavailable: {err.strerror}"
        if mode == "poll":
            self._observer = self._start_polling(watched, root)
        self._mode, self.reason, self._root_id = mode, reason, (st.st_dev, st.st_ino)
        how = "native events" if mode == "native" else f"polling every {self.inbox.poll_interval_seconds:g} s"
        log.info("watching %s%s with %s: %s", root, " recursively" if self.inbox.recursive else "", how, reason)

    def _schedule(self, observer: BaseObserver, watched: str, root: Path) -> None:
        handler = _Recorder(self._on_path, watched, root)
        observer.schedule(handler, watched, recursive=self.inbox.recursive, event_filter=_EVENTS)

    def _start_polling(self, watched: str, root: Path) -> BaseObserver:
        # PollingObserverVFS only to pass lstat: PollingObserver's os.stat follows symlinks, so a
        # symlink loop or a link to / would be walked on every poll.
        observer = PollingObserverVFS(os.lstat, os.scandir, polling_interval=self.inbox.poll_interval_seconds)
        try:
            self._schedule(observer, watched, root)
            observer.start()  # takes the first snapshot: the walk happens here
        except BaseException:
            _shutdown(observer)
            raise
        return observer

    def _start_native(self, watched: str, root: Path) -> BaseObserver:
        observer = Observer()  # EMFILE: inotify_init() failed
        try:
            self._schedule(observer, watched, root)
            observer.start()  # ENOSPC: the root's watch could not be added
            self._hook_overflow(observer)
            missing = _unwatched_dirs(watched, recursive=self.inbox.recursive)
            if missing:
                raise OSError(errno.ENOSPC, f"inotify could not watch {missing} folder(s); watch limit reached?")
        except BaseException:
            _shutdown(observer)
            raise
        return observer

    def _hook_overflow(self, observer: BaseObserver) -> None:
        # watchdog 7.1 handles IN_Q_OVERFLOW inside InotifyFD.handle_event(): it calls
        # on_queue_overflow() of each InotifyWatchGroup and never tells the handler. Chain onto that
        # method; if a later watchdog renames it, the daemon's periodic rescan is still the safety net.
        for emitter in observer.emitters:
            group = getattr(emitter, "_inotify", None)
            original = getattr(group, "on_queue_overflow", None)
            if group is None or original is None:
                log.debug("no inotify overflow hook in this watchdog; relying on the periodic rescan")
                continue

            def on_queue_overflow(original: Callable[[], None] = original) -> None:
                original()
                log.warning("%s: inotify queue overflowed, events were lost; rescanning", self.inbox.path)
                self._on_overflow()

            group.on_queue_overflow = on_queue_overflow

    def stop(self) -> None:
        observer, self._observer, self._mode = self._observer, None, None
        if observer is not None:
            _shutdown(observer)

    def healthy(self) -> bool:
        """False when a watchdog thread has died or the inbox is gone or is another folder now.

        The root is compared by (device, inode): an unmounted NAS leaves an empty mount point behind
        whose events are not the share's. On a hung NFS mount the stat() may block.
        """
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        if not all(emitter.is_alive() for emitter in observer.emitters):
            return False  # the root was deleted: watchdog stops the emitter
        reader = getattr(observer, "_inotify_fd", None)  # InotifyObserver's reader thread
        if isinstance(reader, threading.Thread) and not reader.is_alive():
            return False
        try:
            st = os.stat(self.inbox.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._root_id


def _shutdown(observer: BaseObserver, timeout: float = 5.0) -> None:
    # Also for an observer whose start() failed: InotifyObserver starts its reader thread in __init__.
    with contextlib.suppress(Exception):
        observer.stop()
    if observer.is_alive():
        observer.join(timeout)  # a poll stuck on a hung NFS mount: give up, the threads are daemons
    if observer.is_alive():
        log.warning("watcher thread did not stop within %g s; abandoning it", timeout)


def _inotify_watched() -> set[tuple[int, int]] | None:
    """(st_dev, st_ino) of every inode this process has an inotify watch on; None if /proc cannot tell."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fds = os.listdir("/proc/self/fdinfo")
    except OSError:
        return None
    watched: set[tuple[int, int]] = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as f:
                text = f.read()
            for ino, sdev in _INOTIFY_WD.findall(text):
                kdev = int(sdev, 16)  # kernel dev_t: major << 20 | minor
                watched.add((os.makedev(kdev >> 20, kdev & 0xFFFFF), int(ino, 16)))
    return watched


def _unwatched_dirs(root: str, *, recursive: bool) -> int:
    """How many folders under ``root`` (walked as watchdog walks them) have no inotify watch."""
    watched = _inotify_watched()
    if watched is None:
        return 0
    missing: dict[tuple[int, int], str] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder, follow_symlinks=False)
            with os.scandir(folder) as it:
                subdirs = [e.path for e in it if recursive and e.is_dir(follow_symlinks=False)]
        except OSError:
            continue  # vanished or unreadable: watchdog could not watch it either
        if (st.st_dev, st.st_ino) not in watched:
            missing[st.st_dev, st.st_ino] = folder
        stack.extend(subdirs)
    # A folder created during start() gets its watch from the reader thread a moment later.
    for _ in range(10):
        if not missing:
            break
        time.sleep(0.1)
        watched = _inotify_watched() or set()
        missing = {key: path for key, path in missing.items() if key not in watched and os.path.isdir(path)}
    return len(missing)


def scan(inbox: InboxSettings, rules: IgnoreRules, under: Path | None = None) -> Iterator[Path]:
    """Accepted regular files in the inbox (or in its folder ``under``), in name order.

    Never follows symlinks (no loops, no escaping the inbox); skips ignored folders; a folder that
    cannot be read or a file that vanishes mid-walk is logged at debug level and skipped.
    """
    root = Path(inbox.path)
    start = root if under is None else Path(under)
    try:
        relative = start.relative_to(root)
    except ValueError:
        return
    if any(rules.skip_dir(part) for part in relative.parts) or (relative.parts and not inbox.recursive):
        return
    node = start
    for _ in relative.parts:  # reached through a symlink inside the inbox: not ours to walk
        if node.is_symlink():
            return
        node = node.parent
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:  # read the whole listing: no fd held open across yields
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            log.debug("cannot list %s: %s", folder, err)
            continue
        subdirs = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if inbox.recursive and not rules.skip_dir(entry.name):
                        subdirs.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    path = Path(entry.path)
                    if rules.accepts(path.relative_to(root)):
                        yield path
            except OSError as err:
                log.debug("skipping %s: %s", entry.path, err)
        stack.extend(reversed(subdirs))
