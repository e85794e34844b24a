"""Inboxes (read-only, with pause/resume per inbox), files that are not queued (settling, ignored, without a
job, with "queue now"), and System (version, uptime, state, logs, effective configuration with sources).

Nothing here touches the file system for a client: inboxes are named by their folder's name, files without
a job by their number in the daemon's last check, and the check itself runs in the daemon loop.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asrd.config.sources import effective
from asrd.control.actions import Action, ActionKind
from asrd.control.inboxviews import inbox_views
from asrd.control.statedir import DB_NAME
from asrd.web.api import act
from asrd.web.eta import settling
from asrd.web.pages import page
from asrd.web.port import DaemonPort
from asrd.web.views import inbox_name, status_doc

DISK_SECONDS = 1.0  # a hung network mount must not hold the page: its free space shows as unknown


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _free(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


async def free_bytes(path: Path) -> int | None:
    try:
        return await asyncio.wait_for(run_in_threadpool(_free, path), DISK_SECONDS)
    except asyncio.TimeoutError:
        return None


async def inbox_docs(port: DaemonPort) -> list[dict[str, Any]]:
    snap = port.snapshot()
    settings = port.settings
    live = {i.path: i for i in snap.live.inboxes}
    infos = {i.key: i for i in snap.inboxes}
    rescan = settings.daemon.rescan_seconds
    docs = []
    for key, view in inbox_views(settings).items():
        state, info = live.get(key), infos.get(key)
        docs.append({
            "name": inbox_name(key), "path": key,
            "mode": state.mode if state else "not watching", "why": state.reason if state else "",
            "healthy": state.healthy if state else False,
            "recursive": view.settings.recursive,
            "last_rescan": snap.last_scan,
            "next_rescan": snap.last_scan + rescan if snap.last_scan is not None and rescan > 0 else None,
            "settle_seconds": info.settle_seconds if info else view.settings.settle_seconds,
            "settling": len(info.settling) if info else 0,
            "paused": bool(info and info.paused),
            "language": view.options.language, "hotwords": list(view.options.hotwords),
            "formats": list(view.output.formats),
            "include": list(view.settings.include), "exclude": list(view.settings.exclude),
            "free_bytes": await free_bytes(Path(key)),
        })
    return docs


async def inboxes(request: Request) -> Response:
    docs = await inbox_docs(_port(request))
    return page(request, "inboxes.html", inboxes=docs, rescan=_port(request).settings.daemon.rescan_seconds)


async def api_inboxes(request: Request) -> Response:
    return JSONResponse({"inboxes": await inbox_docs(_port(request))})


def _inbox_action(kind: ActionKind):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return await act(request, Action(kind, inbox=request.path_params["name"]))
    return endpoint


def unqueued_doc(port: DaemonPort) -> dict[str, Any]:
    snap = port.snapshot()
    report = snap.reconcile
    return {
        "settling": [{"name": w.name, "inbox": inbox_name(w.inbox), "left": round(w.left, 1), "why": w.why}
                     for w in settling(snap, time.time())],
        "ignored": [{"inbox": inbox_name(i.inbox), "file": i.relative, "rule": i.rule, "seen": i.seen}
                    for i in snap.ignored],
        "check": {"state": report.state, "started": report.started, "finished": report.finished,
                  "scanned": report.scanned, "more": report.more,
                  "missing": [{"entry": n, "inbox": inbox_name(m.inbox), "file": m.relative, "size": m.size,
                               "mtime": m.mtime} for n, m in enumerate(report.missing)]},
    }


async def unqueued(request: Request) -> Response:
    return page(request, "unqueued.html", **unqueued_doc(_port(request)))


async def api_unqueued(request: Request) -> Response:
    return JSONResponse(unqueued_doc(_port(request)))


async def reconcile(request: Request) -> Response:
    return await act(request, Action(ActionKind.RECONCILE))


async def queue_found(request: Request) -> Response:
    return await act(request, Action(ActionKind.QUEUE_FOUND, entry=request.path_params["entry"]))


async def system(request: Request) -> Response:
    port = _port(request)
    snap = port.snapshot()
    db_size = None
    if port.state_dir is not None:
        try:
            db_size = (port.state_dir / DB_NAME).stat().st_size
        except OSError:
            db_size = None
    import json

    return page(request, "system.html", snap=snap, state_dir=port.state_dir, db_size=db_size,
                config=effective(port.settings), logs=port.recent_logs()[-100:],
                uptime=time.time() - snap.live.started, diagnostics=json.dumps(status_doc(port), indent=2))


ROUTES = [
    Route("/inboxes", inboxes),
    Route("/files/unqueued", unqueued),
    Route("/system", system),
    Route("/api/inboxes", api_inboxes),
    Route("/api/inboxes/{name}/pause", _inbox_action(ActionKind.PAUSE_INBOX), methods=["POST"]),
    Route("/api/inboxes/{name}/resume", _inbox_action(ActionKind.RESUME_INBOX), methods=["POST"]),
    Route("/api/unqueued", api_unqueued),
    Route("/api/unqueued/check", reconcile, methods=["POST"]),
    Route("/api/unqueued/{entry:int}/queue", queue_found, methods=["POST"]),
]
