from __future__ import annotations

from asrd.control.status import CurrentFile, LiveState


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
