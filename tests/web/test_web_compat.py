"""The Bazarr- and OpenAI-compatible endpoints on a real daemon: real uvicorn, SQLite, the inline worker.

The OpenAI endpoint is driven by the real ``openai`` SDK; ``/asr`` and ``/detect-language`` by exactly
the requests Bazarr's Whisper provider sends (bazarr custom_libs/subliminal_patch/providers/whisperai.py,
``WhisperAIProvider.download_subtitle`` and ``detect_language``, read at commits 1029a81 and 920853d of
May 2025: a requests Session posting the audio as raw 16 kHz mono s16le PCM in the multipart field
``audio_file`` with ``encode=false``, no login header; newer versions add ``video_file``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import soundfile as sf

from asrd.config import load_settings
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobQuery, JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.notify import Delivery, Result
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.testing.inline_worker import InlineWorker
from tests.web.test_web_daemon import JFK, free_port

openai = pytest.importorskip("openai")


class ApiDaemon:
    def __init__(self, tmp_path: Path, notify: Sequence[dict[str, Any]] = (), **web: Any) -> None:
        self.port = free_port()
        self.state = tmp_path / "state"
        settings = load_settings(None, {
            "daemon": {"state_dir": str(self.state)},
            "web": {"enabled": True, "listen": f"127.0.0.1:{self.port}", **web},
            "api": {"asr": True, "openai": True},
            "notify": list(notify),
        })
        self.store = SqliteJobStore(self.state / "jobs.sqlite3")
        self.sent: list[Delivery] = []
        self.url = f"http://127.0.0.1:{self.port}"
        self.daemon = Daemon(settings, self.store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=None,
                             state_dir=self.state, spawn=InlineWorker, send=self._send)  # type: ignore[arg-type]

    def _send(self, deliveries: Sequence[Delivery]) -> list[Result]:
        self.sent += deliveries
        return [Result(d.id, True, True) for d in deliveries]

    def call(self, request: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run a blocking client call on a thread while this thread turns the daemon loop."""
        box: list[Any] = []
        thread = threading.Thread(target=lambda: box.append(_capture(request)))
        thread.start()
        end = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < end:
            self.daemon.step(time.time())
            thread.join(0.05)
        assert not thread.is_alive(), f"no answer: {self.store.counts()}"
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


def _capture(request: Callable[[], Any]) -> Any:
    try:
        return request()
    except BaseException as err:  # handed to the test's thread
        return err


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiDaemon]:
    d = ApiDaemon(tmp_path)
    d.daemon.start(time.time())
    yield d
    d.daemon.stop(time.time())
    d.store.close()


def pcm(path: Path) -> bytes:
    """What Bazarr's ffmpeg call makes of a file: -f s16le -acodec pcm_s16le -ac 1 -ar 16000."""
    import soxr

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, 16000)
    return np.asarray(np.clip(mono, -1, 1) * 32767, dtype="<i2").tobytes()


def test_openai_sdk_gets_a_transcript_from_a_durable_job(api: ApiDaemon) -> None:
    client = openai.OpenAI(base_url=api.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    with open(JFK, "rb") as f:
        text = api.call(lambda: client.audio.transcriptions.create(model="whatever", file=f, response_format="text"))
    assert isinstance(text, str) and text.strip()
    with open(JFK, "rb") as f:
        verbose = api.call(lambda: client.audio.transcriptions.create(
            model="x", file=("jfk.flac", f), language="ja", response_format="verbose_json", prompt="Kennedy"))
    # The request's language reached the recognizer (the fake tags what it was asked for).
    assert verbose.text.strip() and verbose.segments and verbose.language == "japanese"
    assert verbose.segments[-1].end <= verbose.duration + 0.5
    with open(JFK, "rb") as f:
        srt = api.call(lambda: client.audio.transcriptions.create(model="x", file=f, response_format="srt"))
    assert srt.startswith("1\n00:00:")
    # Durable jobs in the same queue, seen in status like any file, with the request beside each upload.
    done = api.store.search(JobQuery(states=(JobState.DONE,)))
    assert done.total == 3
    status = requests.get(api.url + "/api/status", timeout=5).json()
    assert status["queue"]["done"] == 3
    request_files = list((api.state / "api-inbox").glob("*.request.json"))
    assert len(request_files) == 3 and any('"Kennedy"' in p.read_text() for p in request_files)


def test_api_files_are_not_notified_unless_a_target_asks(tmp_path: Path) -> None:
    """Bazarr or a script gets its transcript in the answer: by default no message per request ([[notify]] api)."""
    d = ApiDaemon(tmp_path, notify=[{"url": "json://127.0.0.1:9/quiet"},
                                    {"url": "json://127.0.0.1:9/all", "api": True}])
    d.daemon.start(time.time())
    try:
        client = openai.OpenAI(base_url=d.url + "/v1", api_key="x", max_retries=0)
        with open(JFK, "rb") as f:
            assert d.call(lambda: client.audio.transcriptions.create(model="x", file=f, response_format="text"))
        end = time.monotonic() + 10
        while (not d.sent or d.store.notify_pending()) and time.monotonic() < end:
            d.daemon.step(time.time())
            time.sleep(0.05)
        assert [(s.url, s.event) for s in d.sent] == [("json://127.0.0.1:9/all", "done")]
        assert d.store.notify_pending() == {}
    finally:
        d.daemon.stop(time.time())
        d.store.close()


def test_openai_sdk_errors_are_readable(api: ApiDaemon) -> None:
    client = openai.OpenAI(base_url=api.url + "/v1", api_key="x", max_retries=0)
    with open(JFK, "rb") as f, pytest.raises(openai.BadRequestError, match="the model speaks"):
        api.call(lambda: client.audio.transcriptions.create(model="x", file=f, language="de"))
    assert not [p for p in (api.state / "api-inbox").iterdir()], "a refused upload leaves nothing behind"


def test_bazarr_whisper_provider_requests(api: ApiDaemon) -> None:
    out = pcm(JFK)
    session = requests.Session()
    session.headers["User-Agent"] = "Subliminal/2.1"
    endpoint = api.url.rstrip("/")
    r = api.call(lambda: session.post(f"{endpoint}/detect-language", params={"encode": "false", "video_file": {None}},
                                      files={"audio_file": out}, timeout=(5, 30)))
    assert r.status_code == 200, r.text
    assert r.json()["detected_language"] == "english" and r.json()["language_code"] == "en"
    params = {"task": "transcribe", "language": "en", "output": "srt", "encode": "false"}
    r = api.call(lambda: session.post(f"{endpoint}/asr", params=params, files={"audio_file": out}, timeout=(5, 30)))
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"1\r\n00:00:") or r.content.startswith(b"1\n00:00:")
    # Bazarr since 2025 adds the video's path as a set ({None} sends nothing); asrd shows its name only.
    video = "/media/Movies/Some Film (2020)/Some Film.mkv"
    named = api.call(lambda: session.post(f"{endpoint}/asr", params={**params, "video_file": {video}},
                                          files={"audio_file": out}, timeout=(5, 30)))
    assert named.status_code == 200 and named.content == r.content
    assert 'filename="Some_Film.srt"' in named.headers["Content-Disposition"]
    job_id = int(r.headers["X-Asrd-Job"])
    assert requests.get(f"{endpoint}/api/jobs/{int(named.headers['X-Asrd-Job'])}", timeout=5).json()["state"] == "done"
    # The upload was raw PCM: it became a WAV as long as the original audio (11 s).
    job = api.store.by_id(job_id)
    assert job is not None and job.path.suffix == ".wav"
    assert abs(sf.info(job.path).duration - sf.info(JFK).duration) < 0.01
    # Fetched again by id, as after a dropped connection.
    again = requests.get(f"{endpoint}/api/jobs/{job_id}/result", params={"format": "srt"}, timeout=5)
    assert again.content == r.content
    r = api.call(lambda: session.post(f"{endpoint}/asr", params={"task": "translate", "language": "de",
                                                                  "output": "srt", "encode": "false"},
                                      files={"audio_file": out}, timeout=(5, 30)))
    assert r.status_code == 400 and "translation" in r.json()["error"]


def test_a_dropped_connection_does_not_lose_the_job(api: ApiDaemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asrd.api")
    body = pcm(JFK)
    api.daemon.dispatcher.accepting = False  # the job waits in the queue while the client gives up
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.call(lambda: requests.post(f"{api.url}/asr", params={"output": "txt", "encode": "false"},
                                       files={"audio_file": body}, timeout=(5, 1.5)))
    (job,) = api.store.search(JobQuery()).jobs
    assert job.state is JobState.QUEUED
    end = time.monotonic() + 5  # the server stops waiting for a client that is gone (no coroutine left behind)
    while "hung up" not in caplog.text and time.monotonic() < end:
        time.sleep(0.05)
    assert f"the client of job {job.id} hung up" in caplog.text
    api.daemon.dispatcher.accepting = True
    end = time.monotonic() + 20
    while api.store.counts().get(JobState.DONE, 0) < 1 and time.monotonic() < end:
        api.daemon.step(time.time())
        time.sleep(0.05)
    txt = requests.get(f"{api.url}/api/jobs/{job.id}/result", params={"format": "txt"}, timeout=5)
    assert txt.status_code == 200 and txt.text.strip()


def test_token_is_needed_off_loopback_mode(tmp_path: Path) -> None:
    d = ApiDaemon(tmp_path, auth="token")
    d.daemon.start(time.time())
    try:
        token = (d.state / "web-token").read_text().strip()
        with open(JFK, "rb") as f:
            refused = openai.OpenAI(base_url=d.url + "/v1", api_key="wrong", max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                d.call(lambda: refused.audio.transcriptions.create(model="x", file=f))
        with open(JFK, "rb") as f:
            client = openai.OpenAI(base_url=d.url + "/v1", api_key=token, max_retries=0)
            assert d.call(lambda: client.audio.transcriptions.create(model="x", file=f)).text.strip()
    finally:
        d.daemon.stop(time.time())
        d.store.close()


def test_old_uploads_and_their_transcripts_expire(api: ApiDaemon) -> None:
    from asrd.control import apiinbox

    body = pcm(JFK)
    r = api.call(lambda: requests.post(f"{api.url}/asr", params={"output": "txt", "encode": "false"},
                                       files={"audio_file": body}, timeout=(5, 30)))
    job = api.store.by_id(int(r.headers["X-Asrd-Job"]))
    assert job is not None and len(job.sidecars) == 4 and all(p.exists() for p in job.sidecars)
    stale = api.state / "api-inbox" / ".asrd-tmp-0123.tmp"
    stale.write_bytes(b"half an upload")
    settings = api.daemon.settings
    assert apiinbox.expire(settings, time.time() + 3600) == 0 and not stale.exists()
    assert apiinbox.expire(settings, time.time() + 25 * 3600) == 1
    assert not job.path.exists() and not apiinbox.request_path(job.path).exists()
    assert not any(p.exists() for p in job.sidecars)
