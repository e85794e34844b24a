"""Who wrote a sidecar: asrd proves a file is its own by a content hash recorded where it can.

A mark is (source, sha256 of the content). A file at a target path is asrd's for a source only
while its content still hashes to what was recorded: a person's edit makes it theirs.

- ``XattrOwnership``: the mark is the file's ``user.asrd`` extended attribute, so it travels with
  the file and needs no database (``asrd transcribe``). Many mounts have no user xattrs (sshfs,
  most SMB and NFSv3 mounts): there it records nothing and recognises nothing.
- ``RecordOwnership``: the mark is a row in the job database (``SidecarRecords``), which works on
  any filesystem; the daemon uses it together with the xattr (``Combined``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

XATTR = "user.asrd"
# rclone mount answers EIO to every xattr call; some SMB servers EPERM/EACCES for the user namespace.
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EIO, errno.EPERM, errno.EACCES)


def source_id(source: Path) -> str:
    return str(Path(source).resolve())


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class Mark:
    source: str
    sha256: str


class Ownership(Protocol):
    def marks(self, path: Path) -> list[Mark]:
        """What was recorded for the file at ``path`` (possibly stale: the caller checks the hash)."""
        ...

    def record(self, path: Path, staged: Path, mark: Mark) -> None:
        """Called before ``staged`` is renamed to ``path`` (a crash between leaves a provable file)."""
        ...

    def forget(self, path: Path) -> None:
        """``path`` no longer holds a sidecar of asrd's (it was moved away)."""
        ...


def owner(path: Path, ownership: Ownership) -> str | None:
    """The source an existing sidecar was written for, or None if asrd did not write it as it now
    stands (no mark, or the content changed since)."""
    try:
        candidates = ownership.marks(path)
        if not candidates:
            return None
        current = digest(path.read_bytes())
    except OSError:
        return None
    return next((m.source for m in candidates if m.sha256 == current), None)


class XattrOwnership:
    """Marks in the ``user.asrd`` extended attribute. ``_get``/``_set`` are the filesystem seam."""

    def _get(self, path: Path) -> bytes:
        return os.getxattr(path, XATTR)

    def _set(self, path: Path, value: bytes) -> None:
        os.setxattr(path, XATTR, value)

    def marks(self, path: Path) -> list[Mark]:
        try:
            data = json.loads(self._get(path))
        except (OSError, ValueError):
            return []
        if isinstance(data, dict) and isinstance(data.get("source"), str) and isinstance(data.get("sha256"), str):
            return [Mark(data["source"], data["sha256"])]
        return []

    def record(self, path: Path, staged: Path, mark: Mark) -> None:
        try:
            self._set(staged, json.dumps({"source": mark.source, "sha256": mark.sha256}).encode())
        except OSError as err:
            if err.errno not in _NO_XATTRS:
                raise
            # No user xattrs on this mount: only a RecordOwnership (the daemon's database) can prove it.

    def forget(self, path: Path) -> None:
        pass  # the attribute went with the file


class NoXattrOwnership(XattrOwnership):
    """A filesystem without user extended attributes (sshfs, SMB, NFSv3), for tests and ``--dry-run``."""

    def _get(self, path: Path) -> bytes:
        raise OSError(errno.ENOTSUP, "Operation not supported", os.fspath(path))

    def _set(self, path: Path, value: bytes) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported", os.fspath(path))


class SidecarRecords(Protocol):
    """What the job store keeps about the sidecars asrd wrote (``asrd.control.jobs``)."""

    def sidecar_mark(self, path: Path) -> tuple[str, str] | None: ...
    def record_sidecar(self, path: Path, source: str, sha256: str) -> None: ...
    def forget_sidecar(self, path: Path) -> None: ...


class RecordOwnership:
    """Marks kept in the job database: independent of what the filesystem supports."""

    def __init__(self, records: SidecarRecords) -> None:
        self.records = records

    def marks(self, path: Path) -> list[Mark]:
        found = self.records.sidecar_mark(Path(path))
        return [Mark(*found)] if found is not None else []

    def record(self, path: Path, staged: Path, mark: Mark) -> None:
        self.records.record_sidecar(Path(path), mark.source, mark.sha256)

    def forget(self, path: Path) -> None:
        self.records.forget_sidecar(Path(path))


class Combined:
    """Every mark of each part: the xattr where the mount has them, the database everywhere."""

    def __init__(self, *parts: Ownership) -> None:
        self.parts = parts

    def marks(self, path: Path) -> list[Mark]:
        return [m for part in self.parts for m in part.marks(path)]

    def record(self, path: Path, staged: Path, mark: Mark) -> None:
        for part in self.parts:
            part.record(path, staged, mark)

    def forget(self, path: Path) -> None:
        for part in self.parts:
            part.forget(path)


XATTRS = XattrOwnership()


def for_store(records: SidecarRecords, xattrs: Ownership | None = None) -> Ownership:
    """The daemon's ownership: the job database plus the xattr (``XATTRS``, looked up per call so
    tests can stand in a filesystem without xattrs)."""
    return Combined(xattrs if xattrs is not None else XATTRS, RecordOwnership(records))
