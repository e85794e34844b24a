from __future__ import annotations

from dataclasses import asdict

from asrd.control.status import CurrentFile, LiveState, render


def state(*current: CurrentFile, loaded: bool = True) -> LiveState:
    return LiveState(pid=1, version="x", started=0.0, phase="running", model_loaded=loaded, current=current)


def test_one_file_in_flight() -> None:
    assert state(CurrentFile("/in/talk.ogg", 45, 100)).line(3) == "transcribing talk.ogg 45%, 3 queued"


def test_several_files_batched_together() -> None:
    files = (CurrentFile("/in/a.m4a", 1, 10), CurrentFile("/in/b.m4a", 5, 10), CurrentFile("/in/c.m4a", 0, 9))
    line = state(*files).line(0)
    assert line == "transcribing a.m4a 10% and 2 more, 0 queued"


def test_idle() -> None:
    assert state(loaded=False).line(0) == "idle, model unloaded, 0 queued"


def test_length_not_known_yet() -> None:
    # A browser's WebM states no duration: how far it has got, not a percentage of nothing.
    webm = CurrentFile("/in/rec.webm", 192.4, None)
    assert state(webm).line(0) == "transcribing rec.webm 3:12 transcribed, 0 queued"
    doc = {"running": True, "pid": 9, "daemon": asdict(state(webm, CurrentFile("/in/talk.ogg", 45, 100), loaded=False)),
           "queue": None}
    lines = render(doc).splitlines()
    assert "now: /in/rec.webm 3:12 transcribed" in lines
    assert "now: /in/talk.ogg 45% (45 of 100 s)" in lines
