"""The recognizer boundary: a batch of speech spans in, one result per span out.

Spans in one batch may come from different files; results come back in the same order.
Implementations: ``funasr.FunASRRecognizer`` (the real engine, imported only where the model
runs) and ``fake.FakeRecognizer`` (an in-memory twin for tests: the daemon and worker logic without a model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from asrd.records import Recognized, SpeechSpan


@dataclass(frozen=True)
class RecognizeOptions:
    language: str = "auto"
    itn: bool = True
    hotwords: tuple[str, ...] = ()


class ModelError(Exception):
    """The model cannot be used: missing files, not downloadable, device absent. Says what to do."""


class Recognizer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]: ...

    def close(self) -> None: ...
