"""Files uploaded into an inbox: checked before the body is read, streamed to temporary names the
watcher ignores, and renamed only once the whole request has arrived (all of it is stored, or none).

From then on an upload is an ordinary file in the inbox: the watcher, settle and job path transcribe it,
a daemon restart finds it in the startup scan, and nothing waits on the browser. No web framework here:
``upload_api`` feeds the request body in chunks.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO

from asrd.config import InboxSettings, Settings
from asrd.control.ignore import IgnoreRules, is_litter
from asrd.control.runoptions import RunOptions, create_options
from asrd.media import TEMP_PREFIX
from asrd.web.multipart import MultipartReader

log = logging.getLogger("asrd.web")

UPLOAD_TEMP = f"{TEMP_PREFIX}upload-"  # ignored by the watcher like every TEMP_PREFIX name
RESERVE_BYTES = 64 * 2**20  # left free after an upload, for sidecars and the job database
MAX_NAME_BYTES = 200  # leaves room for " (12)" and a sidecar suffix under the usual 255-byte limit
WRITE_BUFFER = 1 << 20


def disk_free(folder: Path) -> int:
    """Free bytes on the file system of ``folder`` (the seam tests replace to simulate a full disk)."""
    return shutil.disk_usage(folder).free


class UploadRefused(Exception):
    """Why an upload is not taken, with the HTTP status that says so."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """The inbox an upload goes into: its name as clients know it, its resolved folder and its rules."""

    name: str
    folder: Path
    rules: IgnoreRules


@dataclass(frozen=True)
class Stored:
    sent_name: str
    path: Path
    size: int


def inbox_label(inbox: InboxSettings) -> str:
    """The name clients use for an inbox: its ``name`` where the config has one, else its folder's name."""
    return str(getattr(inbox, "name", None) or Path(inbox.path).name)


def find_inbox(settings: Settings, name: str) -> Target:
    found = [i for i in settings.inbox if inbox_label(i) == name]
    labels = ", ".join(sorted({inbox_label(i) for i in settings.inbox})) or "none is configured"
    if not name:
        raise UploadRefused(400, f"say which inbox: ?inbox=NAME ({labels})")
    if not found:
        raise UploadRefused(404, f"no inbox named {name!r} ({labels})")
    if len(found) > 1:
        raise UploadRefused(409, f"more than one inbox is named {name!r}: rename one of their folders")
    folder = found[0].path.resolve()
    return Target(name, folder, IgnoreRules(found[0].include, found[0].exclude))


def check_room(target: Target, expected: int | None, limit: int,
               free_bytes: Callable[[Path], int] = disk_free) -> None:
    """Size limit, write permission and free space, before any of the body is read."""
    if limit <= 0:
        raise UploadRefused(403, "uploads are off ([web] upload_max_mb = 0)")
    if expected is not None and expected > limit:
        raise UploadRefused(413, f"{_mib(expected)} is over the limit of {_mib(limit)} ([web] upload_max_mb)")
    if not target.folder.is_dir():
        raise UploadRefused(404, f"inbox {target.name} is not there (is its disk mounted?)")
    # os.access alone says yes to root even where writing fails (read-only mounts, immutable folders):
    # creating a file is the real test.
    try:
        fd, probe = _create_temp(target.folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UploadRefused(403, f"asrd may not write into inbox {target.name}: {err.strerror or err} "
                                 "(give the daemon's user write permission on the folder)") from None
    free = free_bytes(target.folder)
    need = (expected or 0) + RESERVE_BYTES
    if free < need:
        raise UploadRefused(507, f"not enough free space in inbox {target.name}: {_mib(free)} free, "
                                 f"{_mib(need)} needed (the upload and {_mib(RESERVE_BYTES)} to spare)")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_name(raw: str, target: Target) -> str:
    """The name a file will be stored under, or why not. A name with path components is refused, not
    cut down: a client sending one is confused or hostile, and either way should hear about it."""
    name = unicodedata.normalize("NFC", raw)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UploadRefused(400, f"{raw!r} is not a file name (no folders or path components)")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise UploadRefused(400, f"{raw!r} has control characters in its name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise UploadRefused(400, f"the name {raw!r} is too long (at most {MAX_NAME_BYTES} bytes)")
    if name.startswith(".") or is_litter(name):
        raise UploadRefused(400, f"{raw!r} is a hidden or temporary name the watcher would ignore; rename it")
    if not target.rules.accepts(PurePath(name)):
        raise UploadRefused(415, f"inbox {target.name} would not transcribe {raw!r}: not a type it takes "
                                 "(audio and video, or the inbox's include/exclude)")
    return name


def _create_temp(folder: Path) -> tuple[int, Path]:
    while True:
        path = folder / f"{UPLOAD_TEMP}{secrets.token_hex(8)}.tmp"
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), path
        except FileExistsError:
            continue


def _candidates(name: str) -> Iterator[str]:
    yield name
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    for n in range(1, 10_000):
        yield f"{stem} ({n}){dot}{ext}"


def publish(temp: Path, folder: Path, name: str, options: RunOptions | None = None) -> Path:
    """Give the complete temp file its name without replacing anything already there: "memo.m4a"
    taken becomes "memo (1).m4a". A hard link fails atomically on an existing name; on file systems
    without hard links (some FUSE and SMB mounts) a check-then-rename has a small race instead.
    ``options`` are written beside it first, so they are there before the watcher can see the file."""
    for candidate in _candidates(name):
        final = folder / candidate
        extra = None
        if options is not None:
            try:
                extra = create_options(final, options)
            except FileExistsError:
                continue
        try:
            _link(temp, final)
        except FileExistsError:
            if extra is not None:
                extra.unlink()
            continue
        except BaseException:
            if extra is not None:
                extra.unlink()
            raise
        return final
    raise UploadRefused(409, f"{name}: too many files of that name in the inbox")


def _link(temp: Path, final: Path) -> None:
    try:
        os.link(temp, final)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "exists", str(final)) from None
        os.rename(temp, final)
        return
    os.unlink(temp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class _Part:
    """One file of the upload, streamed to its temp file in the inbox (a ``multipart.FilePart``)."""

    sent_name: str
    name: str
    temp: Path
    file: BinaryIO | None
    size: int = 0

    def write(self, data: memoryview) -> None:
        assert self.file is not None
        self.file.write(data)
        self.size += len(data)

    def end(self) -> None:
        f, self.file = self.file, None
        if f is not None:
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name appears: a power cut leaves no stub
            f.close()


class Receiver:
    """A ``multipart/form-data`` body, fed chunk by chunk: each file part goes straight to its own temp
    file in the inbox (``multipart.MultipartReader``; nothing is spooled to /tmp or kept in memory).

    ``finish()`` names the complete files; ``discard()`` (always call it, e.g. in ``finally``) removes
    whatever was not named, so a refusal, a disconnect or a server stop leaves nothing behind.
    """

    def __init__(self, content_type: str, target: Target, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.received = 0
        self.parts: list[_Part] = []
        self._reader = MultipartReader(content_type, self._open, UploadRefused)

    def _open(self, field: str, filename: str | None) -> _Part | None:
        if filename is None:
            return None  # a plain form field
        name = check_name(filename, self.target)
        fd, temp = _create_temp(self.target.folder)
        part = _Part(filename, name, temp, open(fd, "wb", buffering=WRITE_BUFFER))  # noqa: SIM115 (closed in end/discard)
        self.parts.append(part)
        return part

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise UploadRefused(413, f"more than {_mib(self.limit)} sent ([web] upload_max_mb)")
        self._reader.feed(chunk)

    def finish(self, options: RunOptions | None = None) -> list[Stored]:
        self._reader.finish()
        if not self.parts:
            raise UploadRefused(400, "no files in the upload (multipart parts with a filename)")
        stored = []
        for part in self.parts:
            final = publish(part.temp, self.target.folder, part.name, options)
            stored.append(Stored(part.sent_name, final, part.size))
            log.info("uploaded %s into inbox %s (%d bytes)", final.name, self.target.name, part.size)
        self.parts = []
        _fsync_dir(self.target.folder)
        return stored

    def discard(self) -> None:
        for part in self.parts:
            if part.file is not None:
                part.file.close()
                part.file = None
            try:
                os.unlink(part.temp)
            except FileNotFoundError:
                pass
            except OSError as err:
                log.warning("cannot remove the unfinished upload %s: %s", part.temp, err.strerror or err)
        self.parts = []


def sweep_leftovers(settings: Settings, before: float) -> None:
    """Remove upload temp files older than ``before`` (a daemon killed mid-upload leaves one); only this
    daemon, holding the state lock, uploads into its inboxes."""
    for inbox in settings.inbox:
        try:
            leftovers = [p for p in inbox.path.glob(f"{UPLOAD_TEMP}*.tmp") if p.lstat().st_mtime < before]
        except OSError:
            continue
        for path in leftovers:
            try:
                path.unlink()
                log.info("removed %s, left by an interrupted upload", path)
            except OSError as err:
                log.warning("cannot remove %s, left by an interrupted upload: %s", path, err.strerror or err)
