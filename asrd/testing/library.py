"""Finished transcripts for tests, demos and the search benchmark: real sidecars from asrd's own writers,
a done job in any ``JobStore``, and its library rows, without running a model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asrd.control.fingerprint import Fingerprint, fingerprint
from asrd.control.jobs import Job, JobStore
from asrd.control.library import index_transcript
from asrd.output.cuerules import DEFAULT_RULES
from asrd.output.formats import render
from asrd.records import SAMPLE_RATE, Recognized, Token, Transcript


def _tokens(text: str, start: int, end: int) -> tuple[Token, ...]:
    parts = text.split() if " " in text else list(text)
    step = (end - start) // max(1, len(parts))
    return tuple(Token(p, start + i * step, start + (i + 1) * step) for i, p in enumerate(parts))


def transcript(source: Path, spans: Sequence[tuple[float, float, str]], *, language: str = "zh",
               emotion: str | None = None, events: tuple[str, ...] = (), tokens: bool = False,
               duration: float | None = None) -> Transcript:
    """A transcript of ``spans`` (start s, end s, text); tokens spread evenly over each span when asked."""
    segs = []
    for i, (a, b, text) in enumerate(spans):
        start, end = round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)
        segs.append(Recognized(str(source), i, start, end, text, language, emotion, events,
                               _tokens(text, start, end) if tokens else ()))
    total = round((duration if duration is not None else (spans[-1][1] if spans else 0)) * SAMPLE_RATE)
    return Transcript(source, total, tuple(segs))


def finished(store: JobStore, source: Path, inbox: str, spans: Sequence[tuple[float, float, str]], *,
             now: float = 0.0, formats: Sequence[str] = ("txt", "srt", "vtt", "json"), write: bool = True,
             **kw: object) -> Job:
    """A done job for ``source`` with its sidecars written next to it (``write``) and its cues indexed."""
    t = transcript(source, spans, **kw)  # type: ignore[arg-type]
    sidecars: list[Path] = []
    if write:
        for fmt, content in render(t, formats).items():
            path = source.with_suffix("." + fmt)
            path.write_bytes(content)
            sidecars.append(path)
    fp = fingerprint(source) if source.exists() else Fingerprint(1, abs(hash(source)), 1, 1, str(source))
    job = store.offer(source, inbox, fp, now)
    assert job is not None, f"{source} is already a job"
    store.claim(now + 1e9, 10**6)  # a test store holds only finished jobs: claim whatever is due
    done = store.complete(job.id, now, sidecars)
    index_transcript(store, job.id, inbox, source, now, t, DEFAULT_RULES)
    return done
