"""Sidecar files (.txt .srt .vtt .json): naming, rendering, and atomic, ownership-aware writing.

asrd records a mark for every sidecar it writes (which source, and a hash of the content; see
``asrd.output.ownership``). A file at a target path without a matching mark (none, or a person
edited it since) is the user's and is never replaced unless ``overwrite`` is set. Originals are
only ever opened for reading, elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.media import TEMP_PREFIX
from asrd.output import ownership as own
from asrd.output.alerts import AlertMatch
from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.output.formats import render
from asrd.output.ownership import XATTR, XATTRS, Mark, Ownership
from asrd.records import Transcript

if TYPE_CHECKING:
    from asrd.config import OutputSettings

log = logging.getLogger(__name__)

__all__ = [
    "XATTR", "Sidecar", "SidecarError", "choose_paths", "move_sidecars", "moved_sidecars", "owner", "write_atomic",
]


class SidecarError(Exception):
    """A sidecar could not be written; ``path`` names the file, the message says why."""

    def __init__(self, path: Path, reason: str, *, environmental: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        # Disk full, read-only, permission denied: a retry later may succeed without any change to the source.
        self.environmental = environmental


@dataclass(frozen=True)
class Sidecar:
    fmt: str
    path: Path
    content: bytes


# ---------------------------------------------------------------- naming and ownership


def target_paths(
    source: Path, formats: Sequence[str], naming: str, output_dir: Path | None, language: str | None
) -> dict[str, Path]:
    folder = output_dir if output_dir is not None else source.parent
    fields = {"stem": source.stem, "name": source.name, "lang": language or "und"}
    return {fmt: folder / naming.format(ext=fmt, **fields) for fmt in formats}


_source_id = own.source_id


def owner(path: Path, ownership: Ownership = XATTRS) -> str | None:
    """The source (absolute path) an existing sidecar was written for, or None if asrd did not
    write it as it now stands (no mark, or content changed since)."""
    return own.owner(path, ownership)


def is_ours(path: Path, source: Path, ownership: Ownership = XATTRS) -> bool:
    return owner(path, ownership) == _source_id(source)


_MAX_VARIANTS = 100


def choose_paths(
    source: Path,
    formats: Sequence[str],
    naming: str,
    output_dir: Path | None,
    language: str | None,
    *,
    overwrite: bool,
    claimed: set[Path] | None = None,
    ownership: Ownership = XATTRS,
) -> dict[str, Path]:
    """Target paths for one source's sidecars.

    If the configured names are held by asrd's sidecars of ANOTHER source with the same stem
    (``memo.wav`` and ``memo.m4a``, or two ``test.wav`` from different folders sharing an
    output_dir), fall back to names with the source's extension (``memo.m4a.txt``), then with a
    number (``test.wav.2.txt``), so no source overwrites another's sidecars. ``claimed`` holds
    paths already given to other sources in this run. A name held by a file asrd did not write
    is refused unless ``overwrite``.
    """
    claimed = claimed if claimed is not None else set()

    def taken_by_other(path: Path) -> bool:
        if path in claimed:
            return True
        if not path.exists():
            return False
        held = owner(path, ownership)
        return held is not None and held != _source_id(source)

    paths = target_paths(source, formats, naming, output_dir, language)
    variants = [naming.replace("{stem}", "{name}")] if "{name}" not in naming else []
    variants += [naming.replace("{stem}", "{name}").replace("{ext}", f"{n}.{{ext}}") for n in range(2, _MAX_VARIANTS)]
    for variant in variants:
        if not any(taken_by_other(p) for p in paths.values()):
            break
        paths = target_paths(source, formats, variant, output_dir, language)
    for path in paths.values():
        if taken_by_other(path):
            raise SidecarError(path, "every sidecar name for this file is taken by other sources")
        if path.exists() and not overwrite and not is_ours(path, source, ownership):
            raise SidecarError(path, "exists and was not written by asrd for this file (use --overwrite)")
    claimed.update(paths.values())
    return paths


# ---------------------------------------------------------------- atomic writing


_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
# Hard links refused: vfat, some SMB servers, FUSE mounts (rclone answers EIO). A rename still works there;
# a real I/O error fails that rename too.
_NO_LINKS = _UNSUPPORTED | {errno.EPERM, errno.EMLINK, errno.EXDEV, errno.EIO}
_ENVIRONMENTAL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ESTALE, errno.EIO}
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every filesystem lets a folder be opened; the rename is done either way
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _UNSUPPORTED:  # FUSE and SMB mounts often cannot sync a folder
            raise
    finally:
        os.close(fd)


def mount_hint(folder: Path) -> str:
    """What to change when a mount cannot take a plain write-then-rename (empty when unknown)."""
    from asrd.control.watch import mount_type  # reads /proc/self/mountinfo; only on this error path

    fstype = mount_type(folder)
    if "rclone" in fstype:
        return f" ({folder} is an rclone mount: mount it with --vfs-cache-mode writes or full)"
    if fstype.startswith("fuse"):
        return f" ({folder} is a {fstype} mount; it may need a write cache or different options)"
    return ""


def _commit(tmp: str, path: Path, replace: bool) -> None:
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if the name appeared meanwhile: never clobber a file made behind our back
    except FileExistsError:
        raise SidecarError(path, "appeared while writing; left untouched") from None
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        # No hard links here: check, then rename (a much smaller window than the whole write).
        if os.path.lexists(path):
            raise SidecarError(path, "appeared while writing; left untouched") from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def write_atomic(
    path: Path,
    content: bytes,
    source: Path,
    *,
    replace: bool,
    ownership: Ownership = XATTRS,
    file_mode: int | None = None,
) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the whole new one.

    A temp file in the same directory, opened write-only and created exclusively (FUSE mounts such
    as rclone's default VFS mode refuse read-write opens), with the mode any new file gets
    (0666 & ~umask, the group of a setgid folder) or ``file_mode``; fsync; its ownership mark;
    then ``os.replace`` (``replace``) or a no-clobber commit; then fsync the directory. On any
    error the temp file is removed and nothing partial is left.
    """
    folder = path.parent
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            candidate = os.fspath(folder / f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp")
            try:
                fd = os.open(candidate, _CREATE, 0o666)
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise OSError(errno.EEXIST, "no free temporary file name", os.fspath(folder))
        with os.fdopen(fd, "wb") as handle:
            if file_mode is not None:
                os.fchmod(handle.fileno(), file_mode)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        ownership.record(path, Path(tmp), Mark(_source_id(source), own.digest(content)))
        _commit(tmp, path, replace)
        tmp = None
        _fsync_dir(folder)
    except OSError as err:
        reason = err.strerror or str(err)
        hint = mount_hint(folder) if err.errno in (errno.EIO, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS) else ""
        raise SidecarError(
            path, f"cannot write: {reason}{hint}", environmental=err.errno in _ENVIRONMENTAL
        ) from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_sidecars(
    source: Path,
    rendered: Mapping[str, bytes],
    paths: Mapping[str, Path],
    *,
    overwrite: bool,
    ownership: Ownership = XATTRS,
    file_mode: int | None = None,
) -> list[Sidecar]:
    written: list[Sidecar] = []
    for fmt, content in rendered.items():
        path = paths[fmt]
        ours = path.exists() and is_ours(path, source, ownership)
        write_atomic(
            path, content, source, replace=overwrite or ours, ownership=ownership, file_mode=file_mode
        )
        written.append(Sidecar(fmt, path, content))
    return written


def write_outputs(
    transcript: Transcript,
    output: OutputSettings,
    *,
    rules: CueRules = DEFAULT_RULES,
    overwrite: bool = False,
    claimed: set[Path] | None = None,
    ownership: Ownership = XATTRS,
    alerts: Sequence[AlertMatch] = (),
    processing: Mapping[str, object] | None = None,
) -> list[Sidecar]:
    """Render and atomically write a transcript's sidecars (``alerts`` and ``processing``, how it was made,
    go into the .json). Raises SidecarError."""
    source = transcript.source
    rendered = render(transcript, output.formats, rules, alerts, processing)
    paths = choose_paths(
        source, output.formats, output.naming, output.output_dir, transcript.language,
        overwrite=overwrite, claimed=claimed, ownership=ownership,
    )
    written = write_sidecars(
        source, rendered, paths, overwrite=overwrite, ownership=ownership, file_mode=output.mode_bits()
    )
    for sidecar in written:
        log.info("wrote %s", sidecar.path)
    return written


# ---------------------------------------------------------------- following a moved source


def move_sidecars(
    old_source: Path,
    new_source: Path,
    sidecars: Sequence[Path],
    output: OutputSettings,
    *,
    ownership: Ownership,
    theirs: Mapping[Path, str] | None = None,
) -> list[Path]:
    """A finished source was renamed or moved (same content): rename its sidecars to match.

    The new paths of ``moved_sidecars``, in its order.
    """
    return list(moved_sidecars(old_source, new_source, sidecars, output, ownership=ownership, theirs=theirs).values())


def moved_sidecars(
    old_source: Path,
    new_source: Path,
    sidecars: Sequence[Path],
    output: OutputSettings,
    *,
    ownership: Ownership,
    theirs: Mapping[Path, str] | None = None,
) -> dict[Path, Path]:
    """A finished source was renamed or moved (same content): rename its sidecars to match.

    Sidecars still asrd's for ``old_source`` move, and so do the ones asrd wrote for a person from the editor
    (``theirs``: path -> sha256 of what it wrote) while they still hold exactly that: both are this file's
    transcript. Each gets the name ``new_source`` would get (never over a file that exists); asrd's mark is
    re-recorded for the new source before the rename (a person's file gets none). Returns old path -> new path
    of those that moved; raises SidecarError when one cannot move (those already moved stay moved: each is
    whole under one name or the other).
    """
    by_fmt: dict[str, Path] = {}
    person: set[Path] = set()
    for path in sidecars:
        if is_ours(path, old_source, ownership):
            by_fmt[path.suffix.lstrip(".")] = path
        elif theirs and path in theirs and _holds(path, theirs[path]):
            by_fmt[path.suffix.lstrip(".")] = path
            person.add(path)
    if not by_fmt:
        return {}
    language = _language_in(sidecars, old_source, output)
    targets = choose_paths(
        new_source, list(by_fmt), output.naming, output.output_dir, language, overwrite=False, ownership=ownership
    )
    moved: dict[Path, Path] = {}
    for fmt, old in by_fmt.items():
        new = targets[fmt]
        if new == old:
            moved[old] = old
            continue
        try:
            if os.path.lexists(new):
                raise SidecarError(new, "exists; the sidecar of the moved file was left under its old name")
            new.parent.mkdir(parents=True, exist_ok=True)
            if old not in person:
                ownership.record(new, old, Mark(_source_id(new_source), own.digest(old.read_bytes())))
            os.rename(old, new)
            ownership.forget(old)
        except OSError as err:
            raise SidecarError(old, f"cannot move to {new}: {err.strerror or err}", environmental=True) from err
        log.info("moved %s -> %s", old, new)
        moved[old] = new
    return moved


def _holds(path: Path, sha256: str) -> bool:
    try:
        return own.digest(path.read_bytes()) == sha256
    except OSError:
        return False


def _language_in(sidecars: Sequence[Path], source: Path, output: OutputSettings) -> str | None:
    # A {lang} template: recover the language from a current name, else "und" as when it was unknown.
    if "{lang}" not in output.naming:
        return None
    for path in sidecars:
        for lang in ("zh", "en", "yue", "ja", "ko", "und"):
            if path in target_paths(source, [path.suffix.lstrip(".")], output.naming, output.output_dir, lang).values():
                return lang
    return None
