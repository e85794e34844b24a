"""The API inbox: where files sent to the HTTP transcription endpoints (``[api]``) become durable jobs.

An upload is streamed by the web thread into ``state_dir/api-inbox/`` (under a temp name, then renamed),
with the request's options in ``<file>.request.json`` beside it. An ``enqueue`` action makes it a job at
once on the daemon loop; the folder is also an ordinary inbox, so a file whose action never ran (a crash
in between) is found by the next scan. Its sidecars go to the private ``state_dir/api-out/``, in every
format, so any answer format can be served from them. Imports nothing but the daemon side.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from asrd.config import InboxSettings, Settings
from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import JobStore
from asrd.media import SIDECAR_FORMATS, TEMP_PREFIX
from asrd.recognizer import RecognizeOptions

log = logging.getLogger("asrd.api")

INBOX_NAME = "api-inbox"
OUTPUT_NAME = "api-out"
REQUEST_SUFFIX = ".request.json"
STALE_UPLOAD_SECONDS = 3600.0  # a temp upload untouched this long was abandoned


def enabled(settings: Settings) -> bool:
    return settings.web.enabled and (settings.api.asr or settings.api.openai)


def inbox_dir(settings: Settings) -> Path:
    return settings.daemon.state_dir.expanduser().resolve() / INBOX_NAME


def output_dir(settings: Settings) -> Path:
    return settings.daemon.state_dir.expanduser().resolve() / OUTPUT_NAME


def api_inbox(settings: Settings) -> InboxSettings:
    """The API inbox as an inbox: not recursive, any name (uploads keep no trustworthy extension),
    every sidecar format into the private output folder. Both folders are created (mode 0700)."""
    for folder in (inbox_dir(settings), output_dir(settings)):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return InboxSettings(
        path=inbox_dir(settings), recursive=False, include=("*",), exclude=("*" + REQUEST_SUFFIX,),
        formats=SIDECAR_FORMATS, naming="{stem}.{ext}", output_dir=output_dir(settings), settle_seconds=2.0,
        watch="native",
    )


@dataclass(frozen=True)
class ApiRequest:
    """What a request asked for, kept beside its upload so a restart still knows it."""

    api: str  # "asr" or "openai"
    filename: str  # the name the client gave (for answers), never used as a path
    language: str = "auto"
    hotwords: tuple[str, ...] = ()
    created: float = 0.0

    def save(self, upload: Path) -> None:
        tmp = upload.with_name(TEMP_PREFIX + upload.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, request_path(upload))

    @classmethod
    def load(cls, upload: Path) -> ApiRequest | None:
        try:
            doc = json.loads(request_path(upload).read_text(encoding="utf-8"))
            return cls(doc["api"], doc["filename"], doc.get("language", "auto"), tuple(doc.get("hotwords", ())),
                       float(doc.get("created", 0.0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def request_path(upload: Path) -> Path:
    return upload.with_name(upload.name + REQUEST_SUFFIX)


def options_for(base: RecognizeOptions, upload: Path) -> RecognizeOptions:
    """The recognizer options of one upload: the request's language and hotwords over the defaults."""
    request = ApiRequest.load(upload)
    if request is None:
        return base
    return RecognizeOptions(
        language=request.language, itn=base.itn, hotwords=request.hotwords or base.hotwords,
    )


def enqueue(store: JobStore, upload: Path, now: float) -> int:
    """Make a complete upload a job now (on the daemon loop); its job id. A known file keeps its job."""
    key = str(upload.parent)
    job = store.offer(upload, key, fingerprint(upload), now)
    if job is None:
        job = store.get(upload)
        if job is None:
            raise ValueError(f"{upload.name} could not be queued")
    else:
        log.info("queued %s (API upload)", upload)
    return job.id


def expire(settings: Settings, now: float | None = None) -> int:
    """Delete uploads, their requests and their sidecars older than ``[api] keep_hours``; the number of
    uploads removed. Called when an upload arrives (no timer wakes the daemon for it)."""
    keep = settings.api.keep_hours * 3600
    if keep <= 0:
        return 0
    cutoff = (time.time() if now is None else now) - keep
    removed = 0
    out = output_dir(settings)
    try:
        entries = list(os.scandir(inbox_dir(settings)))
    except OSError:
        return 0
    for entry in entries:
        try:
            mtime = entry.stat(follow_symlinks=False).st_mtime
            path = Path(entry.path)
            if entry.name.startswith(TEMP_PREFIX):  # an upload cut off mid-way (uploads write all the time)
                if mtime < cutoff or mtime < (time.time() if now is None else now) - STALE_UPLOAD_SECONDS:
                    path.unlink()
                continue
            if mtime >= cutoff:
                continue
            if entry.name.endswith(REQUEST_SUFFIX) and path.with_name(entry.name[: -len(REQUEST_SUFFIX)]).exists():
                continue  # removed with its upload
            path.unlink()
            request_path(path).unlink(missing_ok=True)
            for fmt in SIDECAR_FORMATS:
                (out / f"{path.stem}.{fmt}").unlink(missing_ok=True)
            removed += 1
        except OSError as err:
            log.warning("cannot remove the old upload %s: %s", entry.path, err.strerror or err)
    return removed
