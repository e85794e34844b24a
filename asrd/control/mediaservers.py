"""Media-server refresh: once subtitles are written, Jellyfin, Emby or Plex is asked to look at just that folder.

Durable and off the daemon loop: ``job_done`` (on the loop) only adds a row to a small SQLite queue in the
state directory (``mediaservers.sqlite3``); a thread of its own sends the requests and retries with backoff
(30 s doubling to an hour) while a server is down, so a slow or absent server never delays a transcript, and
a restart loses nothing. The thread sleeps until the next row is due: no wake-ups when the queue is empty.

The requests, as each server documents them:
- Jellyfin, Emby: ``POST {url}/Library/Media/Updated`` with ``{"Updates": [{"Path": folder, "UpdateType":
  "Modified"}]}`` and the API key in ``X-Emby-Token`` (Jellyfin accepts that header too).
- Plex: ``GET {url}/library/sections/{id}/refresh?path=folder&X-Plex-Token=token`` (a partial scan); the
  section is configured or found from ``GET /library/sections`` (the one whose Location holds the folder).
Tokens never reach the log: URLs are logged without their query, errors without the token.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from asrd.config import MediaServerSettings
from asrd.control.jobs import Job

log = logging.getLogger("asrd.mediaservers")

DB_NAME = "mediaservers.sqlite3"
BACKOFF_BASE = 30.0
BACKOFF_CAP = 3600.0
HTTP_SECONDS = 10.0
KEEP_ATTEMPTS = 200  # a refresh still failing after this many tries (about a week at the cap) is dropped


class RefreshError(Exception):
    pass


@dataclass(frozen=True)
class Refresh:
    id: int
    server: int  # index of the [[mediaserver]] table
    folder: str  # as asrd sees it (mapped per server when sent)
    attempts: int
    not_before: float


def server_path(server: MediaServerSettings, folder: str) -> str:
    """``folder`` as the server sees it: the longest ``path_map`` prefix that matches is replaced."""
    best: tuple[str, str] | None = None
    for local, remote in server.path_map.items():
        local = local.rstrip("/")
        if (folder == local or folder.startswith(local + "/")) and (best is None or len(local) > len(best[0])):
            best = (local, remote.rstrip("/"))
    if best is None:
        return folder
    return best[1] + folder[len(best[0]):] or "/"


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class Sender:
    """One HTTP request per refresh (urllib; no new dependency). ``opener`` is swappable for tests."""

    def __init__(self, opener: Callable[..., Any] | None = None) -> None:
        # A fresh opener per request by default: urlopen()'s process-wide one keeps the proxy settings of
        # its first call (a test's dead proxy, or an environment since changed).
        self.open = opener or (lambda *args, **kwargs: urllib.request.build_opener().open(*args, **kwargs))
        self.plex_sections: dict[int, list[tuple[str, str]]] = {}  # server -> (section id, location)

    def send(self, index: int, server: MediaServerSettings, folder: str) -> None:
        token = server.token.get_secret_value()
        path = server_path(server, folder)
        try:
            if server.kind in ("jellyfin", "emby"):
                body = json.dumps({"Updates": [{"Path": path, "UpdateType": "Modified"}]}).encode()
                req = urllib.request.Request(f"{server.url}/Library/Media/Updated", body, method="POST", headers={
                    "Content-Type": "application/json", "X-Emby-Token": token})
                self._call(req)
            else:
                section = server.section or self._plex_section(index, server, path)
                query = urllib.parse.urlencode({"path": path, "X-Plex-Token": token})
                self._call(urllib.request.Request(f"{server.url}/library/sections/{section}/refresh?{query}"))
        except RefreshError as err:
            raise RefreshError(_scrub(str(err), token)) from None
        except (OSError, ValueError, ET.ParseError) as err:  # URLError, timeouts, refused connections
            raise RefreshError(_scrub(str(getattr(err, "reason", None) or err), token)) from None

    def _call(self, req: urllib.request.Request) -> bytes:
        try:
            with self.open(req, timeout=HTTP_SECONDS) as answer:
                data: bytes = answer.read()
                return data
        except urllib.error.HTTPError as err:
            where = req.full_url.split("?")[0]
            raise RefreshError(f"{req.get_method()} {where}: HTTP {err.code} {err.reason}") from None

    def _plex_section(self, index: int, server: MediaServerSettings, path: str) -> str:
        if index not in self.plex_sections:
            query = urllib.parse.urlencode({"X-Plex-Token": server.token.get_secret_value()})
            root = ET.fromstring(self._call(urllib.request.Request(f"{server.url}/library/sections?{query}")))
            self.plex_sections[index] = [
                (d.get("key", ""), loc.get("path", "")) for d in root.iter("Directory") for loc in d.iter("Location")]
        best = ("", "")
        for key, location in self.plex_sections[index]:
            if (path == location or PurePosixPath(path).is_relative_to(location)) and len(location) > len(best[1]):
                best = (key, location)
        if not best[0]:
            self.plex_sections.pop(index, None)  # a library may be added later: ask again next time
            raise RefreshError(f"no Plex library holds {path} (set section, or path_map to the server's paths)")
        return best[0]


class MediaRefresh:
    """start() opens the queue and starts the sender thread; job_done() queues; stop() ends the thread."""

    def __init__(self, state_dir: Path, servers: Sequence[MediaServerSettings], *,
                 clock: Callable[[], float] = time.time, sender: Sender | None = None) -> None:
        self.path = state_dir / DB_NAME
        self.servers = tuple(servers)
        self.clock = clock
        self.sender = sender or Sender()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def start(self, *, thread: bool = True) -> None:
        """Open the queue; ``thread=False`` leaves sending to whoever calls ``step(now)`` (tests)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS refresh (
            id INTEGER PRIMARY KEY AUTOINCREMENT, server INTEGER NOT NULL, folder TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL, last_error TEXT,
            UNIQUE (server, folder))""")
        if thread:
            self._thread = threading.Thread(target=self._run, name="asrd-mediaservers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(HTTP_SECONDS + 5)
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ------------------------------------------------------------ the daemon loop's side

    def job_done(self, job: Job, view: Any) -> None:
        """Queue a refresh of the folders the job's sidecars are in (never for the API's private inbox)."""
        if getattr(view, "private", False) or not self.servers:
            return
        folders = {os.fsdecode(p.parent) for p in job.sidecars} or {os.fsdecode(job.path.parent)}
        self.queue(folders)

    def queue(self, folders: set[str]) -> None:
        now = self.clock()
        with self._lock:
            assert self._db is not None
            for index in range(len(self.servers)):
                for folder in sorted(folders):
                    # One row per server and folder: a pending one already covers this file.
                    self._db.execute("INSERT OR IGNORE INTO refresh (server, folder, not_before) VALUES (?, ?, ?)",
                                     (index, folder, now))
        self._wake.set()

    def pending(self) -> list[Refresh]:
        with self._lock:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT id, server, folder, attempts, not_before FROM refresh ORDER BY not_before, id").fetchall()
        return [Refresh(*row) for row in rows]

    # ------------------------------------------------------------ the sender thread

    def step(self, now: float) -> float | None:
        """Send every due refresh; when the next one is due (None: the queue is empty)."""
        for item in self.pending():
            if self._stop:
                return None
            if item.not_before > now:
                continue
            if item.server >= len(self.servers):
                self._delete(item)  # its server was removed from the config
                continue
            server = self.servers[item.server]
            try:
                self.sender.send(item.server, server, item.folder)
            except RefreshError as err:
                self._failed(item, now, str(err), server)
            else:
                log.info("%s at %s asked to refresh %s", server.kind, server.url, item.folder)
                self._delete(item)
        rest = self.pending()
        return min((r.not_before for r in rest), default=None)

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before the step: a refresh queued during it wakes the wait below
            if self._stop:
                return
            try:
                due = self.step(self.clock())
            except sqlite3.Error:
                log.exception("media-server queue")
                due = self.clock() + BACKOFF_BASE
            self._wake.wait(None if due is None else max(0.0, due - self.clock()))

    def _delete(self, item: Refresh) -> None:
        with self._lock:
            assert self._db is not None
            self._db.execute("DELETE FROM refresh WHERE id = ?", (item.id,))

    def _failed(self, item: Refresh, now: float, reason: str, server: MediaServerSettings) -> None:
        attempts = item.attempts + 1
        if attempts >= KEEP_ATTEMPTS:
            log.error("%s at %s: gave up refreshing %s after %d tries: %s", server.kind, server.url, item.folder,
                      attempts, reason)
            self._delete(item)
            return
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempts - 1))
        log.warning("%s at %s: cannot refresh %s (%s); trying again in %.0f s", server.kind, server.url,
                    item.folder, reason, delay)
        with self._lock:
            assert self._db is not None
            self._db.execute("UPDATE refresh SET attempts = ?, not_before = ?, last_error = ? WHERE id = ?",
                             (attempts, now + delay, reason, item.id))
