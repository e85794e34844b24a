"""A person's corrections of a transcript: the edited cues checked, rendered into every sidecar format, and
compared with the machine result.

What the browser sends is untrusted: ``parse_cues`` turns it into ``Cue`` records (integer milliseconds in,
16 kHz samples out) or raises ``EditError`` saying which cue is wrong and why. ``render_edited`` writes the
same formats asrd writes (.txt .srt .vtt .json) from the edited cues; the .json keeps the machine's segments
and tokens (what was recognised) next to the edited cues (what is shown), marked ``edited``.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from asrd.output.formats import RENDERERS, render_json
from asrd.records import SAMPLE_RATE, Cue, Recognized, Transcript

MS = SAMPLE_RATE // 1000
MAX_CUES = 20_000  # about 11 hours of 2 s cues; a longer list is refused, not truncated
MAX_TEXT_CHARS = 2_000  # one cue's text
MAX_BODY_BYTES = 8 * 1024 * 1024  # a save request larger than this is refused before it is parsed
MAX_END_MS = 1_000 * 3_600_000  # 1,000 hours: a time past this is a typo, not a recording
END_SLACK_MS = 1_000  # a cue may end this far past the end of the audio (a decoder's length is not exact)


class EditError(ValueError):
    """The edited cues cannot be saved; the message names the cue and the reason (``index``: 0-based, if one)."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class WrittenSidecar:
    """A sidecar as asrd wrote it: ``content`` (the machine's) or only its hash (the person's edit)."""

    fmt: str
    path: Path
    sha256: str
    content: bytes = b""


@dataclass(frozen=True)
class EditRecord:
    """A job's saved corrections (one per job; ``JobStore.edited``).

    ``machine`` holds the latest machine rendering of each sidecar (what "discard my edits" writes back);
    ``written`` the hashes of the edited files asrd wrote for the person (a file that no longer matches was
    changed outside asrd since). ``newer`` is when a machine result newer than the edit arrived (a re-run or
    a changed file), None while the edit is of the current one.
    """

    job_id: int
    cues: tuple[Cue, ...]
    saved: float
    written: tuple[WrittenSidecar, ...]
    machine: tuple[WrittenSidecar, ...]
    newer: float | None = None


def relocated(record: EditRecord, moved: Mapping[Path, Path]) -> EditRecord:
    """The record after its file's sidecars moved (``moved``: old path -> new path) with a renamed file."""
    def follow(sidecars: tuple[WrittenSidecar, ...]) -> tuple[WrittenSidecar, ...]:
        return tuple(replace(w, path=moved.get(w.path, w.path)) for w in sidecars)

    return replace(record, written=follow(record.written), machine=follow(record.machine))


def _clean_text(raw: str) -> str:
    # Lines trimmed, blank lines dropped (a blank line ends an SRT cue early), control characters removed.
    chars = (c for c in raw.replace("\r\n", "\n").replace("\r", "\n")
             if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    lines = (" ".join(line.split()) for line in "".join(chars).split("\n"))
    return "\n".join(line for line in lines if line)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EditError(f"{what} must be a whole number of milliseconds, not {json.dumps(value)[:40]}")
    return value


def parse_cues(doc: Any, duration: int | None = None) -> tuple[Cue, ...]:
    """``{"cues": [{"start_ms": int, "end_ms": int, "text": str}, ...]}`` as cues, or EditError.

    Cues must be in order and must not overlap; each needs text; ``duration`` (samples), where known,
    bounds the last end.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("cues"), list):
        raise EditError('expected a JSON object {"cues": [{"start_ms": ..., "end_ms": ..., "text": ...}, ...]}')
    items = doc["cues"]
    if not items:
        raise EditError("no cues: a transcript needs at least one (discard the edits to go back to the machine's)")
    if len(items) > MAX_CUES:
        raise EditError(f"{len(items)} cues: at most {MAX_CUES} are taken")
    cues: list[Cue] = []
    for n, item in enumerate(items, 1):
        try:
            if not isinstance(item, dict):
                raise EditError(f"cue {n}: expected an object with start_ms, end_ms and text")
            unknown = set(item) - {"start_ms", "end_ms", "text"}
            if unknown:
                raise EditError(f"cue {n}: unknown field(s) {', '.join(sorted(unknown))}")
            start = _int(item.get("start_ms"), f"cue {n}: start_ms")
            end = _int(item.get("end_ms"), f"cue {n}: end_ms")
            raw = item.get("text")
            if not isinstance(raw, str):
                raise EditError(f"cue {n}: text must be a string")
            if len(raw) > MAX_TEXT_CHARS:
                raise EditError(f"cue {n}: {len(raw)} characters of text; at most {MAX_TEXT_CHARS}")
            text = _clean_text(raw)
            if start < 0:
                raise EditError(f"cue {n}: starts before 0 ({start} ms)")
            if end <= start:
                raise EditError(f"cue {n}: ends at {clock(end * MS)}, not after its start {clock(start * MS)}")
            if end > MAX_END_MS:
                raise EditError(f"cue {n}: ends at {end} ms, past any recording")
            if not text:
                raise EditError(f"cue {n}: no text (delete the cue instead)")
            if cues and start * MS < cues[-1].end:
                raise EditError(f"cue {n}: starts at {clock(start * MS)}, before cue {n - 1} ends "
                                f"({clock(cues[-1].end)}): cues must be in order and must not overlap")
            if duration is not None and duration > 0 and end > duration // MS + END_SLACK_MS:
                raise EditError(f"cue {n}: ends at {clock(end * MS)}, after the end of the audio ({clock(duration)})")
            cues.append(Cue(start * MS, end * MS, text))
        except EditError as err:
            raise EditError(str(err), n - 1) from None
    return tuple(cues)


def clock(samples: int) -> str:
    ms = samples // MS
    minutes, ms = divmod(ms, 60_000)
    return f"{minutes}:{ms // 1000:02d}.{ms % 1000:03d}"


def cues_doc(cues: Sequence[Cue]) -> list[dict[str, Any]]:
    """Cues as the API carries them (whole milliseconds)."""
    return [{"start_ms": c.start // MS, "end_ms": c.end // MS, "text": c.text} for c in cues]


# ---------------------------------------------------------------- rendering


def as_transcript(source: Path, cues: Sequence[Cue], duration: int, language: str | None) -> Transcript:
    """The edited cues as a transcript of one segment per cue: what the .txt paragraphs are built from."""
    segs = tuple(Recognized(str(source), i, c.start, c.end, c.text, language) for i, c in enumerate(cues))
    return Transcript(source, max(duration, cues[-1].end if cues else 0), segs)


def _edited_json(machine: bytes | None, transcript: Transcript, cues: Sequence[Cue], saved: str) -> str:
    doc: dict[str, Any] | None = None
    if machine:
        try:
            loaded = json.loads(machine)
            doc = loaded if isinstance(loaded, dict) else None
        except ValueError:
            doc = None
    if doc is None:  # no machine .json to start from: the edited cues are all there is
        doc = json.loads(render_json(transcript, cues))
    doc["cues"] = json.loads(render_json(transcript, cues))["cues"]
    doc["edited"] = {"saved": saved, "by": "a person, in asrd's editor"}
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def render_edited(source: Path, cues: Sequence[Cue], formats: Sequence[str], *, duration: int,
                  language: str | None, machine_json: bytes | None, saved: str) -> dict[str, bytes]:
    """Every format in ``formats`` from the edited cues (``saved``: when, ISO 8601, for the .json)."""
    transcript = as_transcript(source, cues, duration, language)
    out: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "json":
            out[fmt] = _edited_json(machine_json, transcript, cues, saved).encode()
        elif fmt in RENDERERS:
            out[fmt] = RENDERERS[fmt](transcript, cues).encode()
        else:
            raise EditError(f"cannot write .{fmt} sidecars")
    return out


def machine_facts(machine: Mapping[str, bytes]) -> tuple[int, str | None]:
    """The duration (samples) and language of the machine .json, where there is one."""
    try:
        doc = json.loads(machine["json"])
        return round(float(doc.get("duration") or 0) * SAMPLE_RATE), doc.get("language") or None
    except (KeyError, ValueError, TypeError, AttributeError):
        return 0, None


_TIME = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})")


def _ms(h: str | None, m: str, s: str, f: str) -> int:
    return ((int(h or 0) * 60 + int(m)) * 60 + int(s)) * 1000 + int(f)


def _subtitle_cues(text: str) -> tuple[Cue, ...]:
    """The cues of an .srt or .vtt asrd wrote (a timing line, then the text lines up to a blank line)."""
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        m = _TIME.match(line)
        if m is None:
            continue
        body = list(itertools.takewhile(lambda x: x.strip() != "", lines[i + 1:]))
        cues.append(Cue(_ms(*m.group(1, 2, 3, 4)) * MS, _ms(*m.group(5, 6, 7, 8)) * MS, "\n".join(body)))
    return tuple(cues)


def machine_cues(machine: Mapping[str, bytes]) -> tuple[Cue, ...] | None:
    """The cues of the machine result kept in an edit record: from its .json, else its .srt or .vtt.

    None when there is none of those (a .txt has no times) or it cannot be read.
    """
    try:
        if "json" in machine:
            doc = json.loads(machine["json"])
            return tuple(Cue(round(float(c["start"]) * SAMPLE_RATE), round(float(c["end"]) * SAMPLE_RATE),
                             str(c["text"])) for c in doc.get("cues") or [])
        for fmt in ("srt", "vtt"):
            if fmt in machine:
                return _subtitle_cues(machine[fmt].decode("utf-8"))
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return None


# ---------------------------------------------------------------- comparing


@dataclass(frozen=True)
class DiffRow:
    """One step from the machine's cues to the edited ones: ``equal`` (same text; ``retimed`` when the
    times moved), ``changed``, ``added`` or ``removed``."""

    op: str
    machine: tuple[Cue, ...]
    edited: tuple[Cue, ...]
    retimed: bool = False


def diff(machine: Sequence[Cue], edited: Sequence[Cue]) -> list[DiffRow]:
    """Per cue: which machine cues became which edited ones (text compared; split and merge show as changed)."""
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, [c.text for c in machine], [c.text for c in edited], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for a, b in zip(machine[a0:a1], edited[b0:b1], strict=True):
                rows.append(DiffRow("equal", (a,), (b,), (a.start, a.end) != (b.start, b.end)))
        else:
            kind = {"replace": "changed", "delete": "removed", "insert": "added"}[op]
            rows.append(DiffRow(kind, tuple(machine[a0:a1]), tuple(edited[b0:b1])))
    return rows
