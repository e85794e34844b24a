"""Everyday file operations on finished files, through the real daemon loop with the inline worker:
rename and move, deleted sidecars, a same-size replacement, mounts without user xattrs."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_daemon import JFK, Harness, sidecars

from asrd.control import edits
from asrd.control.fingerprint import EDGE_BYTES
from asrd.control.jobs import JobState
from asrd.output import ownership
from asrd.output.sidecars import is_ours
from asrd.records import Cue
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.protocol import Task

DATA = JFK.parent


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    sent: list[str] = []
    original = InlineWorker.send

    def counting_send(self: InlineWorker, task: Task) -> None:
        sent.append(Path(task.path).name)
        original(self, task)

    monkeypatch.setattr(InlineWorker, "send", counting_send)
    harness = Harness(tmp_path, InlineWorker)
    harness.sent = sent  # type: ignore[attr-defined]
    harness.daemon.start(harness.now())
    yield harness
    harness.daemon.stop(harness.now())
    harness.store.close()


def settle(h: Harness, seconds: float = 1.0) -> None:
    """Let events arrive and the settle time pass (the fake clock runs ahead), then rescan."""
    h.daemon._rescan = True
    for _ in range(8):
        h.offset += seconds / 4
        h.daemon.step(h.now())
        time.sleep(0.05)


def no_xattrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ownership, "XATTRS", ownership.NoXattrOwnership())


@pytest.mark.parametrize("xattrs", [True, False], ids=["xattr", "no-xattr"])
def test_renamed_and_moved_files_take_their_sidecars_along(
    h: Harness, monkeypatch: pytest.MonkeyPatch, xattrs: bool
) -> None:
    if not xattrs:
        no_xattrs(monkeypatch)
    shutil.copy(JFK, h.inbox / "rec001.flac")
    h.run_until(h.done("rec001.flac"))
    assert h.sent == ["rec001.flac"]  # type: ignore[attr-defined]
    (h.inbox / "rec001.flac").rename(h.inbox / "kennedy.flac")
    h.run_until(h.done("kennedy.flac"))
    assert sidecars(h.inbox) == ["kennedy.srt", "kennedy.txt"]
    (h.inbox / "1961").mkdir()
    (h.inbox / "kennedy.flac").rename(h.inbox / "1961" / "kennedy.flac")
    h.run_until(h.done("1961/kennedy.flac"))
    assert sidecars(h.inbox) == [] and sidecars(h.inbox / "1961") == ["kennedy.srt", "kennedy.txt"]
    settle(h)
    assert h.sent == ["rec001.flac"]  # type: ignore[attr-defined]  # no model time for the moves
    assert h.store.get(h.inbox / "rec001.flac") is None and h.store.get(h.inbox / "kennedy.flac") is None
    job = h.store.get(h.inbox / "1961" / "kennedy.flac")
    assert job is not None and [p.name for p in job.sidecars] == ["kennedy.txt", "kennedy.srt"]
    # Moved again, the sidecars are still provably asrd's: a later redo replaces them, no quarantine.
    assert h.store.retry(h.now(), h.inbox / "1961" / "kennedy.flac") == 1
    h.run_until(lambda: h.sent == ["rec001.flac", "kennedy.flac"])  # type: ignore[attr-defined]
    h.run_until(h.done("1961/kennedy.flac"))


def test_edited_sidecars_follow_a_renamed_file_and_the_edit_record_too(h: Harness) -> None:
    shutil.copy(JFK, h.inbox / "rec002.flac")
    h.run_until(h.done("rec002.flac"))
    job = h.store.get(h.inbox / "rec002.flac")
    assert job is not None
    edits.save(h.store, job, (Cue(8_000, 32_000, "Corrected by a person."),), h.now())
    corrected = {p.suffix: p.read_bytes() for p in job.sidecars}
    (h.inbox / "rec002.flac").rename(h.inbox / "speech.flac")
    h.run_until(h.done("speech.flac"))
    settle(h)
    assert h.sent == ["rec002.flac"]  # type: ignore[attr-defined]  # still no model time: the transcript moved
    assert sidecars(h.inbox) == ["speech.srt", "speech.txt"]
    assert {p.suffix: p.read_bytes() for p in (h.inbox / "speech.srt", h.inbox / "speech.txt")} == corrected
    moved = h.store.by_id(job.id)
    assert moved is not None and sorted(p.name for p in moved.sidecars) == ["speech.srt", "speech.txt"]
    entry = h.store.library.get(job.id)
    assert entry is not None and entry.summary.name == "speech.flac"  # search hits name the file as it is now
    assert [c.text for c in entry.cues] == ["Corrected by a person."]
    record = h.store.edited(job.id)
    assert record is not None
    assert sorted(w.path.name for w in record.written) == sorted(m.path.name for m in record.machine) == [
        "speech.srt", "speech.txt"]
    own = ownership.for_store(h.store)
    assert not any(is_ours(p, moved.path, own) for p in moved.sidecars)  # still the person's
    assert "rewritten" in edits.discard(h.store, moved, h.now())  # and discard finds them under the new name
    assert all(is_ours(p, moved.path, own) for p in moved.sidecars)
    assert "Corrected" not in (h.inbox / "speech.srt").read_text(encoding="utf-8")


def test_a_copy_is_transcribed_and_the_original_keeps_its_sidecars(h: Harness) -> None:
    shutil.copy(JFK, h.inbox / "a.flac")
    h.run_until(h.done("a.flac"))
    shutil.copy(h.inbox / "a.flac", h.inbox / "b.flac")
    h.run_until(h.done("b.flac"))
    assert sidecars(h.inbox) == ["a.srt", "a.txt", "b.srt", "b.txt"]


def test_deleted_sidecars_are_written_again(h: Harness) -> None:
    shutil.copy(JFK, h.inbox / "memo.flac")
    h.run_until(h.done("memo.flac"))
    for name in ("memo.txt", "memo.srt"):
        (h.inbox / name).unlink()
    settle(h)
    h.run_until(lambda: sidecars(h.inbox) == ["memo.srt", "memo.txt"] and h.state("memo.flac") == JobState.DONE)
    assert h.sent == ["memo.flac", "memo.flac"]  # type: ignore[attr-defined]
    # The file deleted and put back (new inode) with its sidecars gone: the same.
    for name in ("memo.txt", "memo.srt", "memo.flac"):
        (h.inbox / name).unlink()
    shutil.copy(JFK, h.inbox / "memo.flac")
    h.run_until(lambda: len(h.sent) == 3 and h.state("memo.flac") == JobState.DONE)  # type: ignore[attr-defined]
    assert sidecars(h.inbox) == ["memo.srt", "memo.txt"]


def test_redo_missing_off_leaves_a_file_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path, InlineWorker)
    views = h.daemon.dispatcher.views
    for key, view in views.items():
        views[key] = type(view)(view.key, view.settings, view.options,
                                view.output.model_copy(update={"redo_missing": False}), view.rules)
    h.daemon.start(h.now())
    try:
        shutil.copy(JFK, h.inbox / "memo.flac")
        h.run_until(h.done("memo.flac"))
        for name in ("memo.txt", "memo.srt"):
            (h.inbox / name).unlink()
        settle(h)
        assert h.state("memo.flac") == JobState.DONE and sidecars(h.inbox) == []
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_same_size_replacement_differing_only_in_the_middle_is_redone(h: Harness, tmp_path: Path) -> None:
    audio, rate = sf.read(JFK, dtype="int16")
    long = np.tile(audio, 4)  # ~44 s of 16-bit mono wav: larger than the sampled head and tail
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    sf.write(first, long, rate, subtype="PCM_16")
    middle = long.copy()
    middle[len(long) // 2 - rate : len(long) // 2 + rate] = 0  # two seconds of silence mid-file
    sf.write(second, middle, rate, subtype="PCM_16")
    assert first.stat().st_size == second.stat().st_size > 2 * EDGE_BYTES
    shutil.copy(first, h.inbox / "talk.wav")
    h.run_until(h.done("talk.wav"))
    job = h.store.get(h.inbox / "talk.wav")
    assert job is not None and job.fingerprint.full_hash  # taken when it was finished
    shutil.copy(second, h.inbox / "talk.wav")  # cp over it: same inode, same size, same edges
    h.run_until(lambda: len(h.sent) == 2 and h.state("talk.wav") == JobState.DONE)  # type: ignore[attr-defined]
    # A touch is still no edit.
    (h.inbox / "talk.wav").touch()
    settle(h)
    assert h.sent == ["talk.wav", "talk.wav"]  # type: ignore[attr-defined]


def test_without_xattrs_replaced_and_same_stem_files_are_not_quarantined(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_xattrs(monkeypatch)
    shutil.copy(JFK, h.inbox / "memo.flac")
    h.run_until(h.done("memo.flac"))
    shutil.copy(DATA / "zero_shot_prompt.wav", h.inbox / "memo.wav")
    h.run_until(h.done("memo.wav"))
    assert sidecars(h.inbox) == ["memo.srt", "memo.txt", "memo.wav.srt", "memo.wav.txt"]
    # The finished memo.flac replaced by other audio: done again over its own sidecars.
    shutil.copy(DATA / "test_ko.wav", h.inbox / "memo.flac")
    h.run_until(lambda: len(h.sent) == 3 and h.state("memo.flac") == JobState.DONE)  # type: ignore[attr-defined]
    assert h.store.problems() == []


def test_start_warns_when_settle_is_below_the_mount_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from asrd.control import mountcache

    monkeypatch.setattr(mountcache, "mount_of", lambda folder, info=None: mountcache.Mount("/", "fuse.sshfs", {}))
    h = Harness(tmp_path, InlineWorker)  # settle_seconds = 0.3 on an "sshfs" inbox
    with caplog.at_level("WARNING", logger="asrd.daemon"):
        h.daemon.start(h.now())
    h.daemon.stop(h.now())
    h.store.close()
    assert any("fuse.sshfs" in r.getMessage() and "settle_seconds = 0.3" in r.getMessage() for r in caplog.records)
