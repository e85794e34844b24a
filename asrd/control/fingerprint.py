"""What a source file is, cheaply: size, mtime and hashes of its edges (and, where needed, of all of it)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

EDGE_BYTES = 1 << 20  # fingerprints hash this much of the head and of the tail


FULL_HASH_MAX = 256 << 20  # whole-file hashes up to this size: read in the daemon loop, so kept well under the watchdog


@dataclass(frozen=True)
class Fingerprint:
    device: int
    inode: int
    size: int
    mtime_ns: int
    content_hash: str
    full_hash: str = ""  # sha256 of the whole file when it is larger than the sampled edges; "" = not taken

    def same_content(self, other: Fingerprint) -> bool:
        # Stat fields are left out on purpose: a touch or a NAS metadata event is not an edit.
        if self.size != other.size or self.content_hash != other.content_hash:
            return False
        return not (self.full_hash and other.full_hash) or self.full_hash == other.full_hash

    def same_stat(self, other: Fingerprint) -> bool:
        return (self.device, self.inode, self.size, self.mtime_ns) == (
            other.device, other.inode, other.size, other.mtime_ns
        )


def _hash_edges(f: BinaryIO, size: int) -> str:
    digest = hashlib.sha256(size.to_bytes(8, "little"))
    if size <= 2 * EDGE_BYTES:
        digest.update(f.read(size))
    else:  # multi-GB videos: the head and tail catch re-encodes and truncation cheaply
        digest.update(f.read(EDGE_BYTES))
        f.seek(size - EDGE_BYTES)
        digest.update(f.read(EDGE_BYTES))
    return digest.hexdigest()


def fingerprint(path: Path) -> Fingerprint:
    """Stat fields and a content hash of a regular file; symlinks are refused (ELOOP), never followed.

    The stat comes from the open descriptor so it describes the bytes hashed; a file that
    changes while it is read is re-read, and after three tries OSError(EAGAIN) says it is not settled.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(3):
        with open(os.open(path, flags), "rb") as f:  # O_NONBLOCK: a FIFO must not hang us
            before = os.fstat(f.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
            content_hash = _hash_edges(f, before.st_size)
            after = os.fstat(f.fileno())
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return Fingerprint(before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, content_hash)
    raise OSError(errno.EAGAIN, "file keeps changing while it is read", os.fspath(path))


def needs_full_hash(fp: Fingerprint) -> bool:
    """Whether the sampled hash leaves part of the file unread, and a whole-file hash is affordable."""
    return 2 * EDGE_BYTES < fp.size <= FULL_HASH_MAX


def with_full_hash(fp: Fingerprint, path: Path) -> Fingerprint:
    """``fp`` with the whole file's hash, so an edit between the sampled edges is seen later (same
    size, same head and tail: cp over a finished file). Unchanged when the edges cover the file or
    it is too large to read in one go; OSError if it cannot be read."""
    if not needs_full_hash(fp) or fp.full_hash:
        return fp
    digest = hashlib.sha256()
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    with open(os.open(path, flags), "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return replace(fp, full_hash=digest.hexdigest())
