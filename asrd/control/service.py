"""Talking to the service manager: sd_notify messages, the watchdog interval, signals, logging.

systemd learns the daemon's state from datagrams on ``$NOTIFY_SOCKET`` (``Type=notify``):
``READY=1`` once the config is valid and the watchers run, ``STATUS=`` for ``systemctl status``,
``WATCHDOG=1`` from a healthy main loop, ``RELOADING=1``/``STOPPING=1`` around SIGHUP and SIGTERM,
``EXTEND_TIMEOUT_USEC=`` while draining. Without systemd (a terminal, launchd) every message is
a no-op, so the daemon calls these unconditionally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Protocol

import sdnotify

log = logging.getLogger(__name__)

STATUS_MAX_CHARS = 200
"""systemd drops notify datagrams over 4 KiB, and ``systemctl status`` shows one line anyway."""

_SEND_TIMEOUT = 1.0  # a wedged systemd must not block the main loop (and so its own watchdog)


class Notifier(Protocol):
    def send(self, message: str) -> None:
        """Deliver one sd_notify message (``KEY=value`` lines); never raises."""


class SystemdNotifier:
    """Sends to ``$NOTIFY_SOCKET`` with the ``sdnotify`` package; a no-op when it is unset.

    The socket is connected on first use and again after an error (systemd re-executed, socket
    gone): errors are logged at debug level and the message is dropped - a lost ``STATUS=`` must
    never stop transcription, and a lost ``WATCHDOG=1`` is what the watchdog is for.
    The address is read once, here, so the daemon may drop ``NOTIFY_SOCKET`` from its environment
    afterwards (keeping it from the worker) without breaking reconnects.
    """

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET") or None
        self._client: _Client | None = None
        self._lock = threading.Lock()  # status updates may come from more than one thread

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> None:
        if self.address is None:
            return
        # sdnotify encodes with latin-1, which fails on most non-Western text; systemd wants UTF-8.
        # Hand it the UTF-8 bytes spelled as latin-1 so its encode yields exactly those bytes.
        payload = message.encode("utf-8", "replace").decode("latin-1")
        with self._lock:
            try:
                if self._client is None:
                    self._client = _Client(self.address)
                self._client.notify(payload)
            except Exception as err:  # sdnotify re-raises whatever happened (bare except); we must not
                log.debug("sd_notify to %s failed (%s); dropped %r", self.address, err, message.split("\n")[0])
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.socket.close()
        self._client = None


class _Client(sdnotify.SystemdNotifier):
    """sdnotify's sender on a socket opened here: its own constructor reads the environment each
    time and leaks the socket when connect() fails, and its socket has no timeout."""

    def __init__(self, address: str) -> None:
        self.debug = True  # raise instead of swallowing, so a dead socket gets reconnected
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.settimeout(_SEND_TIMEOUT)
            sock.connect("\0" + address[1:] if address.startswith("@") else address)  # @ = abstract
        except OSError:
            sock.close()
            raise
        self.socket = sock


class MemoryNotifier:
    """In-memory twin of SystemdNotifier: records every message, for tests."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def send(self, message: str) -> None:
        self.messages.append(message)

    def values(self, key: str) -> list[str]:
        """Every value sent for ``key`` (``"STATUS"``, ``"READY"``, ...), oldest first."""
        return [fields[key] for fields in map(parse_message, self.messages) if key in fields]


def parse_message(message: str) -> dict[str, str]:
    """``"READY=1\\nSTATUS=x"`` -> ``{"READY": "1", "STATUS": "x"}``."""
    return dict(line.split("=", 1) for line in message.split("\n") if "=" in line)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")  # undecodable bytes in file names (os.fsdecode)


def one_line(text: str, limit: int = STATUS_MAX_CHARS) -> str:
    """A status text systemd accepts: one line, valid UTF-8, at most ``limit`` characters."""
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd compares ``MONOTONIC_USEC`` against."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class ServiceState:
    """Builds the sd_notify messages for each step of the daemon's life and sends them.

    Every method returns the message it sent ("" when it had nothing to send), for callers and tests.
    No ``MAINPID=``: asrd never forks away from the process systemd started.
    """

    def __init__(self, notifier: Notifier, watchdog_seconds: float | None = None) -> None:
        self.notifier = notifier
        self.watchdog_seconds = watchdog_seconds
        """Ping interval (half of WatchdogSec=), from ``watchdog_interval()``; None = no watchdog."""
        self._last_status: str | None = None
        self._last_ping: float | None = None

    def ready(self, status: str | None = None) -> str:
        """Startup (or a reload) finished: config valid, watchers running."""
        return self._send("READY=1", status)

    def status(self, text: str) -> str:
        """Free-form state for ``systemctl status``; repeated identical texts are not resent."""
        line = one_line(text)
        if line == self._last_status:
            return ""
        return self._send(None, text)

    def watchdog(self) -> str:
        """Proof of life: call only from the main loop, and only while it is healthy."""
        return self._send("WATCHDOG=1")

    def watchdog_if_due(self, now: float) -> str:
        """``watchdog()`` at most once per interval; cheap to call on every main-loop tick."""
        if self.watchdog_seconds is None:
            return ""
        if self._last_ping is not None and now - self._last_ping < self.watchdog_seconds:
            return ""
        self._last_ping = now
        return self.watchdog()

    def reloading(self, status: str | None = "reloading configuration") -> str:
        """SIGHUP received; follow with ``ready()`` when the new config is in place (or was refused).

        systemd 253+ requires MONOTONIC_USEC with RELOADING=1 to tell this reload from a stale one.
        """
        return self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec()}", status)

    def stopping(self, status: str | None = "stopping") -> str:
        """SIGTERM received: draining."""
        return self._send("STOPPING=1", status)

    def extend_timeout(self, seconds: float) -> str:
        """Ask for ``seconds`` more from now before systemd's start/stop timeout fires.

        Resend well before it runs out (e.g. every ``seconds / 2``) while draining a long job.
        """
        return self._send(f"EXTEND_TIMEOUT_USEC={max(1, round(seconds * 1_000_000))}")

    def _send(self, head: str | None, status: str | None = None) -> str:
        lines = [head] if head else []
        if status is not None:
            self._last_status = one_line(status)
            lines.append(f"STATUS={self._last_status}")
        message = "\n".join(lines)
        self.notifier.send(message)
        return message


def watchdog_interval(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC`` (as sd_watchdog_enabled
    advises), or None when systemd expects none - unset, invalid, or meant for another process
    (``$WATCHDOG_PID`` names a pid that is not ours, e.g. inherited by the worker)."""
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 2 / 1_000_000


class SignalFlags:
    """Installs SIGTERM, SIGINT, SIGHUP and SIGUSR1 handlers that only set flags; restores the old ones on exit.

    The main loop reads the flags: ``terms`` counts SIGTERM/SIGINT (1 = drain, finish or re-queue the
    current work; 2 = stop at once), ``hup`` asks for a config reload, SIGUSR1 only wakes the loop (``asrd retry``
changed the job database: the daemon sees it at once instead of on its next idle tick). Handlers do no work, because
    Python runs them between any two bytecodes of the main thread, even inside a lock or a DB commit.

    Main thread only: Python delivers signals to the main thread and refuses to install handlers
    from any other. ``wait()`` sleeps until a timeout, a signal, or ``wake()`` from another thread.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)

    def __init__(self) -> None:
        self.terms = 0
        self.hup = False
        self.last_signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._previous_wakeup_fd: int | None = None

    @property
    def stop_requested(self) -> bool:
        return self.terms >= 1

    @property
    def stop_now(self) -> bool:
        return self.terms >= 2

    def consume_hup(self) -> bool:
        """True once per pending SIGHUP (several before the next look count as one reload)."""
        # A HUP landing between these two steps is merged into this reload, which reads the
        # config file afterwards anyway: nothing is lost.
        pending = self.hup
        self.hup = False
        return pending

    def __enter__(self) -> SignalFlags:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("SignalFlags must be entered from the main thread")
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        try:
            # The C-level handler writes a byte here as soon as a signal lands, so wait() wakes at
            # once even though select() is retried after Python handlers run (PEP 475).
            self._previous_wakeup_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            # None means the old handler was not installed from Python; the default is the best guess.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        for sock in (self._reader, self._writer):
            if sock is not None:
                sock.close()
        self._reader = self._writer = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.last_signal = signum
        if signum == signal.SIGHUP:
            self.hup = True
        elif signum == signal.SIGUSR1:
            pass  # a wake-up only: the wakeup fd already cut wait() short
        else:
            self.terms += 1

    def wait(self, timeout: float, also: Sequence[int] = ()) -> None:
        """Sleep up to ``timeout`` seconds; return early on a signal, ``wake()``, or when one of the
        file descriptors in ``also`` (the model worker's pipe) becomes readable."""
        if self._reader is None:
            select.select(list(also), [], [], max(0.0, timeout)) if also else time.sleep(timeout)
            return
        watched: list[socket.socket | int] = [self._reader, *also]
        readable, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if self._reader in readable:
            with contextlib.suppress(BlockingIOError):
                while self._reader.recv(4096):
                    pass

    def wake(self) -> None:
        """Cut the main thread's ``wait()`` short; safe from any thread."""
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError):  # full buffer: a wake-up is already pending
                writer.send(b"\0")


