from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import srt
import webvtt

from asrd.config import OutputSettings
from asrd.control.ignore import SIDECAR_EXTENSIONS
from asrd.media import SIDECAR_FORMATS
from asrd.output import sidecars
from asrd.output.formats import RENDERERS, render
from asrd.output.sidecars import SidecarError, choose_paths, owner, write_atomic, write_sidecars
from asrd.records import SAMPLE_RATE, Recognized, Token, Transcript

S = SAMPLE_RATE


def transcript(source: Path) -> Transcript:
    return Transcript(
        source=source,
        duration=40 * S,
        segments=(
            Recognized("k", 0, 1 * S, 4 * S, "Hello there, test.", "en", "NEUTRAL", ("Speech",),
                       (Token("Hello", S, 2 * S), Token("there,", 2 * S, 3 * S), Token("test.", 3 * S, 4 * S))),
            Recognized("k", 1, 5 * S, 9 * S, "欢迎大家来体验达摩院推出的语音识别模型，这是一个很长的句子。", "zh"),
            Recognized("k", 2, 20 * S, 35 * S, " ".join(f"word{i}" for i in range(60)) + ". -->", "en"),
        ),
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "memo.wav"
    path.write_bytes(b"RIFF original bytes")
    return path


def test_srt_and_vtt_parse_with_real_parsers(source: Path, tmp_path: Path) -> None:
    out = render(transcript(source), ["srt", "vtt"])
    subs = list(srt.parse(out["srt"].decode()))
    assert len(subs) >= 4
    assert subs[0].start.total_seconds() == pytest.approx(1.0)
    for a, b in itertools.pairwise(subs):
        assert a.end <= b.start
    vtt_path = tmp_path / "x.vtt"
    vtt_path.write_bytes(out["vtt"])
    captions = webvtt.read(str(vtt_path))
    assert len(captions) == len(subs)
    # "-->" may not appear inside a WebVTT cue, so it is written as "->".
    assert [c.text for c in captions] == [s.content.replace("-->", "->") for s in subs]
    for cue in subs:
        lines = cue.content.split("\n")
        assert len(lines) <= 2
        assert all(len(line) <= 42 for line in lines), lines
        assert (cue.end - cue.start).total_seconds() <= 7.0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_ffmpeg_subtitle_demuxer_reads_them(source: Path, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt}"
    path.write_bytes(render(transcript(source), [fmt])[fmt])
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    times = [float(line) for line in probe.stdout.split()]
    assert times[0] == pytest.approx(1.0)
    assert len(times) >= 4


def test_txt_and_json(source: Path) -> None:
    out = render(transcript(source), ["txt", "json"])
    text = out["txt"].decode()
    # The 11 s pause before the third segment starts a new paragraph; CJK joins without spaces.
    paragraphs = text.strip().split("\n\n")
    assert len(paragraphs) == 2
    assert "test. 欢迎" in paragraphs[0]
    doc = json.loads(out["json"])
    assert doc["source"] == "memo.wav" and doc["language"] == "en"
    seg = doc["segments"][0]
    assert seg["start"] == 1.0 and seg["end"] == 4.0 and seg["emotion"] == "NEUTRAL"
    assert seg["tokens"][1] == {"text": "there,", "start": 2.0, "end": 3.0}
    assert doc["cues"]


def test_atomic_write_marks_ownership(source: Path) -> None:
    target = source.with_suffix(".txt")
    write_atomic(target, b"hello\n", source, replace=False)
    assert target.read_bytes() == b"hello\n"
    assert owner(target) == str(source.resolve())
    target.write_bytes(b"edited by a person\n")  # the mark no longer matches the content
    assert owner(target) is None
    assert not [p for p in source.parent.iterdir() if p.name.startswith(sidecars.TEMP_PREFIX)]


@pytest.mark.parametrize("fail_at", ["write", "fsync", "replace"])
def test_failure_mid_write_leaves_nothing(source: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    original = source.read_bytes()
    target = source.with_suffix(".srt")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail_at == "write":
        monkeypatch.setattr(sidecars.os, "fdopen", lambda fd, mode: _FailingFile(fd))
    elif fail_at == "fsync":
        monkeypatch.setattr(sidecars.os, "fsync", boom)
    else:
        monkeypatch.setattr(sidecars.os, "link", boom)
    with pytest.raises(SidecarError) as err:
        write_atomic(target, b"x" * 100_000, source, replace=False)
    assert err.value.environmental  # disk full: pause and retry later, not the file's fault
    assert "No space left" in str(err.value) and str(target) in str(err.value)
    assert not target.exists()
    assert sorted(p.name for p in source.parent.iterdir()) == ["memo.wav"]
    assert source.read_bytes() == original


class _FailingFile:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        os.write(self.fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_user_file_is_never_overwritten(source: Path) -> None:
    user = source.with_suffix(".txt")
    user.write_text("my own notes\n")
    with pytest.raises(SidecarError, match="not written by asrd"):
        choose_paths(source, ["txt", "srt"], "{stem}.{ext}", None, None, overwrite=False)
    assert user.read_text() == "my own notes\n"
    paths = choose_paths(source, ["txt"], "{stem}.{ext}", None, None, overwrite=True)
    write_sidecars(source, {"txt": b"new\n"}, paths, overwrite=True)
    assert user.read_text() == "new\n"


def test_our_own_sidecar_is_replaced(source: Path) -> None:
    paths = choose_paths(source, ["txt"], "{stem}.{ext}", None, None, overwrite=False)
    write_sidecars(source, {"txt": b"one\n"}, paths, overwrite=False)
    paths = choose_paths(source, ["txt"], "{stem}.{ext}", None, None, overwrite=False)
    write_sidecars(source, {"txt": b"two\n"}, paths, overwrite=False)
    assert paths["txt"].read_text() == "two\n"


def test_same_stem_sources_keep_their_own_sidecars(tmp_path: Path) -> None:
    wav, m4a = tmp_path / "memo.wav", tmp_path / "memo.m4a"
    for src, text in ((wav, b"from wav\n"), (m4a, b"from m4a\n")):
        src.write_bytes(b"audio")
        paths = choose_paths(src, ["txt", "srt"], "{stem}.{ext}", None, None, overwrite=False)
        write_sidecars(src, {"txt": text, "srt": text}, paths, overwrite=False)
    assert (tmp_path / "memo.txt").read_bytes() == b"from wav\n"
    assert (tmp_path / "memo.m4a.txt").read_bytes() == b"from m4a\n"
    assert (tmp_path / "memo.m4a.srt").read_bytes() == b"from m4a\n"
    # Running either again goes to the same place.
    again = choose_paths(wav, ["txt"], "{stem}.{ext}", None, None, overwrite=False)
    assert again["txt"] == tmp_path / "memo.txt"
    again = choose_paths(m4a, ["txt"], "{stem}.{ext}", None, None, overwrite=False)
    assert again["txt"] == tmp_path / "memo.m4a.txt"


def test_same_stem_in_one_run_even_with_overwrite(tmp_path: Path) -> None:
    claimed: set[Path] = set()
    a = choose_paths(tmp_path / "memo.wav", ["txt"], "{stem}.{ext}", None, None, overwrite=True, claimed=claimed)
    b = choose_paths(tmp_path / "memo.m4a", ["txt"], "{stem}.{ext}", None, None, overwrite=True, claimed=claimed)
    assert a["txt"] != b["txt"]


def test_same_name_from_different_folders_into_one_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    chosen = []
    for folder in ("a", "b", "c"):
        src = tmp_path / folder / "test.wav"
        src.parent.mkdir()
        src.write_bytes(b"audio")
        paths = choose_paths(src, ["txt"], "{stem}.{ext}", out, None, overwrite=False)
        write_sidecars(src, {"txt": folder.encode()}, paths, overwrite=False)
        chosen.append(paths["txt"].name)
    assert chosen == ["test.txt", "test.wav.txt", "test.wav.2.txt"]
    # Stable on a second run: each source finds its own sidecar again.
    again = choose_paths(tmp_path / "c" / "test.wav", ["txt"], "{stem}.{ext}", out, None, overwrite=False)
    assert again["txt"].name == "test.wav.2.txt"


def test_naming_with_language_and_output_dir(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = choose_paths(source, ["srt"], "{stem}.{lang}.{ext}", out, "en", overwrite=False)
    assert paths["srt"] == out / "memo.en.srt"


def test_one_list_of_formats() -> None:
    # Config accepts, the writers render and the watcher ignores exactly the same formats.
    assert set(RENDERERS) == set(SIDECAR_FORMATS) == SIDECAR_EXTENSIONS
    assert OutputSettings(formats=SIDECAR_FORMATS).formats == SIDECAR_FORMATS
