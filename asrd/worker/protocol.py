"""The messages between the daemon and the model worker, and what the worker is asked to load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from asrd.recognizer import RecognizeOptions
from asrd.records import Transcript


@dataclass(frozen=True)
class EngineSpec:
    """What the worker loads: a local model directory or a hub id (downloaded by the worker when it is
    not cached yet). ``model_dir`` None means the in-memory fake recognizer (tests)."""

    model_dir: str | None
    hub: str = "ms"
    device: str = "auto"
    threads: int = 0  # 0: the thread plan for the device (model + front end <= CPUs)
    precision: str = "auto"
    funasr_patches: bool = True
    batch_seconds: float = 0
    files_in_flight: int = 0
    vad_engine: str = "webrtc"
    vad_model_dir: str | None = None
    aggressiveness: int = 2
    min_silence_ms: int = 600
    padding_ms: int = 300
    min_speech_ms: int = 150
    max_segment_seconds: float = 30.0
    log_level: str = "info"
    fake_crash_on: str | None = None  # fake only: a file name part that makes the worker die (crash tests)
    stand_in_hub: str | None = None  # tests only: a folder asrd.testing.hub serves hub ids from, slowly


@dataclass(frozen=True)
class Task:
    job_id: int
    path: str
    options: RecognizeOptions


@dataclass(frozen=True)
class Loaded:
    pid: int
    device: str
    load_seconds: float
    capacity: int = 1  # files the worker wants in flight at once, to batch their speech
    patches: tuple[tuple[str, str], ...] = ()  # (name, state) of each FunASR patch (asrd.recognizer.patches)


@dataclass(frozen=True)
class LoadFailed:
    message: str


@dataclass(frozen=True)
class Downloading:
    """The worker is downloading the model before loading it; ``total_bytes`` grows as files start
    (0: not known yet)."""

    done_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class Progress:
    job_id: int
    done: int  # samples
    total: int | None  # samples; None while the file's length is unknown (its header does not say)


@dataclass(frozen=True)
class Done:
    job_id: int
    transcript: Transcript
    seconds: float


@dataclass(frozen=True)
class Failed:
    job_id: int
    kind: str  # "decode" (bad content), "source" (file unreadable/vanished), "model", "error"
    message: str


Message = Loaded | LoadFailed | Downloading | Progress | Done | Failed


class Sender(Protocol):
    """Where the worker's messages go: the pipe to the daemon, or a list in the in-process twin."""

    def send(self, msg: Message) -> None: ...
