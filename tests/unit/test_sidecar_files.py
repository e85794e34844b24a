"""Sidecars as files other people use: their permissions, their owner on mounts without xattrs,
and writing on mounts that refuse read-write opens and hard links (rclone's default VFS mode)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.config import OutputSettings
from asrd.control.jobs_memory import MemoryJobStore
from asrd.control.status import LiveState, write_live
from asrd.output import sidecars
from asrd.output.ownership import NoXattrOwnership, RecordOwnership, XattrOwnership, for_store, owner
from asrd.output.sidecars import SidecarError, move_sidecars, write_atomic, write_outputs
from asrd.records import SAMPLE_RATE, Recognized, Token, Transcript


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "memo.mp3"
    path.write_bytes(b"audio")
    return path


@pytest.fixture
def umask() -> Iterator[object]:
    old = os.umask(0o022)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


def transcript(source: Path, text: str = "hello world") -> Transcript:
    words = text.split()
    tokens = tuple(Token(w, i * SAMPLE_RATE, (i + 1) * SAMPLE_RATE) for i, w in enumerate(words))
    end = len(words) * SAMPLE_RATE
    return Transcript(source, end, (Recognized("k", 0, 0, end, text, "en", "NEUTRAL", ("Speech",), tokens),))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- permissions


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_sidecars_get_the_mode_of_any_new_file(source: Path, umask: object, mask: int, expected: int) -> None:
    umask(mask)  # type: ignore[operator]
    written = write_outputs(transcript(source), OutputSettings(formats=("txt", "srt")))
    assert [mode(s.path) for s in written] == [expected, expected]


def test_file_mode_setting_overrides_the_umask(source: Path, umask: object) -> None:
    umask(0o077)  # type: ignore[operator]
    written = write_outputs(transcript(source), OutputSettings(formats=("txt",), file_mode="0644"))
    assert mode(written[0].path) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another group needs root")
def test_setgid_folder_gives_its_group(tmp_path: Path, umask: object) -> None:
    umask(0o002)  # type: ignore[operator]
    share = tmp_path / "share"
    share.mkdir()
    gid = 4242 if os.getgid() != 4242 else 4243
    os.chown(share, -1, gid)
    os.chmod(share, 0o2775)
    src = share / "memo.mp3"
    src.write_bytes(b"audio")
    written = write_outputs(transcript(src), OutputSettings(formats=("txt", "srt")))
    for sidecar in written:
        st = sidecar.path.stat()
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (gid, 0o664)  # the group can read and edit it


def test_status_file_is_readable_like_any_new_file(tmp_path: Path, umask: object) -> None:
    umask(0o022)  # type: ignore[operator]
    write_live(tmp_path, LiveState(pid=1, version="x", started=0.0, phase="running", model_loaded=False))
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert files and all(mode(p) == 0o644 for p in files)


def test_file_mode_is_validated() -> None:
    assert OutputSettings(file_mode="664").mode_bits() == 0o664
    assert OutputSettings().mode_bits() is None
    for bad in ("rw-r--r--", "0888", "4755", "644 "):
        with pytest.raises(ValueError, match="octal"):
            OutputSettings(file_mode=bad)


# ---------------------------------------------------------------- no user xattrs (sshfs, SMB, NFSv3)


def test_without_xattrs_the_database_proves_our_sidecars(source: Path) -> None:
    store = MemoryJobStore()
    ours = for_store(store, NoXattrOwnership())
    out = OutputSettings(formats=("txt",))
    first = write_outputs(transcript(source, "first take"), out, ownership=ours)
    assert owner(first[0].path, ours) == str(source.resolve())
    assert owner(first[0].path, NoXattrOwnership()) is None  # the xattr alone cannot tell here
    # The finished file is replaced and done again: its own sidecar is replaced, not refused.
    again = write_outputs(transcript(source, "second take"), out, ownership=ours)
    assert again[0].path == first[0].path and b"second take" in again[0].path.read_bytes()
    # A person edits it: now it is theirs.
    first[0].path.write_text("my notes\n")
    with pytest.raises(SidecarError, match="not written by asrd"):
        write_outputs(transcript(source, "third"), out, ownership=ours)


def test_without_xattrs_a_second_same_stem_file_gets_its_own_names(tmp_path: Path) -> None:
    ours = for_store(MemoryJobStore(), NoXattrOwnership())
    out = OutputSettings(formats=("txt", "srt"))
    mp3, flac = tmp_path / "memo.mp3", tmp_path / "memo.flac"
    for src in (mp3, flac):
        src.write_bytes(b"audio")
    write_outputs(transcript(mp3), out, ownership=ours)
    written = write_outputs(transcript(flac), out, ownership=ours)
    assert sorted(s.path.name for s in written) == ["memo.flac.srt", "memo.flac.txt"]


def test_records_in_sqlite_survive_a_restart(tmp_path: Path, source: Path) -> None:
    from asrd.control.jobs_sqlite import SqliteJobStore

    db = tmp_path / "state" / "jobs.sqlite3"
    with SqliteJobStore(db) as store:
        ours = for_store(store, NoXattrOwnership())
        write_outputs(transcript(source), OutputSettings(formats=("txt",)), ownership=ours)
    with SqliteJobStore(db) as store:
        assert owner(source.with_suffix(".txt"), RecordOwnership(store)) == str(source.resolve())


# ---------------------------------------------------------------- rclone-like mounts


@pytest.fixture
def rclone_like(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A folder that behaves as rclone's default VFS mode: no read-write opens, no hard links, no xattrs."""
    folder = tmp_path / "rclone"
    folder.mkdir()
    real_open, prefix = os.open, os.fspath(folder)

    def vfs_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if os.fspath(path).startswith(prefix) and flags & os.O_RDWR:  # type: ignore[arg-type]
            raise OSError(errno.EIO, "Input/output error", path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def no_link(src: object, dst: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSYS, "Function not implemented", src)

    monkeypatch.setattr(os, "open", vfs_open)
    monkeypatch.setattr(os, "link", no_link)
    return folder


def test_writes_on_a_mount_without_read_write_opens_or_hard_links(rclone_like: Path) -> None:
    src = rclone_like / "memo.mp3"
    src.write_bytes(b"audio")
    target = src.with_suffix(".txt")
    write_atomic(target, b"hello\n", src, replace=False, ownership=NoXattrOwnership())
    assert target.read_bytes() == b"hello\n"
    assert sorted(p.name for p in rclone_like.iterdir()) == ["memo.mp3", "memo.txt"]
    # Without links the no-clobber commit still refuses a name that exists.
    with pytest.raises(SidecarError, match="appeared while writing"):
        write_atomic(target, b"again\n", src, replace=False, ownership=NoXattrOwnership())
    assert target.read_bytes() == b"hello\n"
    assert sorted(p.name for p in rclone_like.iterdir()) == ["memo.mp3", "memo.txt"]


def test_an_io_error_on_an_rclone_mount_says_what_to_change(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asrd.control import watch

    monkeypatch.setattr(watch, "_mount_table", lambda: [("/", "ext4"), (str(source.parent), "fuse.rclone")])

    def eio(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sidecars.os, "fsync", eio)
    with pytest.raises(SidecarError, match="--vfs-cache-mode writes") as err:
        write_atomic(source.with_suffix(".txt"), b"x", source, replace=False)
    assert err.value.environmental and not source.with_suffix(".txt").exists()


# ---------------------------------------------------------------- following a moved source


@pytest.mark.parametrize("xattrs", [XattrOwnership(), NoXattrOwnership()], ids=["xattr", "no-xattr"])
def test_sidecars_follow_a_renamed_source(tmp_path: Path, xattrs: XattrOwnership) -> None:
    ours = for_store(MemoryJobStore(), xattrs)
    out = OutputSettings(formats=("txt", "srt"))
    old = tmp_path / "rec001.mp3"
    old.write_bytes(b"audio")
    written = write_outputs(transcript(old), out, ownership=ours)
    (tmp_path / "sub").mkdir()
    new = tmp_path / "sub" / "meeting.mp3"
    old.rename(new)
    moved = move_sidecars(old, new, [s.path for s in written], out, ownership=ours)
    assert sorted(p.name for p in moved) == ["meeting.srt", "meeting.txt"]
    assert all(owner(p, ours) == str(new.resolve()) for p in moved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]
