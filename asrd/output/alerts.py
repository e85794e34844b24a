"""Keyword alerts: words, phrases or ``re:`` patterns found in a transcript, with the times of their cues.

Matching ignores case and width (NFKC, then casefold: "ＲＥＦＵＮＤ" finds "refund", "退款" finds "退款"), and
spacing between CJK characters (a recogniser may put spaces inside "投 诉"). A word in a spaced script
matches whole words only ("cancel" does not fire on "cancellation"); CJK words match anywhere, as the script
has no spaces to mark word edges. A phrase may run across two cues.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.output.cues import build_cues
from asrd.output.text import is_cjk, join_text, paragraphs
from asrd.output.textguard import clean, strip_tags
from asrd.records import Cue, Transcript

REGEX_PREFIX = "re:"
MAX_MATCHES = 100  # per file: a word said every few seconds must not flood a notification
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class AlertMatch:
    """One place an alert matched: the alert as configured, the cues' span (samples) and their text."""

    alert: str
    start: int
    end: int
    excerpt: str


_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The form alerts are matched in: NFKC, casefolded, single spaces, none between two CJK characters."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return "".join(
        c for i, c in enumerate(text)
        if not (c == " " and 0 < i < len(text) - 1 and is_cjk(text[i - 1]) and is_cjk(text[i + 1]))
    )


def _wordy(char: str) -> bool:
    # A letter or digit of a spaced script: one that continues a word.
    return char.isalnum() and not is_cjk(char)


class _Alert:
    def __init__(self, alert: str) -> None:
        self.alert = alert
        if alert.startswith(REGEX_PREFIX):
            self.pattern = re.compile(alert[len(REGEX_PREFIX):], re.IGNORECASE)
        else:
            self.pattern = re.compile(re.escape(normalize(alert)))

    def spans(self, text: str) -> list[tuple[int, int]]:
        found = []
        for m in self.pattern.finditer(text):
            if m.end() > m.start():
                # Word edges by hand: \b counts CJK as word characters, so "退款refund了" would not find "refund".
                if not self.alert.startswith(REGEX_PREFIX) and not self._edges_ok(text, m.start(), m.end()):
                    continue
                found.append((m.start(), m.end()))
        return found

    def _edges_ok(self, text: str, start: int, end: int) -> bool:
        before = text[start - 1] if start > 0 else ""
        after = text[end] if end < len(text) else ""
        first, last = text[start], text[end - 1]
        return not (_wordy(first) and before and _wordy(before)) and not (_wordy(last) and after and _wordy(after))


def alerts_in_cues(cues: Sequence[Cue], alerts: Sequence[str]) -> tuple[AlertMatch, ...]:
    """Every match of every alert in the cues' text, in time order (at most ``MAX_MATCHES``)."""
    if not alerts or not cues:
        return ()
    texts = [strip_tags(c.text) for c in cues]
    joined = ""
    starts: list[int] = []  # where each cue's text begins in ``joined``
    for text in texts:
        piece = normalize(text)
        before = len(joined)
        joined = join_text(joined, piece) if joined else piece
        starts.append(len(joined) - len(piece) if len(joined) > before else before)
    found: list[AlertMatch] = []
    for alert in dict.fromkeys(alerts):
        seen: set[tuple[int, int]] = set()
        for start, end in _Alert(alert).spans(joined):
            first = _cue_at(starts, start)
            last = _cue_at(starts, end - 1)
            if (first, last) in seen:  # one match per alert and cue: "re:refund|money" said twice in a line is one
                continue
            seen.add((first, last))
            excerpt = ""
            for text in texts[first:last + 1]:
                excerpt = join_text(excerpt, text) if excerpt else text
            found.append(AlertMatch(alert, cues[first].start, cues[last].end, _shorten(excerpt)))
    found.sort(key=lambda m: (m.start, m.alert))
    return tuple(found[:MAX_MATCHES])


def _cue_at(starts: list[int], offset: int) -> int:
    index = 0
    for i, start in enumerate(starts):
        if start <= offset:
            index = i
    return index


def _shorten(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def find_alerts(
    transcript: Transcript, alerts: Sequence[str], rules: CueRules = DEFAULT_RULES
) -> tuple[AlertMatch, ...]:
    """Alerts in a transcript, on the cues its subtitles show (after the text guards)."""
    if not alerts:
        return ()
    return alerts_in_cues(build_cues(clean(transcript), rules), alerts)


def excerpt(transcript: Transcript, chars: int = EXCERPT_CHARS) -> str:
    """The start of a transcript's text, for notifications and reports."""
    text = " ".join(strip_tags(p) for p in paragraphs(clean(transcript)))
    return text if len(text) <= chars else text[: chars - 1] + "…"
