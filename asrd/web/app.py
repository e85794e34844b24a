"""The Starlette app: API and page routes behind the security guard, vendored htmx as static files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asrd.web import api, compare, compat, editor, inboxpages, library, pages, upload_api, viewer
from asrd.web.hub import Hub
from asrd.web.port import DaemonPort
from asrd.web.security import Guard, Policy

STATIC = Path(__file__).with_name("static")


async def metrics(request: Request) -> Response:
    """Prometheus metrics (``asrd.control.metrics``), behind the same guard as every page."""
    source = getattr(request.app.state, "metrics", None)  # the daemon's Metrics; absent in the twin
    if source is None:
        return PlainTextResponse("metrics are not collected\n", status_code=404)
    return Response(source.text(), media_type="text/plain; version=0.0.4; charset=utf-8")


def build_app(port: DaemonPort, hub: Hub, policy: Policy) -> Starlette:
    app = Starlette(
        routes=[
            *api.ROUTES, *compat.routes(port.settings), *inboxpages.ROUTES, *pages.ROUTES, *library.ROUTES,
            *editor.ROUTES, *viewer.ROUTES, *compare.ROUTES, *upload_api.ROUTES, Route("/metrics", metrics),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, policy=policy)],
        exception_handlers={404: pages.not_found},
    )
    app.state.port = port
    app.state.hub = hub
    app.state.policy = policy
    app.state.api_waiter = compat.Waiter(port)
    return app
