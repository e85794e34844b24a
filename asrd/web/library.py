"""Library and search: every finished transcript with filters, and full-text search over all cues.

``GET /library`` (page; htmx swaps ``#results``) and ``GET /api/search`` (paged hits: job id, cue time,
excerpt with the matches marked) and ``GET /api/library`` (paged transcripts) share one query parser.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asrd.control.library import Hit, LibraryQuery, Summary
from asrd.records import SAMPLE_RATE
from asrd.web.api import BadRequest, flag
from asrd.web.pages import TEMPLATES, page
from asrd.web.port import DaemonPort
from asrd.web.views import MAX_PER_PAGE, inbox_name

PER_PAGE = 25
FIELDS = ("q", "inbox", "since", "until", "language", "min_minutes", "max_minutes", "emotion", "event", "alerts")
LANGUAGES = ("zh", "en", "yue", "ja", "ko")  # SenseVoice's; any other value still filters
EMOTIONS = ("HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED")
EVENTS = ("Speech", "BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough")


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _day(request: Request, name: str, next_day: bool = False) -> float | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a date like 2026-01-31, not {raw!r}") from None
    if next_day:  # "until" names the last day wanted
        day += dt.timedelta(days=1)
    return time.mktime(day.timetuple())  # the server's local midnight


def _minutes(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number of minutes, not {raw!r}") from None
    if not 0 <= value <= 10**6:
        raise BadRequest(f"{name} must be between 0 and 1000000")
    return round(value * 60 * SAMPLE_RATE)


def _page_no(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from 1 to {high}")
    return int(raw)


def inbox_keys(port: DaemonPort, name: str) -> tuple[str, ...]:
    """The inbox keys (resolved paths, as on jobs) a client's inbox name stands for; clients never send paths."""
    if not name:
        return ()
    keys = tuple(str(i.path.resolve()) for i in port.settings.inbox if inbox_name(str(i.path.resolve())) == name)
    return keys or (name,)  # unknown: matches nothing a configured inbox holds


def library_query(request: Request, per_page_default: int = PER_PAGE) -> tuple[LibraryQuery, int, int]:
    params = request.query_params
    page = _page_no(request, "page", 1, 10**6)
    per_page = _page_no(request, "per_page", per_page_default, MAX_PER_PAGE)
    query = LibraryQuery(
        text=params.get("q", "").strip(), inboxes=inbox_keys(_port(request), params.get("inbox", "").strip()),
        since=_day(request, "since"), until=_day(request, "until", next_day=True),
        language=params.get("language", "").strip(), min_duration=_minutes(request, "min_minutes"),
        max_duration=_minutes(request, "max_minutes"), emotion=params.get("emotion", "").strip(),
        event=params.get("event", "").strip(), alerts=flag(request, "alerts"), limit=per_page,
        offset=(page - 1) * per_page,
    )
    return query, page, per_page


def seconds(samples: int) -> float:
    return round(samples / SAMPLE_RATE, 3)


def clock(value: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour on."""
    whole = max(0, int(value))
    h, m, s = whole // 3600, whole // 60 % 60, whole % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


TEMPLATES.env.filters["clock"] = clock


def summary_doc(s: Summary) -> dict[str, Any]:
    return {
        "job_id": s.job_id, "name": s.name, "inbox": inbox_name(s.inbox), "language": s.language or None,
        "duration": seconds(s.duration), "done": s.done, "emotions": list(s.emotions), "events": list(s.events),
        "cues": s.cues, "viewer": f"/viewer/{s.job_id}",
    }


def hit_doc(h: Hit) -> dict[str, Any]:
    return {
        "job_id": h.summary.job_id, "name": h.summary.name, "inbox": inbox_name(h.summary.inbox),
        "cue": h.cue.index, "start": seconds(h.cue.start), "end": seconds(h.cue.end),
        "excerpt": h.excerpt, "marks": [list(m) for m in h.marks],
        "viewer": viewer_link(h.summary.job_id, h.cue.index, h.cue.start),
    }


def viewer_link(job_id: int, cue: int, start: int) -> str:
    return f"/viewer/{job_id}?t={seconds(start)}#cue-{cue}"


def marked(text: str, marks: tuple[tuple[int, int], ...]) -> list[tuple[str, bool]]:
    """The excerpt as (piece, is_match) pairs, for a template to escape and wrap in <mark>."""
    out: list[tuple[str, bool]] = []
    at = 0
    for a, b in marks:
        if a > at:
            out.append((text[at:a], False))
        out.append((text[a:b], True))
        at = b
    if at < len(text):
        out.append((text[at:], False))
    return out


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


async def search_api(request: Request) -> Response:
    try:
        query, page, per_page = library_query(request)
    except BadRequest as err:
        return JSONResponse({"error": str(err)}, 400)
    if not query.text:
        return JSONResponse({"error": "q is missing: the words to look for"}, 400)
    found = _port(request).jobs.library.search(query)
    return JSONResponse({"q": query.text, "hits": [hit_doc(h) for h in found.hits], "total": found.total,
                         "exact": found.exact, "page": page, "per_page": per_page,
                         "pages": _pages(found.total, per_page)})


async def library_api(request: Request) -> Response:
    try:
        query, page, per_page = library_query(request)
    except BadRequest as err:
        return JSONResponse({"error": str(err)}, 400)
    found = _port(request).jobs.library.browse(query)
    return JSONResponse({"transcripts": [summary_doc(s) for s in found.summaries], "total": found.total,
                         "page": page, "per_page": per_page, "pages": _pages(found.total, per_page)})


async def library_page(request: Request) -> Response:
    port = _port(request)
    form = {k: request.query_params.get(k, "") for k in FIELDS}
    ctx: dict[str, Any] = {
        "form": form, "inboxes": sorted({inbox_name(str(i.path.resolve())) for i in port.settings.inbox}),
        "languages": LANGUAGES, "emotions": EMOTIONS, "events": EVENTS, "hits": None, "summaries": [],
        "total": 0, "more": False, "page_no": 1, "pages": 1, "error": None,
        "export": "/api/export.zip?" + urlencode({k: form[k] for k in ("inbox", "since", "until") if form[k]}),
    }
    try:
        query, page_no, per_page = library_query(request)
    except BadRequest as err:
        ctx["error"] = str(err)
        return page(request, _template(request), 400, **ctx)
    lib = port.jobs.library
    if query.text:
        hits = lib.search(query)
        ctx["hits"] = [{**hit_doc(h), "pieces": marked(h.excerpt, h.marks)} for h in hits.hits]
        total = hits.total
        ctx["more"] = not hits.exact
    else:
        listed = lib.browse(query)
        ctx["summaries"] = [summary_doc(s) for s in listed.summaries]
        total = listed.total

    def link(n: int) -> str:
        return "/library?" + urlencode({**{k: v for k, v in form.items() if v}, "page": n})

    ctx.update(total=total, page_no=page_no, pages=_pages(total, per_page), link=link)
    return page(request, _template(request), **ctx)


def _template(request: Request) -> str:
    # htmx asks for the results only (the form stays as the user is typing in it)
    return "_library_results.html" if request.headers.get("hx-request") == "true" else "library.html"


ROUTES = [
    Route("/library", library_page),
    Route("/api/search", search_api),
    Route("/api/library", library_api),
]
