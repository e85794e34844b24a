"""The Starlette app: API and page routes behind the security guard, vendored htmx as static files."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from asrd.web import api, compat, pages
from asrd.web.hub import Hub
from asrd.web.port import DaemonPort
from asrd.web.security import Guard, Policy

STATIC = Path(__file__).with_name("static")


def build_app(port: DaemonPort, hub: Hub, policy: Policy) -> Starlette:
    app = Starlette(
        routes=[*api.ROUTES, *compat.routes(port.settings), *pages.ROUTES,
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(Guard, policy=policy)],
        exception_handlers={404: pages.not_found},
    )
    app.state.port = port
    app.state.hub = hub
    app.state.policy = policy
    app.state.api_waiter = compat.Waiter(port)
    return app
