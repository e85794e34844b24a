"""Reading the scheduler's series from a file or an HTTP JSON source, bounded in time and size.

The daemon calls ``load`` on a short-lived helper thread (``asrd.control.schedule``), never on its loop;
``asrd plan`` calls it directly. A bearer token comes from the environment and is never logged; the
URL is logged only as scheme and host.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from asrd.config.schedule import ScheduleSettings
from asrd.energy.signals import SignalError, Slot, parse_series

TIMEOUT = 10.0  # seconds for the whole HTTP answer
MAX_BYTES = 1_000_000  # a series is a few kB; anything far larger is not one


class FeedError(Exception):
    """The source could not be read; the message says which and why (never with a token)."""


def shown(url: str) -> str:
    """SCHEME://HOST of ``url``, for messages."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0].rsplit('@', 1)[-1]}"


def expand(url: str, now: float) -> str:
    return url.replace("{now}", datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%MZ"))


def _read_url(url: str, token: str | None) -> str:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "asrd"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        # A fresh opener per request: urlopen()'s process-wide one keeps the proxy settings of its first call.
        with urllib.request.build_opener().open(request, timeout=TIMEOUT) as answer:
            body: bytes = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise FeedError(f"{shown(url)}: HTTP {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise FeedError(f"{shown(url)}: {reason}") from None
    if len(body) > MAX_BYTES:
        raise FeedError(f"{shown(url)}: the answer is larger than {MAX_BYTES} bytes")
    return body.decode("utf-8", "replace")


def load(settings: ScheduleSettings, now: float) -> list[Slot]:
    """The series the settings name (``signal`` "file" or "url"); FeedError saying why not."""
    if settings.signal == "file":
        assert settings.signal_file is not None
        path = Path(settings.signal_file).expanduser()
        try:
            if path.stat().st_size > MAX_BYTES:
                raise FeedError(f"{path}: larger than {MAX_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise FeedError(f"{path}: {err.strerror or err}") from None
        where = str(path)
    elif settings.signal == "url":
        token = os.environ.get(settings.signal_token_env) if settings.signal_token_env else None
        text = _read_url(expand(settings.signal_url, now), token)
        where = shown(settings.signal_url)
    else:
        return []
    try:
        return parse_series(text)
    except SignalError as err:
        raise FeedError(f"{where}: {err}") from None
