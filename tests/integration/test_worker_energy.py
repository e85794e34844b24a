"""A real worker process meters itself: every Done carries the file's energy with its method, and asked
to exit it sends its session's energy last, which the handle keeps."""

from __future__ import annotations

import time
from pathlib import Path

from asrd.energy.records import METHODS
from asrd.recognizer import RecognizeOptions
from asrd.worker.handle import WorkerHandle
from asrd.worker.protocol import Done, EngineSpec, Message, Stopped, Task

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"


def test_done_carries_energy_and_stop_returns_the_session() -> None:
    worker = WorkerHandle(EngineSpec(model_dir=None))
    seen: list[Message] = []
    try:
        worker.send(Task(1, str(JFK), RecognizeOptions()))
        end = time.monotonic() + 60
        while not any(isinstance(m, Done) for m in seen) and time.monotonic() < end:
            seen += worker.poll(0.5)
    finally:
        assert worker.stop()
    done = next(m for m in seen if isinstance(m, Done))
    assert done.energy is not None and done.energy.method in METHODS
    assert done.energy.total_uj > 0  # decoding and VAD took CPU time, whatever the meter
    (stopped,) = [m for m in worker.final if isinstance(m, Stopped)]
    assert stopped.energy.method == done.energy.method
    assert stopped.energy.total_uj >= done.energy.total_uj
