"""Server-Sent Events fan-out: the daemon thread publishes, each open stream wakes and sends the latest.

With no stream open, a publish touches nothing on the web thread (no wake-up at all). Streams conflate:
a slow client gets the newest state, never a backlog.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from asrd.web.port import Snapshot

HEARTBEAT_SECONDS = 25.0  # a comment line keeps proxies from closing a quiet stream; only while one is open


class Hub:
    def __init__(self, first: Snapshot) -> None:
        self._lock = threading.Lock()
        self._latest = first
        self._seq = 1
        self._events: set[asyncio.Event] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._events)

    def publish(self, snap: Snapshot) -> None:
        """Any thread. Keeps the snapshot; wakes the web loop only when a stream is open."""
        with self._lock:
            self._latest = snap
            self._seq += 1
            loop = self._loop if self._events else None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        with self._lock:
            self._closed = True
            loop = self._loop if self._events else None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out)

    def _fan_out(self) -> None:
        with self._lock:
            events = list(self._events)
        for event in events:
            event.set()

    def latest(self) -> tuple[int, Snapshot]:
        with self._lock:
            return self._seq, self._latest

    async def stream(self, heartbeat: float = HEARTBEAT_SECONDS) -> AsyncIterator[tuple[int, Snapshot] | None]:
        """The current state at once, then each change; None when ``heartbeat`` passes without one."""
        event = asyncio.Event()
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._events.add(event)
        try:
            sent = 0
            while True:
                with self._lock:
                    if self._closed:
                        return
                    seq, snap = self._seq, self._latest
                if seq != sent:
                    sent = seq
                    yield seq, snap
                    continue
                try:
                    await asyncio.wait_for(event.wait(), heartbeat)
                except asyncio.TimeoutError:
                    yield None
                event.clear()
        finally:
            with self._lock:
                self._events.discard(event)
