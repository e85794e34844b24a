"""Upload and record into an inbox: ``POST /api/upload?inbox=NAME`` and the page with the drop zone.

The request body is read chunk by chunk (``request.stream()``) into ``uploads.Receiver``; Starlette's own
``request.form()`` is not used because it spools every file to a temporary file elsewhere first.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asrd.config import LANGUAGES
from asrd.control.actions import Action, ActionKind, ActionRefused
from asrd.control.runoptions import RunOptions, takes_hotwords
from asrd.media import MEDIA_EXTENSIONS, SIDECAR_FORMATS
from asrd.web.api import ACTION_SECONDS
from asrd.web.pages import page
from asrd.web.port import DaemonPort
from asrd.web.uploads import Receiver, Stored, Target, UploadRefused, check_room, disk_free, find_inbox, inbox_label

log = logging.getLogger("asrd.web")


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise UploadRefused(400, "Content-Length is not a number")
    return int(raw)


def run_options(request: Request) -> RunOptions | None:
    """``language``, ``itn``, ``hotwords`` and ``formats`` from the query string, for these files only."""
    given: dict[str, Any] = {}
    q = request.query_params
    if q.get("language"):
        given["language"] = q["language"]
    if q.get("itn"):
        given["itn"] = q["itn"]
    if "hotwords" in q:
        given["hotwords"] = tuple(w.strip() for w in q["hotwords"].replace("\n", ",").split(",") if w.strip())
    if q.get("formats"):
        given["formats"] = tuple(f.strip() for f in q["formats"].split(",") if f.strip())
    if not given:
        return None
    try:
        return RunOptions.model_validate(given)
    except ValidationError as err:
        first = err.errors()[0]
        raise UploadRefused(400, f"{first['loc'][0]}: {first['msg']}") from None


async def upload(request: Request) -> Response:
    """Store the files of a multipart body in an inbox: 201 with each stored name and its job id."""
    port = _port(request)
    web = port.settings.web
    limit = web.upload_max_mb * 2**20
    free_bytes = getattr(request.app.state, "free_bytes", disk_free)  # a seam: tests fill the disk
    receiver: Receiver | None = None
    try:
        target = find_inbox(port.settings, request.query_params.get("inbox", ""))
        options = run_options(request)
        check_room(target, _length(request), limit, free_bytes)
        receiver = Receiver(request.headers.get("content-type", ""), target, limit)
        async for chunk in request.stream():
            if chunk:
                receiver.feed(chunk)
        stored = receiver.finish(options)
    except UploadRefused as err:
        log.info("upload refused: %s", err)
        return JSONResponse({"error": str(err)}, err.status)
    except ClientDisconnect:
        log.info("upload into inbox %s interrupted by the client: nothing kept", request.query_params.get("inbox"))
        return Response(status_code=400)
    except OSError as err:
        if err.errno == 28:  # ENOSPC: the disk filled up while writing (the check before was not enough)
            return JSONResponse({"error": "the inbox's disk is full; nothing was kept"}, 507)
        log.warning("upload failed: %s", err)
        return JSONResponse({"error": f"could not store the upload: {err.strerror or err}"}, 500)
    finally:  # also on a cancel (the server stopping): temp files never outlive the request
        if receiver is not None:
            receiver.discard()
    files = [await _queued(port, target, s) for s in stored]
    return JSONResponse({"inbox": target.name, "files": files}, 201)


async def _queued(port: DaemonPort, target: Target, stored: Stored) -> dict[str, Any]:
    """Hand the stored file to the daemon loop, which queues it at once (it is complete: no settling)."""
    job_id = None
    try:
        outcome = await asyncio.wait_for(asyncio.wrap_future(port.submit(
            Action(ActionKind.ENQUEUE, path=stored.path, who="upload"))), ACTION_SECONDS)
        job_id = int(outcome)
    except (ActionRefused, asyncio.TimeoutError) as err:  # the watcher will still find it
        log.info("%s stored, not yet queued: %s", stored.path.name, err or "the daemon is busy")
    return {"name": stored.sent_name, "stored": stored.path.name, "size": stored.size, "job_id": job_id}


async def upload_page(request: Request) -> Response:
    settings = _port(request).settings
    names = [inbox_label(i) for i in settings.inbox]
    return page(request, "upload.html", inboxes=names, limit_mb=settings.web.upload_max_mb,
                chosen=request.query_params.get("inbox") or (names[0] if names else ""),
                extensions=" ".join(sorted(MEDIA_EXTENSIONS)), languages=LANGUAGES, formats=SIDECAR_FORMATS,
                model=Path(settings.model.name).name, hotwords=takes_hotwords(settings.model.name))


ROUTES = [
    Route("/api/upload", upload, methods=["POST"]),
    Route("/upload", upload_page),
]
