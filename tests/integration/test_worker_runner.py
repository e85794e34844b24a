"""The worker's task loop (``worker.main._Runner``) on the real engine: a fault no single file can be
blamed for fails the files in flight, with their kinds, and the worker takes new tasks afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

import asrd.worker.engine
from asrd.recognizer import RecognizeOptions
from asrd.worker.main import _build, _Runner
from asrd.worker.protocol import Done, EngineSpec, Failed, FailureKind, Message, Task

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


class Box:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, msg: Message) -> None:
        self.messages.append(msg)


def test_an_engine_fault_fails_the_files_in_flight_and_the_runner_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = EngineSpec(model_dir=None)
    box = Box()
    _, engine = _build(spec, box)
    runner = _Runner(box, engine, spec)
    empty = tmp_path / "empty.wav"
    empty.touch()
    runner.submit(Task(1, str(JFK), RecognizeOptions()))
    runner.submit(Task(2, str(tmp_path / "copy.flac"), RecognizeOptions()))  # does not exist
    runner.submit(Task(3, str(empty), RecognizeOptions()))
    assert [(m.job_id, m.kind) for m in box.messages if isinstance(m, Failed)] == [
        (2, FailureKind.SOURCE), (3, FailureKind.NOT_AUDIO)
    ]
    box.messages.clear()

    def broken(*args: object) -> object:
        raise RuntimeError("batch picking broke")

    monkeypatch.setattr(asrd.worker.engine, "pick", broken)
    runner.step()
    assert [(m.job_id, m.kind) for m in box.messages] == [(1, FailureKind.ERROR)]
    assert engine.in_flight == 0
    monkeypatch.undo()
    box.messages.clear()
    runner.submit(Task(4, str(JFK), RecognizeOptions()))
    while engine.in_flight:
        runner.step()
    assert [m.job_id for m in box.messages if isinstance(m, Done)] == [4]
    engine.close()
