"""POST /api/upload over the in-memory port: stored whole under a free name, or refused with nothing left."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asrd.config import load_settings
from asrd.media import TEMP_PREFIX

ORIGIN = "http://127.0.0.1:8765"
DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


def inbox_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "memos"
    folder.mkdir()
    return folder


@pytest.fixture
def up(inbox: Path) -> Any:
    """A client of an app whose daemon has one inbox, ``memos``, and a 2 MiB upload limit."""
    from starlette.testclient import TestClient

    from asrd.web.app import build_app
    from asrd.web.hub import Hub
    from asrd.web.security import Policy
    from asrd.web.twin import MemoryPort

    settings = load_settings(None, {"inbox": [{"path": str(inbox)}], "web": {"upload_max_mb": 2}})
    port = MemoryPort(settings)
    app = build_app(port, Hub(port.snapshot()), Policy("auto", frozenset()))
    client = TestClient(app, base_url=ORIGIN, follow_redirects=False)
    client.port = port  # type: ignore[attr-defined]
    client.app_state = app.state  # type: ignore[attr-defined]
    return client


def test_files_are_stored_whole_and_queued_at_once(up: Any, inbox: Path) -> None:
    one, two = (DATA / "jfk.flac").read_bytes(), (DATA / "asr_example.mp3").read_bytes()
    answer = up.post("/api/upload?inbox=memos", files=[("file", ("jfk.flac", one)), ("file", ("会议.mp3", two))])
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    assert doc["inbox"] == "memos"
    assert [(f["name"], f["stored"], f["size"]) for f in doc["files"]] == [
        ("jfk.flac", "jfk.flac", len(one)), ("会议.mp3", "会议.mp3", len(two))]
    assert (inbox / "jfk.flac").read_bytes() == one and (inbox / "会议.mp3").read_bytes() == two
    assert inbox_files(inbox) == ["jfk.flac", "会议.mp3"]  # no temp file left
    for f in doc["files"]:  # queued without waiting to settle: the job ids come back with the answer
        job = up.port.store.by_id(f["job_id"])
        assert job is not None and job.path == inbox.resolve() / f["stored"]


def test_an_existing_name_is_never_replaced(up: Any, inbox: Path) -> None:
    (inbox / "memo.wav").write_bytes(b"the user's own file")
    (inbox / "memo (1).wav").write_bytes(b"and another")
    answer = up.post("/api/upload?inbox=memos", files={"file": ("memo.wav", b"RIFF new")})
    assert answer.status_code == 201, answer.text
    assert answer.json()["files"][0]["stored"] == "memo (2).wav"
    assert (inbox / "memo.wav").read_bytes() == b"the user's own file"
    assert (inbox / "memo (1).wav").read_bytes() == b"and another"
    assert (inbox / "memo (2).wav").read_bytes() == b"RIFF new"


@pytest.mark.parametrize("name", ["../escape.wav", "sub/memo.wav", "..\\escape.wav", "/etc/memo.wav", "..", ""])
def test_a_name_with_path_components_is_refused(up: Any, inbox: Path, name: str) -> None:
    answer = up.post("/api/upload?inbox=memos", files={"file": (name, b"RIFF")})
    assert answer.status_code == 400, answer.text
    assert inbox_files(inbox) == [] and inbox_files(inbox.parent) == ["memos"]


@pytest.mark.parametrize(("name", "status"), [
    (".hidden.wav", 400), ("memo.wav.part", 400), (TEMP_PREFIX + "x.wav", 400), ("._memo.wav", 400),
    ("notes.txt", 415), ("memo.srt", 415),
])
def test_names_the_watcher_would_skip_are_refused(up: Any, inbox: Path, name: str, status: int) -> None:
    answer = up.post("/api/upload?inbox=memos", files={"file": (name, b"RIFF")})
    assert answer.status_code == status, answer.text
    assert inbox_files(inbox) == []


def test_control_characters_in_a_name_are_refused(up: Any, inbox: Path) -> None:
    body = b"--B\r\nContent-Disposition: form-data; name=file; filename=\"a\x07b.wav\"\r\n\r\nRIFF\r\n--B--\r\n"
    answer = up.post("/api/upload?inbox=memos", content=body,
                     headers={"content-type": "multipart/form-data; boundary=B"})
    assert answer.status_code == 400 and "control characters" in answer.json()["error"]
    assert inbox_files(inbox) == []


def test_one_bad_file_keeps_the_whole_request_out(up: Any, inbox: Path) -> None:
    answer = up.post("/api/upload?inbox=memos", files=[("file", ("good.wav", b"RIFF" * 1000)),
                                                        ("file", ("../bad.wav", b"RIFF"))])
    assert answer.status_code == 400
    assert inbox_files(inbox) == []


def test_over_the_limit_is_refused_before_and_while_reading(up: Any, inbox: Path) -> None:
    big = b"\0" * (2 * 1024 * 1024 + 1)
    answer = up.post("/api/upload?inbox=memos", files={"file": ("big.wav", big)})
    assert answer.status_code == 413 and "upload_max_mb" in answer.json()["error"]
    assert inbox_files(inbox) == []

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        yield b"--B\r\nContent-Disposition: form-data; name=file; filename=big.wav\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--B--\r\n"

    answer = up.post("/api/upload?inbox=memos", content=chunked(),
                     headers={"content-type": "multipart/form-data; boundary=B"})
    assert answer.status_code == 413, answer.text
    assert inbox_files(inbox) == []


def test_a_full_disk_is_refused_before_reading(up: Any, inbox: Path) -> None:
    up.app_state.free_bytes = lambda folder: 10 * 2**20  # less than the upload plus the 64 MiB reserve
    answer = up.post("/api/upload?inbox=memos", files={"file": ("memo.wav", b"RIFF")})
    assert answer.status_code == 507 and "free" in answer.json()["error"]
    assert inbox_files(inbox) == []


def test_an_inbox_asrd_may_not_write_to_is_refused(up: Any, inbox: Path) -> None:
    # chattr +i stops even root (the tests run as root in CI, where a chmod would not).
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(inbox)], capture_output=True).returncode:
        if os.geteuid() == 0:
            pytest.skip("cannot make a folder unwritable for root here (no chattr +i on this file system)")
        inbox.chmod(0o555)
    try:
        answer = up.post("/api/upload?inbox=memos", files={"file": ("memo.wav", b"RIFF")})
    finally:
        subprocess.run(["chattr", "-i", str(inbox)], capture_output=True)
        inbox.chmod(0o755)
    assert answer.status_code == 403 and "write permission" in answer.json()["error"]
    assert inbox_files(inbox) == []


def test_unknown_inbox_wrong_type_and_cross_site_are_refused(up: Any, inbox: Path) -> None:
    answer = up.post("/api/upload?inbox=other", files={"file": ("memo.wav", b"RIFF")})
    assert answer.status_code == 404 and "memos" in answer.json()["error"]
    assert up.post("/api/upload?inbox=memos", content=b"RIFF", headers={"content-type": "audio/wav"}).status_code == 415
    answer = up.post("/api/upload?inbox=memos", files={"file": ("memo.wav", b"RIFF")},
                     headers={"origin": "http://evil.example", "sec-fetch-site": "cross-site"})
    assert answer.status_code == 403
    assert inbox_files(inbox) == []


def test_the_page_offers_the_inboxes(up: Any) -> None:
    html = up.get("/upload").text
    assert "<option selected>memos</option>" in html and 'data-limit-mb="2"' in html


def test_an_interrupted_upload_leaves_nothing(inbox: Path) -> None:
    """A real server: the client sends half of the body and hangs up; the temp file goes with it."""
    from asrd.web.app import build_app
    from asrd.web.hub import Hub
    from asrd.web.security import Policy
    from asrd.web.server import WebServer
    from asrd.web.twin import MemoryPort

    port = MemoryPort(load_settings(None, {"inbox": [{"path": str(inbox)}]}))
    hub = Hub(port.snapshot())
    server = WebServer(build_app(port, hub, Policy("auto", frozenset())), hub, "127.0.0.1", 0)
    server.start()
    try:
        assert server.wait_started()
        head = b"--B\r\nContent-Disposition: form-data; name=file; filename=memo.wav\r\n\r\n"
        with socket.create_connection(server.bound) as conn:
            conn.sendall(b"POST /api/upload?inbox=memos HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 10000000\r\n\r\n" + head)
            conn.sendall(b"\1" * 2_000_000)
            end = time.monotonic() + 10
            while not any(p.name.startswith(TEMP_PREFIX) for p in inbox.iterdir()):  # it is being written
                assert time.monotonic() < end, "the upload never reached the inbox"
                time.sleep(0.02)
        end = time.monotonic() + 10
        while inbox_files(inbox):
            assert time.monotonic() < end, f"left behind: {inbox_files(inbox)}"
            time.sleep(0.02)
        assert port.store.get(inbox / "memo.wav") is None
    finally:
        server.stop()


def test_leftovers_of_a_killed_daemon_are_swept(inbox: Path) -> None:
    from asrd.web.uploads import UPLOAD_TEMP, sweep_leftovers

    old = inbox / f"{UPLOAD_TEMP}dead.tmp"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 60, time.time() - 60))
    (inbox / "memo.wav").write_bytes(b"RIFF")
    sweep_leftovers(load_settings(None, {"inbox": [{"path": str(inbox)}]}), time.time() - 1)
    assert inbox_files(inbox) == ["memo.wav"]


def test_options_for_these_files_are_kept_beside_each(up: Any, inbox: Path) -> None:
    import json

    (inbox / "memo.wav").write_bytes(b"the user's own file")
    answer = up.post("/api/upload?inbox=memos&language=en&itn=false&hotwords=asrd,%20FunASR&formats=srt,vtt",
                     files={"file": ("memo.wav", b"RIFF new")})
    assert answer.status_code == 201, answer.text
    assert answer.json()["files"][0]["stored"] == "memo (1).wav"
    assert inbox_files(inbox) == ["memo (1).wav", "memo (1).wav.asrd-options.json", "memo.wav"]
    stored = json.loads((inbox / "memo (1).wav.asrd-options.json").read_text())
    assert stored == {"language": "en", "itn": False, "hotwords": ["asrd", "FunASR"], "formats": ["srt", "vtt"]}


@pytest.mark.parametrize("query", ["language=klingon", "itn=maybe", "formats=srt,docx"])
def test_bad_options_are_refused_before_anything_is_written(up: Any, inbox: Path, query: str) -> None:
    answer = up.post(f"/api/upload?inbox=memos&{query}", files={"file": ("memo.wav", b"RIFF")})
    assert answer.status_code == 400 and query.split("=")[0] in answer.json()["error"]
    assert inbox_files(inbox) == []
