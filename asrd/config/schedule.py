"""The ``[schedule]`` section: quiet hours, which files wait for a cheap or green window, and where the
price or carbon series comes from (asrd/control/schedule.py applies it; README, "Scheduling")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

_SPAN_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _split(value: object) -> object:
    if isinstance(value, str):  # an environment variable: "22:30-07:00,12:00-13:00"
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quiet_hours: Annotated[tuple[str, ...], NoDecode] = ()
    """Local-time spans ("22:30-07:00") when no GPU worker is started and a loaded one ends once its files
    are done. Backlog never runs then; short new files follow ``quiet_mode``."""
    quiet_mode: Literal["cpu", "wait"] = "cpu"
    """During quiet hours: "cpu" = short new files still run, on a CPU worker with ``quiet_threads``
    threads; "wait" = every file waits until the quiet hours end."""
    quiet_threads: int = Field(1, ge=1)
    """CPU threads of the quiet-hours worker."""
    now_max_mb: float = Field(25.0, ge=0)
    """New files up to this size (MB), arriving one by one, are transcribed on arrival. Larger files,
    files found by a scan (start-up, rescans) and folders or bursts of more than ``bulk_files`` files
    are backlog: they wait for the window chosen from ``signal``."""
    bulk_files: int = Field(20, ge=1)
    """More files than this settling at once (a folder copied in) are backlog."""
    max_delay_hours: float = Field(24.0, gt=0)
    """Deadline: backlog is done within this many hours of its arrival, whatever the signal says."""
    signal: Literal["none", "hours", "file", "url"] = "none"
    """Where windows come from: "none" = no backlog waiting (everything runs at once, quiet hours
    still apply); "hours" = ``prefer_hours``; "file" = ``signal_file``; "url" = ``signal_url``."""
    signal_kind: Literal["price", "carbon"] = "price"
    """What the series is (how reports and ``asrd plan`` name its values); lower is better either way."""
    signal_file: Path | None = None
    """signal = "file": a series in a known shape (JSON ``[{start, end, value}]``, CSV
    ``start,end,value``, or a saved answer of a supported API); re-read when it changes."""
    signal_url: str = ""
    """signal = "url": an HTTP(S) JSON series (``[{start, end, value}]``, Home Assistant / evcc, UK Carbon
    Intensity, Octopus Agile, Carbon Aware SDK, Energy-Charts). ``{now}`` becomes the current UTC time
    (2026-01-31T22:00Z). Fetched on a helper thread, 10 s timeout, 1 MB cap; the last answer is kept in
    the state directory."""
    signal_token_env: str = ""
    """Name of an environment variable holding a bearer token for ``signal_url`` (never logged); "" = none."""
    refresh_minutes: int = Field(60, ge=1)
    """How often the file or URL is read again (and the plan made again)."""
    prefer_hours: Annotated[tuple[str, ...], NoDecode] = ()
    """Local-time spans that count as cheap for signal = "hours", and the fallback when a file or URL gives no
    usable series. With no series and none of these, backlog runs at once (fail open)."""

    _lists = field_validator("quiet_hours", "prefer_hours", mode="before")(_split)

    @field_validator("quiet_hours", "prefer_hours")
    @classmethod
    def _spans(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for span in value:
            m = _SPAN_RE.match(span)
            if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
                raise ValueError(f'{span!r}: must be a local-time span HH:MM-HH:MM, e.g. "22:30-07:00"')
            if int(m[1]) * 60 + int(m[2]) == int(m[3]) * 60 + int(m[4]):
                raise ValueError(f"{span!r}: starts and ends at the same time")
        return value

    @model_validator(mode="after")
    def _source(self) -> ScheduleSettings:
        if self.signal == "file" and self.signal_file is None:
            raise ValueError('signal = "file" needs signal_file')
        if self.signal == "url" and not self.signal_url.lower().startswith(("http://", "https://")):
            raise ValueError('signal = "url" needs an http(s):// signal_url')
        if self.signal == "hours" and not self.prefer_hours:
            raise ValueError('signal = "hours" needs prefer_hours')
        return self

    @property
    def active(self) -> bool:
        """Anything to schedule at all (else every file runs at once, as without this section)."""
        return self.signal != "none" or bool(self.quiet_hours)


def span_minutes(span: str) -> tuple[int, int]:
    """("22:30-07:00") -> (1350, 420): start and end in minutes after local midnight."""
    m = _SPAN_RE.match(span)
    if m is None:
        raise ValueError(f"not a span: {span!r}")
    return int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
