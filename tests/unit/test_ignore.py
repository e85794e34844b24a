from __future__ import annotations

from pathlib import PurePath, PurePosixPath

import pytest

from asrd.control.ignore import IgnoreRules, is_litter

DEFAULT = IgnoreRules()


@pytest.mark.parametrize(
    "relative",
    [
        "memo.m4a",
        "MEMO.M4A",
        "Voice 001.mp3",
        "2024/05/interview.wav",
        "clip.mkv",
        "talk.opus",
        ".hidden-but-real.m4a",  # a hidden file is not litter by itself
        "rsync.short.mp3",
        "-leading-dash.flac",
        "emoji 🎙.m4a",
    ],
)
def test_media_is_accepted(relative: str) -> None:
    assert DEFAULT.accepts(PurePath(relative))


@pytest.mark.parametrize(
    "relative",
    [
        # temp names of sync tools and browsers
        ".syncthing.memo.m4a.tmp",
        "~syncthing~memo.m4a.tmp",
        ".memo.m4a.Xy12Ab",  # rsync
        "memo.m4a.part",
        "memo.m4a.ocTransferId1234567.part",
        "memo.m4a.a1b2c3.partial",  # rclone
        "memo.m4a.filepart",
        "memo.m4a.crdownload",
        "memo.m4a.download",
        "memo.m4a.tmp",
        "movie.mkv.!qB",
        ".asrd-tmp-abc123.tmp",
        ".asrd-tmp-memo.m4a",
        # OS / NAS litter
        "._memo.m4a",
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        "~$report.m4a",
        # litter folders, anywhere on the path
        "@eaDir/memo.m4a",
        "@eaDir/memo.m4a/SYNOFILE_THUMB_M.jpg",
        "a/#recycle/memo.m4a",
        "#snapshot/memo.m4a",
        ".stversions/memo~20240101-120000.m4a",
        ".stfolder/memo.m4a",
        ".Trashes/501/memo.m4a",
        ".Trash-1000/files/memo.m4a",
        "__MACOSX/memo.m4a",
        ".git/memo.m4a",
        ".cache/memo.m4a",
        "Song.download/song.m4a",  # Safari's bundle
        # our sidecars and other non-media
        "memo.txt",
        "memo.srt",
        "memo.vtt",
        "memo.json",
        "notes.pdf",
        "noextension",
        # not relative to the inbox
        "/abs/memo.m4a",
        "../memo.m4a",
        "",
    ],
)
def test_non_media_and_litter_are_rejected(relative: str) -> None:
    assert not DEFAULT.accepts(PurePath(relative))


def test_sidecars_are_never_accepted_even_with_include_star() -> None:
    rules = IgnoreRules(include=["*"])
    assert rules.accepts(PurePath("notes.pdf"))
    assert not rules.accepts(PurePath("memo.srt"))
    assert not rules.accepts(PurePath("memo.m4a.part"))
    assert not rules.accepts(PurePath("@eaDir/memo.m4a"))


def test_include_replaces_the_default_extension_list_case_insensitively() -> None:
    rules = IgnoreRules(include=["*.m4a", "Calls/*.amr"])
    assert rules.accepts(PurePath("memo.M4A"))
    assert rules.accepts(PurePath("calls/2024/x.AMR"))
    assert not rules.accepts(PurePath("memo.mp3"))
    assert not rules.accepts(PurePath("other/x.amr"))


def test_exclude_matches_name_or_relative_path_case_insensitively() -> None:
    rules = IgnoreRules(exclude=["*.MKV", "Archive/*", "draft-*"])
    assert not rules.accepts(PurePath("film.mkv"))
    assert not rules.accepts(PurePath("archive/2023/memo.m4a"))
    assert not rules.accepts(PurePath("x/DRAFT-1.m4a"))
    assert rules.accepts(PurePath("x/archive-notes.m4a"))
    assert rules.accepts(PurePath("memo.m4a"))


def test_skip_dir() -> None:
    rules = IgnoreRules(exclude=["Private"])
    for name in (
        "@eaDir",
        ".stversions",
        ".stfolder",
        "#recycle",
        "#snapshot",
        ".Trashes",
        ".Trash-1000",
        "__MACOSX",
        ".git",
        ".anything",
        "$RECYCLE.BIN",
        "private",
    ):
        assert rules.skip_dir(name), name
    for name in ("2024", "Voice Memos", "recycle", "eaDir"):
        assert not rules.skip_dir(name), name


def test_is_litter_does_not_eat_real_names() -> None:
    assert not is_litter("memo.m4a")
    assert not is_litter(".memo.m4a")  # rsync's suffix is exactly six characters
    assert not is_litter("interview.partial-transcript.mp3")


@pytest.mark.parametrize(("relative", "include", "exclude", "rule"), [
    ("talk.mp3.part", (), (), "temporary name"),
    (".talk.mp3.Ab3xYz", (), (), "temporary name"),  # rsync
    ("._talk.mp3", (), (), "litter"),
    ("@eaDir/talk.mp3", (), (), "skipped folder (@eaDir"),
    ("talk.srt", (), (), "asrd's output format"),
    ("notes.pdf", (), (), "not a media extension (.pdf)"),
    ("drafts/talk.mp3", (), ("drafts/*",), "exclude glob 'drafts/*'"),
    ("talk.mp3", ("*.wav",), (), "matches no include glob"),
])
def test_why_not_names_the_rule(relative: str, include: tuple[str, ...], exclude: tuple[str, ...], rule: str) -> None:
    rules = IgnoreRules(include, exclude)
    why = rules.why_not(PurePosixPath(relative))
    assert why is not None and rule in why
    assert rules.accepts(PurePosixPath(relative)) is False


def test_why_not_is_none_for_accepted_files() -> None:
    assert IgnoreRules().why_not(PurePosixPath("a/talk.MP3")) is None
