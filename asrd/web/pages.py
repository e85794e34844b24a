"""Server-rendered pages (Jinja2 + htmx): Now, Where is my file, Problems, Model & power, System, login."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import pass_context
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from asrd import __version__
from asrd.control.jobs import JobQuery, JobState
from asrd.control.schedule import read_schedule, waiting_note
from asrd.web.api import BadRequest, job_query, sse
from asrd.web.eta import settling, starts
from asrd.web.hub import Hub
from asrd.web.i18n import Translator, choose, script_strings, translator
from asrd.web.port import DaemonPort, Snapshot
from asrd.web.security import Policy, cookie_header, token_matches
from asrd.web.views import inbox_name, job_doc, model_state, rss_bytes

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
QUEUE_SHOWN = 10  # queued files listed on the Now page


def _t(ctx: Any) -> Translator:
    t: Translator = ctx.get("t") or ENGLISH
    return t


@pass_context
def _ago(ctx: Any, ts: float | None) -> str:
    if not ts:
        return ""
    t = _t(ctx)
    if ts <= time.time():
        return t("{span} ago", span=_span(ctx, time.time() - ts))
    return t("in {span}", span=_span(ctx, ts - time.time()))


@pass_context
def _span(ctx: Any, seconds: float) -> str:
    t = _t(ctx)
    seconds = max(0, int(seconds))
    if seconds < 60:
        return t("{n} s", n=seconds)
    if seconds < 3600:
        return t("{n} min", n=seconds // 60)
    if seconds < 86400:
        return t("{h} h {m} min", h=seconds // 3600, m=seconds % 3600 // 60)
    return t("{n} d", n=seconds // 86400)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


TEMPLATES.env.filters.update(ago=_ago, span=_span, size=_size, inbox=inbox_name)
ENGLISH = translator("en")
TEMPLATES.env.globals["t"] = ENGLISH  # pages get the reader's language (i18n); a template rendered alone, English


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def now_context(port: DaemonPort, snap: Snapshot, t: Translator = ENGLISH) -> dict[str, Any]:
    queued = port.jobs.search(JobQuery(states=(JobState.QUEUED,), due_order=True, limit=QUEUE_SHOWN))
    now_ts = time.time()
    paused_inboxes = {i.key for i in snap.inboxes if i.paused}
    return {
        "t": t, "snap": snap, "model": model_state(snap), "queued": [
            {**job_doc(j), "starts_in": eta, "inbox_paused": j.inbox in paused_inboxes}
            for j, eta in zip(queued.jobs, starts(snap, list(queued.jobs), now_ts), strict=True)
        ],
        "settling": settling(snap, now_ts), "queued_total": queued.total, "current": [
            {"name": Path(c.path).name, "percent": c.percent, "done": c.done_seconds, "total": c.total_seconds}
            for c in snap.live.current
        ],
        "counts": {state.value: n for state, n in snap.counts},
        "waiting_note": waiting_note(read_schedule(port.state_dir)) if port.state_dir is not None else None,
    }


def language(request: Request) -> str:
    return choose(request.headers.get("accept-language"))


def page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
    port = _port(request)
    snap = port.snapshot()
    ctx.setdefault("problems", snap.count(JobState.FAILED) + snap.count(JobState.QUARANTINED))
    ctx.setdefault("lang", language(request))
    ctx.setdefault("t", translator(ctx["lang"]))
    ctx.setdefault("js_strings", script_strings(ctx["lang"]))
    return TEMPLATES.TemplateResponse(request, name, {"version": __version__, "path": request.url.path, **ctx},
                                      status_code=status_code)


async def now(request: Request) -> Response:
    port = _port(request)
    lang = language(request)
    return page(request, "now.html", lang=lang, **now_context(port, port.snapshot(), translator(lang)))


async def now_events(request: Request) -> Response:
    """SSE for the pages: the Now panel rendered as HTML (event ``now``), at once and on every change."""
    hub: Hub = request.app.state.hub
    port = _port(request)
    fragment = TEMPLATES.get_template("_now.html")
    t = translator(language(request))

    async def stream() -> AsyncIterator[str]:
        async for item in hub.stream():
            if item is None:
                yield ": keep-alive\n\n"
                continue
            seq, snap = item
            html = fragment.render(now_context(port, snap, t))
            data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
            yield f"id: {seq}\nevent: now\n{data}\n"

    return sse(stream())


async def files(request: Request) -> Response:
    port = _port(request)
    try:
        query, page_no, per_page = job_query(request)
    except BadRequest as err:
        return page(request, "files.html", 400, error=str(err), jobs=[], total=0, page_no=1, pages=1, form={})
    found = port.jobs.search(query)
    snap = port.snapshot()
    form = {k: request.query_params.get(k, "") for k in ("q", "state", "reason", "alerts")}
    pages = max(1, -(-found.total // per_page))

    def link(n: int) -> str:
        return "?" + urlencode({**{k: v for k, v in form.items() if v}, "page": n})

    return page(request, "files.html", jobs=[job_doc(j, snap) for j in found.jobs], total=found.total,
                page_no=page_no, pages=pages, form=form, link=link, states=[s.value for s in JobState])


async def file_detail(request: Request) -> Response:
    port = _port(request)
    found = port.jobs.by_id(request.path_params["job_id"])
    if found is None:
        t = translator(language(request))
        return page(request, "missing.html", 404, what=t("no job {id}", id=request.path_params["job_id"]))
    return page(request, "job.html", job=job_doc(found, port.snapshot()))


async def problems(request: Request) -> Response:
    port = _port(request)
    try:
        query, page_no, per_page = job_query(request)
    except BadRequest as err:
        return page(request, "missing.html", 400, what=str(err))
    found = port.jobs.search(JobQuery(problems=True, limit=per_page, offset=query.offset, reason=query.reason))
    pages = max(1, -(-found.total // per_page))
    reason = query.reason

    def link(n: int) -> str:
        return "?" + urlencode({**({"reason": reason} if reason else {}), "page": n})

    return page(request, "problems.html", groups=port.jobs.reasons(20), jobs=[job_doc(j) for j in found.jobs],
                total=found.total, page_no=page_no, pages=pages, link=link, reason=reason)


async def model(request: Request) -> Response:
    port = _port(request)
    snap = port.snapshot()
    return page(request, "model.html", snap=snap, model=model_state(snap), worker_rss=rss_bytes(snap.live.worker_pid),
                daemon_rss=rss_bytes(os.getpid()), settings=port.settings.model)


async def login(request: Request) -> Response:
    policy: Policy = request.app.state.policy
    if policy.auth != "token":
        return RedirectResponse("/", 303)
    if request.method == "GET":
        return page(request, "login.html", error=None)
    body = (await request.body())[:4096].decode("utf-8", "replace")
    given = (parse_qs(body).get("token") or [""])[0].strip()
    if not token_matches(policy, given):
        return page(request, "login.html", 401, error="That is not the token (see the file web-token).")
    answer = RedirectResponse("/", 303)
    answer.headers["set-cookie"] = cookie_header(given, request.url.scheme == "https")
    return answer


async def not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": "not found"}, 404)
    return HTMLResponse("<!doctype html><title>not found</title><p>Not found. <a href='/'>Now</a>", 404)


ROUTES = [
    Route("/", now),
    Route("/events", now_events),
    Route("/files", files),
    Route("/files/{job_id:int}", file_detail),
    Route("/problems", problems),
    Route("/model", model),
    Route("/login", login, methods=["GET", "POST"]),
]
