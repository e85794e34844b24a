"""Sidecar files (.txt .srt .vtt .json): naming, rendering, and atomic, ownership-aware writing.

Every sidecar asrd writes carries an extended attribute ``user.asrd`` recording which source
it belongs to and a hash of its content. A file at a target path without that mark (or whose
content no longer matches it, i.e. a person edited it) is the user's and is never replaced
unless ``overwrite`` is set. Originals are only ever opened for reading, elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asrd.media import TEMP_PREFIX
from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.output.formats import render
from asrd.records import Transcript

if TYPE_CHECKING:
    from asrd.config import OutputSettings

log = logging.getLogger(__name__)

XATTR = "user.asrd"


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


def _source_id(source: Path) -> str:
    return str(source.resolve())


def _mark(source: Path, content: bytes) -> bytes:
    return json.dumps({"source": _source_id(source), "sha256": hashlib.sha256(content).hexdigest()}).encode()


def owner(path: Path) -> str | None:
    """The source (absolute path) an existing sidecar was written for, or None if asrd did not
    write it as it now stands (no mark, mark unreadable, or content changed since)."""
    try:
        mark = json.loads(os.getxattr(path, XATTR))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
    if not isinstance(mark, dict) or mark.get("sha256") != digest:
        return None
    source = mark.get("source")
    return source if isinstance(source, str) else None


def is_ours(path: Path, source: Path) -> bool:
    return owner(path) == _source_id(source)


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
        held = owner(path)
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
        if path.exists() and not overwrite and not is_ours(path, source):
            raise SidecarError(path, "exists and was not written by asrd for this file (use --overwrite)")
    claimed.update(paths.values())
    return paths


# ---------------------------------------------------------------- atomic writing


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_ENVIRONMENTAL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ESTALE, errno.EIO}


def write_atomic(path: Path, content: bytes, source: Path, *, replace: bool) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the whole new one.

    Temp file in the same directory, fsync, then ``os.replace`` (``replace``) or a hard link that
    fails if the name appeared meanwhile (never clobbering a file created behind our back), then
    fsync the directory. On any error the temp file is removed and nothing partial is left.
    """
    folder = path.parent
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.setxattr(tmp, XATTR, _mark(source, content))
        except OSError as err:
            if err.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # Filesystem without user xattrs: the file is written but later runs cannot prove it is ours.
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise SidecarError(path, "appeared while writing; left untouched") from None
            os.unlink(tmp)
        tmp = None
        _fsync_dir(folder)
    except OSError as err:
        reason = err.strerror or str(err)
        raise SidecarError(path, f"cannot write: {reason}", environmental=err.errno in _ENVIRONMENTAL) from err
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_sidecars(
    source: Path, rendered: Mapping[str, bytes], paths: Mapping[str, Path], *, overwrite: bool
) -> list[Sidecar]:
    written: list[Sidecar] = []
    for fmt, content in rendered.items():
        path = paths[fmt]
        ours = path.exists() and is_ours(path, source)
        write_atomic(path, content, source, replace=overwrite or ours)
        written.append(Sidecar(fmt, path, content))
    return written


def write_outputs(
    transcript: Transcript,
    output: OutputSettings,
    *,
    rules: CueRules = DEFAULT_RULES,
    overwrite: bool = False,
    claimed: set[Path] | None = None,
) -> list[Sidecar]:
    """Render and atomically write a transcript's sidecars. Raises SidecarError."""
    source = transcript.source
    rendered = render(transcript, output.formats, rules)
    paths = choose_paths(
        source, output.formats, output.naming, output.output_dir, transcript.language,
        overwrite=overwrite, claimed=claimed,
    )
    written = write_sidecars(source, rendered, paths, overwrite=overwrite)
    for sidecar in written:
        log.info("wrote %s", sidecar.path)
    return written
