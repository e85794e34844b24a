"""The recognizer boundary: a batch of speech spans in, one result per span out.

Spans in one batch may come from different files; results come back in the same order.
Implementations: ``funasr.FunASRRecognizer`` (the real engine, imported only where the model
runs; ``funasr_output`` reads what it returns) and ``fake.FakeRecognizer`` (an in-memory twin for
tests: the daemon and worker logic without a model).
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


PATCH_ACTIVE = "active"
PATCH_UNUSED = "unused"  # nothing to patch in this model, device or precision


def describe_patches(states: Sequence[Sequence[str]]) -> str:
    """One line for ``asrd status`` and ``asrd model check`` from (name, state) pairs (patches.py):
    a state is "active", "unused" or why the patch is off."""
    used = [(name, state) for name, state in states if state != PATCH_UNUSED]
    active = sum(state == PATCH_ACTIVE for _, state in used)
    off: dict[str, list[str]] = {}
    for name, state in used:
        if state != PATCH_ACTIVE:
            off.setdefault(state, []).append(name)
    line = f"{active} of {len(used)} active"
    if off:
        line += "; off: " + "; ".join(f"{', '.join(names)} ({why})" for why, names in off.items())
    if len(used) < len(states):
        line += f"; {len(states) - len(used)} not used by this model/device/precision"
    return line


class ModelError(Exception):
    """The model cannot be used: missing files, not downloadable, device absent. Says what to do."""


class Recognizer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def device(self) -> str: ...

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]: ...

    def close(self) -> None: ...
