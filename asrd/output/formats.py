"""Rendering a transcript and its cues as .txt, .srt, .vtt and .json."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from asrd.output.alerts import AlertMatch
from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.output.cues import build_cues
from asrd.output.text import paragraphs
from asrd.output.textguard import clean, strip_tags
from asrd.records import SAMPLE_RATE, Cue, Transcript


def _clock(samples: int, sep: str) -> str:
    ms = samples * 1000 // SAMPLE_RATE
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{ms:03d}"


def render_txt(transcript: Transcript, cues: Sequence[Cue]) -> str:
    return "".join(strip_tags(p) + "\n\n" for p in paragraphs(transcript)).rstrip("\n") + "\n"


def render_srt(transcript: Transcript, cues: Sequence[Cue]) -> str:
    blocks = [
        f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{strip_tags(c.text)}\n" for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def render_vtt(transcript: Transcript, cues: Sequence[Cue]) -> str:
    # "-->" may not appear in a cue payload; a blank line would end the cue early.
    blocks = [
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{strip_tags(c.text).replace('-->', '->')}\n" for c in cues
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def render_json(
    transcript: Transcript, cues: Sequence[Cue], alerts: Sequence[AlertMatch] = (),
    processing: Mapping[str, object] | None = None,
) -> str:
    doc: dict[str, object] = {
        "source": transcript.source.name,
        "duration": _seconds(transcript.duration),
        "language": transcript.language,
        "segments": [
            {
                "start": _seconds(s.start),
                "end": _seconds(s.end),
                "text": s.text,
                "language": s.language,
                "emotion": s.emotion,
                "events": list(s.events),
                "tokens": [
                    {"text": t.text, "start": _seconds(t.start), "end": _seconds(t.end)} for t in s.tokens
                ],
            }
            for s in transcript.segments
        ],
        "cues": [
            {
                "start": _seconds(c.start),
                "end": _seconds(c.end),
                "text": c.text,
                "speech_start": _seconds(c.speech_start if c.speech_start is not None else c.start),
                "speech_end": _seconds(c.speech_end if c.speech_end is not None else c.end),
            }
            for c in cues
        ],
    }
    if alerts:  # keyword alerts ([transcribe] / [[inbox]] alerts) with the span of the cues they were said in
        doc["alerts"] = [
            {"alert": a.alert, "start": _seconds(a.start), "end": _seconds(a.end), "excerpt": a.excerpt}
            for a in alerts
        ]
    if processing is not None:  # how it was made: device, seconds, energy ([energy] in_sidecar)
        doc["processing"] = dict(processing)
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


RENDERERS: dict[str, Callable[[Transcript, Sequence[Cue]], str]] = {
    "txt": render_txt, "srt": render_srt, "vtt": render_vtt, "json": render_json,
}  # fmt: skip


def render(
    transcript: Transcript, formats: Sequence[str], rules: CueRules = DEFAULT_RULES, alerts: Sequence[AlertMatch] = (),
    processing: Mapping[str, object] | None = None,
) -> dict[str, bytes]:
    """Every requested format of one transcript, after the text guards (``cleanup``); ``alerts`` and
    ``processing`` go into .json only."""
    transcript = clean(transcript)
    cues = build_cues(transcript, rules)
    return {
        fmt: (render_json(transcript, cues, alerts, processing) if fmt == "json" else RENDERERS[fmt](transcript, cues))
        .encode()
        for fmt in formats
    }
