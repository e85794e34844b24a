"""Media-server refresh against local stand-ins that record each request as Jellyfin, Emby and Plex
document them (Jellyfin/Emby: POST /Library/Media/Updated with an X-Emby-Token; Plex: GET
/library/sections/{id}/refresh?path=...&X-Plex-Token=...), on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from asrd.config import MediaServerSettings, load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.mediaservers import BACKOFF_BASE, MediaRefresh, server_path
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker

JFK = Path(__file__).resolve().parents[1] / "data" / "audio" / "jfk.flac"
PLEX_SECTIONS = b"""<?xml version="1.0" encoding="UTF-8"?>
<MediaContainer size="2"><Directory key="1" type="movie" title="Movies"><Location id="1" path="/data/movies"/>
</Directory><Directory key="2" type="show" title="TV"><Location id="2" path="/data/tv"/></Directory></MediaContainer>"""


class StandIn:
    """A recording HTTP server; ``status`` is what it answers (503 plays a server that is down)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 204
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                outer.requests.append({"method": self.command, "path": parts.path, "query": parse_qs(parts.query),
                                       "headers": dict(self.headers), "body": body})
                data = PLEX_SECTIONS if parts.path == "/library/sections" else b""
                self.send_response(200 if data else outer.status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.close()


def servers(url: str) -> list[MediaServerSettings]:
    common: dict[str, Any] = {"url": url, "path_map": {"/srv/media": "/data"}}
    return [MediaServerSettings(kind="jellyfin", token="jf-secret", **common),
            MediaServerSettings(kind="emby", token="emby-secret", **common),
            MediaServerSettings(kind="plex", token="plex-secret", **common)]


def test_each_server_gets_the_documented_request(tmp_path: Path, stand_in: StandIn,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refresh = MediaRefresh(tmp_path, servers(stand_in.url))
    refresh.start(thread=False)
    refresh.queue({"/srv/media/tv/Show/Season 1"})
    assert refresh.step(time.time()) is None and not refresh.pending()
    jf, emby, sections, plex = stand_in.requests
    for req, token in ((jf, "jf-secret"), (emby, "emby-secret")):
        assert (req["method"], req["path"]) == ("POST", "/Library/Media/Updated")
        assert req["headers"]["X-Emby-Token"] == token and req["headers"]["Content-Type"] == "application/json"
        assert json.loads(req["body"]) == {"Updates": [{"Path": "/data/tv/Show/Season 1", "UpdateType": "Modified"}]}
    assert (sections["path"], sections["query"]) == ("/library/sections", {"X-Plex-Token": ["plex-secret"]})
    assert (plex["method"], plex["path"]) == ("GET", "/library/sections/2/refresh")
    assert plex["query"] == {"path": ["/data/tv/Show/Season 1"], "X-Plex-Token": ["plex-secret"]}
    assert "secret" not in caplog.text
    refresh.stop()


def test_a_server_that_is_down_is_retried_with_backoff_across_a_restart(tmp_path: Path, stand_in: StandIn,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    jellyfin = [MediaServerSettings(kind="jellyfin", url=stand_in.url, token="jf-secret")]
    stand_in.status = 503
    now = 1000.0
    refresh = MediaRefresh(tmp_path, jellyfin, clock=lambda: now)
    refresh.start(thread=False)
    refresh.queue({"/srv/a", "/srv/b"})
    refresh.queue({"/srv/a"})  # already pending: one request covers both files
    assert refresh.step(now) == now + BACKOFF_BASE
    assert refresh.step(now + 1) == now + BACKOFF_BASE and len(stand_in.requests) == 2  # not due yet
    assert refresh.step(now + BACKOFF_BASE) == now + 3 * BACKOFF_BASE  # doubled
    assert "HTTP 503" in caplog.text and "jf-secret" not in caplog.text
    refresh.stop()
    stand_in.status = 204
    again = MediaRefresh(tmp_path, jellyfin)  # a daemon restart: nothing lost
    again.start(thread=False)
    assert [r.folder for r in again.pending()] == ["/srv/a", "/srv/b"]
    assert again.step(now + 3 * BACKOFF_BASE) is None and not again.pending()
    assert [json.loads(r["body"])["Updates"][0]["Path"] for r in stand_in.requests[-2:]] == ["/srv/a", "/srv/b"]
    again.stop()


def test_path_map_takes_the_longest_prefix() -> None:
    server = MediaServerSettings(kind="emby", url="http://x", path_map={"/srv": "/a", "/srv/media/": "/b/"})
    assert server_path(server, "/srv/media/tv") == "/b/tv"
    assert server_path(server, "/srv/other") == "/a/other"
    assert server_path(server, "/srvx/y") == "/srvx/y"


def test_the_daemon_asks_for_a_refresh_after_writing_subtitles(tmp_path: Path, stand_in: StandIn) -> None:
    inbox = tmp_path / "media"
    inbox.mkdir()
    settings = load_settings(None, {
        "daemon": {"state_dir": str(tmp_path / "state")},
        "inbox": [{"path": str(inbox), "settle_seconds": 0.2}],
        "mediaserver": [{"kind": "jellyfin", "url": stand_in.url, "token": "jf-secret"}],
    })
    store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
    daemon = Daemon(settings, store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                    state_dir=tmp_path / "state", spawn=InlineWorker)  # type: ignore[arg-type]
    daemon.start(time.time())
    try:
        shutil.copy(JFK, inbox / "jfk.flac")
        end = time.monotonic() + 20
        while not stand_in.requests and time.monotonic() < end:
            daemon.step(time.time())
            time.sleep(0.05)
        assert store.counts()[JobState.DONE] == 1
        (req,) = stand_in.requests
        assert json.loads(req["body"])["Updates"][0]["Path"] == str(inbox.resolve())
    finally:
        daemon.stop(time.time())
        store.close()
