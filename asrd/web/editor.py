"""Correcting a transcript in the browser: save, discard, the rule check as you type, and machine-vs-edited.

- ``PUT /api/jobs/{id}/transcript`` ``{"cues": [{"start_ms", "end_ms", "text"}, ...]}``: checked here
  (``output.edits.parse_cues``), then a durable action on the daemon loop (``control.edits.save``).
- ``POST /api/jobs/{id}/edits/discard``: the sidecars back to the latest machine result.
- ``GET /api/jobs/{id}/edits``: the edit state, the cues to edit, and the per-cue difference from the machine's.
- ``POST /api/cuecheck``: asrd's subtitle rules (``output.cuerules.check``) over cues being edited.

Every change goes through the security guard (Origin / token) like every POST; clients name a job id only.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asrd.control.actions import Action, ActionKind
from asrd.control.jobs import Job
from asrd.output.cuerules import CueRules, check
from asrd.output.edits import MAX_BODY_BYTES, MS, DiffRow, EditError, cues_doc, diff, parse_cues
from asrd.output.edits import machine_cues as kept_cues
from asrd.records import Cue
from asrd.web.api import act
from asrd.web.i18n import rule_label
from asrd.web.port import DaemonPort


class _TooLarge(Exception):
    pass


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


async def _body(request: Request) -> Any:
    """The request's JSON, refused past MAX_BODY_BYTES without reading further."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    got = 0
    async for chunk in request.stream():
        got += len(chunk)
        if got > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError as err:
        raise EditError(f"the body is not JSON: {err}") from None


def _duration(port: DaemonPort, job: Job) -> int | None:
    entry = port.jobs.library.get(job.id)
    return entry.summary.duration if entry is not None and entry.summary.duration > 0 else None


def machine_cues(port: DaemonPort, job: Job) -> list[Cue]:
    """The latest machine result's cues: kept in the edit record once edited (the library, like search,
    follows the sidecars), else the library's."""
    record = port.jobs.edited(job.id)
    if record is not None:
        kept = kept_cues({m.fmt: m.content for m in record.machine})
        if kept is not None:
            return list(kept)
    entry = port.jobs.library.get(job.id)
    return [Cue(c.start, c.end, c.text) for c in entry.cues] if entry is not None and record is None else []


def _diff_doc(rows: list[DiffRow]) -> list[dict[str, Any]]:
    return [{"op": r.op, "retimed": r.retimed, "machine": cues_doc(r.machine), "edited": cues_doc(r.edited)}
            for r in rows]


def state(port: DaemonPort, job: Job) -> dict[str, Any]:
    """What the viewer shows about edits: saved when, a newer machine result, the difference per cue."""
    record = port.jobs.edited(job.id)
    gap = port.settings.subtitles.min_gap_ms  # what a split leaves between the halves (the checker's "gap")
    if record is None:
        return {"edited": False, "saved": None, "newer": None, "diff": [], "changed": 0, "min_gap_ms": gap}
    rows = diff(machine_cues(port, job), record.cues)
    return {"edited": True, "min_gap_ms": gap, "saved": record.saved, "newer": record.newer, "diff": _diff_doc(rows),
            "changed": sum(1 for r in rows if r.op != "equal" or r.retimed),
            "files": [w.path.name for w in record.written]}


async def edits_api(request: Request) -> Response:
    port = _port(request)
    job = port.jobs.by_id(request.path_params["job_id"])
    if job is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    record = port.jobs.edited(job.id)
    cues = list(record.cues) if record is not None else machine_cues(port, job)
    return JSONResponse({**state(port, job), "job_id": job.id, "cues": cues_doc(cues),
                         "formats": [p.suffix.lstrip(".") for p in job.sidecars]})


async def save(request: Request) -> Response:
    port = _port(request)
    job = port.jobs.by_id(request.path_params["job_id"])
    if job is None:
        return JSONResponse({"ok": False, "error": f"no job {request.path_params['job_id']}"}, 404)
    try:
        cues = parse_cues(await _body(request), _duration(port, job))
    except _TooLarge:
        return JSONResponse({"ok": False, "error": f"more than {MAX_BODY_BYTES // 2**20} MB of cues"}, 413)
    except EditError as err:
        return JSONResponse({"ok": False, "error": str(err), "cue": err.index}, 400)
    return await act(request, Action(ActionKind.SAVE_EDITS, job.id, cues=cues))


async def discard(request: Request) -> Response:
    return await act(request, Action(ActionKind.DISCARD_EDITS, request.path_params["job_id"]))


async def cuecheck(request: Request) -> Response:
    """The rule warnings of cues being edited (nothing is stored): per cue index, or the first error."""
    try:
        cues = parse_cues(await _body(request))
    except _TooLarge:
        return JSONResponse({"ok": False, "error": f"more than {MAX_BODY_BYTES // 2**20} MB of cues"}, 413)
    except EditError as err:
        return JSONResponse({"ok": False, "error": str(err), "cue": err.index, "warnings": {}})
    warnings: dict[int, list[dict[str, str]]] = {}
    for v in check(cues, CueRules.from_settings(_port(request).settings.subtitles)):
        warnings.setdefault(v.index, []).append({"rule": v.rule, "label": rule_label(v.rule), "detail": v.detail})
    return JSONResponse({"ok": True, "warnings": warnings, "count": sum(map(len, warnings.values()))})


ROUTES = [
    Route("/api/jobs/{job_id:int}/transcript", save, methods=["PUT"]),
    Route("/api/jobs/{job_id:int}/edits", edits_api),
    Route("/api/jobs/{job_id:int}/edits/discard", discard, methods=["POST"]),
    Route("/api/cuecheck", cuecheck, methods=["POST"]),
]

__all__ = ["MS", "ROUTES", "state"]
