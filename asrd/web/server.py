"""uvicorn on a thread of the daemon, quiet when idle.

Stock ``uvicorn.Server.main_loop`` sleeps 0.1 s in a loop (10 wake-ups a second, measured in
shared/research/webui.md); here it awaits an event that only ``stop()`` sets, and the Date header
(which that tick refreshes) is off. With no client connected the thread then sleeps in epoll.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

from asrd.web.hub import Hub

log = logging.getLogger("asrd.web")

STOP_SECONDS = 5.0  # open streams and requests get this long to finish at shutdown


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.on_tick(0)  # sets the default headers once
        if not self.should_exit:
            await self._stop.wait()

    def request_stop(self) -> None:
        self.should_exit = True
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound on the caller's thread so a busy port is an error there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, reuse_port=False)
    sock.set_inheritable(False)
    return sock


class WebServer:
    """start() binds and serves on a thread; stop() ends the streams, then the server, then joins."""

    def __init__(self, app: ASGIApp, hub: Hub, host: str, port: int) -> None:
        self.hub = hub
        self.host, self.port = host, port
        config = uvicorn.Config(
            app, http="h11", ws="none", lifespan="off", log_config=None, access_log=False, date_header=False,
            server_header=False, timeout_graceful_shutdown=int(STOP_SECONDS),
        )
        self.server = QuietServer(config)
        self.thread: threading.Thread | None = None
        self.sock: socket.socket | None = None

    @property
    def bound(self) -> tuple[str, int]:
        assert self.sock is not None
        return self.sock.getsockname()[:2]

    def start(self) -> None:
        self.sock = bind(self.host, self.port)
        self.thread = threading.Thread(target=self._run, name="asrd-web", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.sock is not None
        try:
            asyncio.run(self.server.serve(sockets=[self.sock]))
        except Exception:  # the dashboard failing must not take the daemon with it
            log.exception("the dashboard stopped")

    def wait_started(self, timeout: float = 10.0) -> bool:
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.server.started or self.thread is None or not self.thread.is_alive():
                break
            deadline.wait(0.01)
        return self.server.started

    def stop(self) -> None:
        self.hub.close()
        self.server.request_stop()
        if self.thread is not None:
            self.thread.join(STOP_SECONDS)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(STOP_SECONDS)
        if self.sock is not None:
            self.sock.close()
