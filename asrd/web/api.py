"""The JSON API: status, paged job queries, a job's media (with Range), actions, and the event stream."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import stat
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asrd.control.actions import Action, ActionKind, ActionRefused
from asrd.control.jobs import JobQuery, JobState
from asrd.web.hub import Hub
from asrd.web.port import DaemonPort
from asrd.web.views import MAX_PER_PAGE, PER_PAGE, job_doc, snapshot_doc, status_doc

ACTION_SECONDS = 10.0  # how long a request waits for the daemon loop to answer an action


class BadRequest(Exception):
    pass


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return value


def flag(request: Request, name: str) -> bool:
    """A yes/no query parameter: 1, true, yes or on (a checked checkbox) is yes; absent or empty is no."""
    raw = request.query_params.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise BadRequest(f"{name} must be 1 or 0, not {raw!r}")


def job_query(request: Request) -> tuple[JobQuery, int, int]:
    """The query string of /api/jobs and /files as a ``JobQuery``, with the page and page size."""
    states: list[JobState] = []
    for raw in request.query_params.getlist("state"):
        for part in filter(None, raw.split(",")):
            if part == "problem":
                continue
            try:
                states.append(JobState(part))
            except ValueError:
                known = ", ".join(s.value for s in JobState)
                raise BadRequest(f"unknown state {part!r}; one of {known}, problem") from None
    problems = "problem" in ",".join(request.query_params.getlist("state")).split(",")
    page = _int(request, "page", 1, 1, 10**9)
    per_page = _int(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    query = JobQuery(
        states=tuple(states), name=request.query_params.get("q", "").strip(),
        reason=request.query_params.get("reason", "").strip(), problems=problems, alerts=flag(request, "alerts"),
        limit=per_page, offset=(page - 1) * per_page,
    )
    return query, page, per_page


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


async def status(request: Request) -> Response:
    return JSONResponse(status_doc(_port(request)))


async def jobs(request: Request) -> Response:
    try:
        query, page, per_page = job_query(request)
    except BadRequest as err:
        return JSONResponse({"error": str(err)}, 400)
    port = _port(request)
    found = port.jobs.search(query)
    snap = port.snapshot()
    return JSONResponse({
        "jobs": [job_doc(j, snap) for j in found.jobs], "total": found.total, "page": page, "per_page": per_page,
        "pages": max(1, -(-found.total // per_page)),
    })


async def job(request: Request) -> Response:
    port = _port(request)
    found = port.jobs.by_id(request.path_params["job_id"])
    if found is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    return JSONResponse(job_doc(found, port.snapshot()))


# Types browsers need to play what mimetypes does not know (or names differently) on a bare system.
_MEDIA_TYPES = {".opus": "audio/ogg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".m4a": "audio/mp4",
                ".flac": "audio/flac", ".wav": "audio/wav", ".webm": "video/webm", ".mkv": "video/x-matroska"}


async def media(request: Request) -> Response:
    """The original file of a job, by id only (no client path ever reaches the file system), with Range."""
    port = _port(request)
    found = port.jobs.by_id(request.path_params["job_id"])
    if found is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    try:
        st = os.lstat(found.path)
    except OSError:
        return JSONResponse({"error": f"{found.path.name} is no longer there"}, 410)
    if not stat.S_ISREG(st.st_mode):  # a symlink or a device put where the file was: not served
        return JSONResponse({"error": f"{found.path.name} is not a regular file"}, 410)
    suffix = found.path.suffix.lower()
    kind = _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(found.path.name)[0] or "application/octet-stream"
    return FileResponse(found.path, media_type=kind, stat_result=st, content_disposition_type="inline",
                        filename=found.path.name)


async def act(request: Request, action: Action) -> Response:
    """Queue ``action`` to the daemon loop and wait for its answer."""
    port = _port(request)
    htmx = request.headers.get("hx-request") == "true"
    try:
        outcome = await asyncio.wait_for(asyncio.wrap_future(port.submit(action)), ACTION_SECONDS)
    except ActionRefused as err:
        return _answer(htmx, 409, {"ok": False, "error": str(err)})
    except asyncio.TimeoutError:
        return _answer(htmx, 504, {"ok": False, "error": "the daemon did not answer in time; see its log"})
    return _answer(htmx, 200, {"ok": True, "message": outcome})


def _answer(htmx: bool, status_code: int, doc: dict[str, Any]) -> Response:
    if not htmx:
        return JSONResponse(doc, status_code)
    from html import escape

    text = escape(doc.get("message") or doc.get("error") or "")
    css = "flash ok" if doc["ok"] else "flash err"
    # htmx swaps only 2xx answers by default: a refusal is shown too, with its own style.
    return HTMLResponse(f'<p class="{css}" role="status">{text}</p>', 200, headers={"HX-Trigger": "asrd-changed"})


def _job_action(kind: ActionKind):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return await act(request, Action(kind, request.path_params["job_id"]))
    return endpoint


def _action(kind: ActionKind):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return await act(request, Action(kind))
    return endpoint


async def events(request: Request) -> Response:
    """SSE: a ``status`` event (JSON) with the current state at once and on every change."""
    hub: Hub = request.app.state.hub

    async def stream() -> AsyncIterator[str]:
        async for item in hub.stream():
            if item is None:
                yield ": keep-alive\n\n"
                continue
            seq, snap = item
            yield f"id: {seq}\nevent: status\ndata: {json.dumps(snapshot_doc(snap))}\n\n"

    return sse(stream())


def sse(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ROUTES = [
    Route("/api/status", status),
    Route("/api/jobs", jobs),
    Route("/api/jobs/{job_id:int}", job),
    Route("/api/jobs/{job_id:int}/media", media),
    Route("/api/jobs/{job_id:int}/retry", _job_action(ActionKind.RETRY), methods=["POST"]),
    Route("/api/jobs/{job_id:int}/cancel", _job_action(ActionKind.CANCEL), methods=["POST"]),
    Route("/api/jobs/{job_id:int}/forget", _job_action(ActionKind.FORGET), methods=["POST"]),
    Route("/api/jobs/retry-all", _action(ActionKind.RETRY_ALL), methods=["POST"]),
    Route("/api/model/unload", _action(ActionKind.UNLOAD), methods=["POST"]),
    Route("/api/model/warm-up", _action(ActionKind.WARM_UP), methods=["POST"]),
    Route("/api/pause", _action(ActionKind.PAUSE), methods=["POST"]),
    Route("/api/resume", _action(ActionKind.RESUME), methods=["POST"]),
    Route("/api/events", events),
]
