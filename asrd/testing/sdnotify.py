"""A real AF_UNIX datagram socket standing in for systemd's notify socket, for tests of ``asrd run``.

Pass ``NOTIFY_SOCKET=<path>`` to the daemon; ``seen("READY=1")`` then says whether it has told systemd so."""

from __future__ import annotations

import socket
from pathlib import Path


class NotifySocket:
    def __init__(self, folder: Path, *, wait: float = 0.1) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(wait)  # how long one read waits for the next message
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        """Every message received so far, the new ones read now."""
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def seen(self, text: str) -> bool:
        return any(text in m for m in self.drain())

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
