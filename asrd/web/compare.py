"""Re-run and compare: a job's runs side by side, cue by cue with differences marked, a form for another
re-run, and "use this one" (``asrd.control.reruns``). Clients name a job id and a run id, never a path.

``GET /api/jobs/{id}/runs`` lists the runs with their cues and the aligned rows; ``POST .../rerun`` queues a
re-run (JSON body: language, itn, hotwords, model); ``POST .../runs/{run}/choose`` writes the sidecars from
that run (``{"discard": true}`` replaces sidecars edited since asrd wrote them). Both POSTs pass the
guard (Origin / token) like every other.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asrd.control.actions import Action, ActionKind
from asrd.control.jobs import Job, JobState
from asrd.control.reruns import RunRequest
from asrd.control.runs import RerunOptions, Run, content_key
from asrd.media import SIDECAR_FORMATS
from asrd.output.cuerules import CueRules
from asrd.output.cues import build_cues
from asrd.output.ownership import for_store
from asrd.output.sidecars import is_ours
from asrd.output.textguard import clean
from asrd.records import SAMPLE_RATE
from asrd.web.api import act, sse
from asrd.web.hub import Hub
from asrd.web.pages import page
from asrd.web.port import DaemonPort

MAX_BODY = 16 * 1024  # a re-run's options are a few hundred bytes


@dataclass(frozen=True)
class Span:
    """One run's cue: times in samples."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Row:
    """The cues of every run that overlap in time, as one line of the comparison."""

    start: int
    end: int
    texts: tuple[str, ...]  # one per run, "" where a run has nothing there

    @property
    def differs(self) -> bool:
        return len({_squash(t) for t in self.texts}) > 1


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def align(runs: list[list[Span]]) -> list[Row]:
    """Rows of cues that overlap in time across runs (a cue of one run that spans two of another's joins them)."""
    cues = sorted(((c.start, c.end, i, c.text) for i, spans in enumerate(runs) for c in spans))
    rows: list[Row] = []
    texts: list[list[str]] = []
    start = end = -1
    for c_start, c_end, i, text in cues:
        if not texts or c_start >= end:
            if texts:
                rows.append(Row(start, end, tuple(" ".join(t) for t in texts)))
            texts = [[] for _ in runs]
            start, end = c_start, c_end
        end = max(end, c_end)
        texts[i].append(text)
    if texts:
        rows.append(Row(start, end, tuple(" ".join(t) for t in texts)))
    return rows


_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|\w+|\s+|[^\w\s]")


def marked(reference: str, text: str) -> list[tuple[str, bool]]:
    """``text`` in pieces, each True where it differs from ``reference`` (words; CJK by character)."""
    ref, new = _TOKEN.findall(reference), _TOKEN.findall(text)
    pieces: list[tuple[str, bool]] = []
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, ref, new, autojunk=False).get_opcodes():
        if j2 > j1:
            pieces.append(("".join(new[j1:j2]), tag != "equal"))
    return pieces


def _spans(run: Run, rules: CueRules) -> list[Span]:
    if run.transcript is None:
        return []
    return [Span(c.start, c.end, c.text) for c in build_cues(clean(run.transcript), rules)]


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _job(request: Request) -> Job | None:
    return _port(request).jobs.by_id(request.path_params["job_id"])


def edited(port: DaemonPort, job: Job) -> list[str]:
    """The job's sidecars that are no longer asrd's (edited in the page or by hand)."""
    ownership = for_store(port.jobs)
    return [p.name for p in job.sidecars if p.exists() and not is_ours(p, job.path, ownership)]


def _seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def runs_doc(port: DaemonPort, job: Job) -> dict[str, Any]:
    runs = port.jobs.runs.of_job(job.id)
    rules = CueRules.from_settings(port.settings.subtitles)
    spans = [_spans(r, rules) for r in runs if r.transcript is not None]
    shown = [r for r in runs if r.transcript is not None]
    rows = align(spans)
    ref = next((i for i, r in enumerate(shown) if r.chosen), 0)
    current = content_key(job.fingerprint)
    model = port.settings.model
    return {
        "job": job.id, "name": job.path.name, "state": job.state.value, "edited": edited(port, job),
        "models": [model.name, *model.rerun_models],
        "runs": [{
            "id": r.id, "origin": r.origin.value, "label": r.options.label(), "options": r.options.model_dump(),
            "model": r.model or model.name, "model_short": Path(r.model or model.name).name,
            "state": r.state.value, "chosen": r.chosen, "created": r.created,
            "updated": r.updated, "attempts": r.attempts, "error": r.last_error, "stale": r.content != current,
            "language": r.transcript.language if r.transcript is not None else None,
            "compared": r.transcript is not None,
        } for r in runs],
        "compared": [r.id for r in shown],
        "reference": shown[ref].id if shown else None,
        "rows": [{
            "start": _seconds(row.start), "end": _seconds(row.end), "differs": row.differs,
            "cells": [[[text, changed] for text, changed in marked(row.texts[ref], t)] for t in row.texts],
        } for row in rows],
    }


async def runs_api(request: Request) -> Response:
    job = _job(request)
    if job is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    return JSONResponse(runs_doc(_port(request), job))


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ValueError(f"the request body is over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("the body must be a JSON object")
    return doc


def _options(doc: dict[str, Any]) -> RerunOptions:
    doc = {k: v for k, v in doc.items() if v is not None and v != ""}
    words = doc.get("hotwords")
    if isinstance(words, str):  # the page's text field: one per line or comma-separated
        doc["hotwords"] = [w.strip() for w in re.split(r"[,\n]", words) if w.strip()]
    return RerunOptions.model_validate(doc)


async def rerun_api(request: Request) -> Response:
    try:
        options = _options(await _body(request))
    except (ValueError, ValidationError) as err:
        first = str(err).splitlines()[0] if not isinstance(err, ValidationError) else _first_error(err)
        return JSONResponse({"ok": False, "error": first}, 400)
    return await act(request, Action(ActionKind.RERUN, request.path_params["job_id"], run=RunRequest(options)))


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    return f"{where}: {e['msg']}" if where else str(e["msg"])


async def choose_api(request: Request) -> Response:
    try:
        doc = await _body(request)
    except ValueError as err:
        return JSONResponse({"ok": False, "error": str(err)}, 400)
    discard = doc.get("discard", False) is True
    request_ = RunRequest(run_id=request.path_params["run_id"], discard=discard)
    return await act(request, Action(ActionKind.CHOOSE, request.path_params["job_id"], run=request_))


async def compare_page(request: Request) -> Response:
    port = _port(request)
    job = _job(request)
    if job is None:
        return page(request, "missing.html", 404, what=f"no job {request.path_params['job_id']}")
    doc = runs_doc(port, job)
    by_id = {r["id"]: r for r in doc["runs"]}
    return page(request, "compare.html", doc=doc, columns=[by_id[i] for i in doc["compared"]],
                languages=("auto", "zh", "en", "yue", "ja", "ko"), done=job.state is JobState.DONE,
                formats=[f for f in SIDECAR_FORMATS if any(p.suffix == "." + f for p in job.sidecars)])


async def compare_events(request: Request) -> Response:
    """SSE for the compare page: this job's waiting re-runs (event ``runs``: ``[[run id, state], ...]``), at
    once and whenever they change (a run starts, finishes or fails): the page reloads then, it never polls."""
    hub: Hub = request.app.state.hub
    job_id = request.path_params["job_id"]

    async def stream() -> AsyncIterator[str]:
        sent: list[list[Any]] | None = None
        async for item in hub.stream():
            if item is None:
                yield ": keep-alive\n\n"
                continue
            seq, snap = item
            mine = [[run_id, state] for job, run_id, state in snap.runs if job == job_id]
            if mine != sent:
                sent = mine
                yield f"id: {seq}\nevent: runs\ndata: {json.dumps(mine)}\n\n"

    return sse(stream())


ROUTES = [
    Route("/compare/{job_id:int}", compare_page),
    Route("/compare/{job_id:int}/events", compare_events),
    Route("/api/jobs/{job_id:int}/runs", runs_api),
    Route("/api/jobs/{job_id:int}/rerun", rerun_api, methods=["POST"]),
    Route("/api/jobs/{job_id:int}/runs/{run_id:int}/choose", choose_api, methods=["POST"]),
]
