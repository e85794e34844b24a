"""Endpoints other tools already speak, backed by durable jobs of the API inbox (``asrd.control.apiinbox``).

- ``POST /asr`` and ``POST /detect-language``: whisper-asr-webservice's API, which Bazarr's Whisper provider
  calls (bazarr custom_libs/subliminal_patch/providers/whisperai.py: multipart ``audio_file``, query ``task``,
  ``language``, ``output``, ``encode=false`` with raw 16 kHz s16le PCM).
- ``POST /v1/audio/transcriptions`` (and ``GET /v1/models``): OpenAI's API, as the ``openai`` SDK sends it.

Each request streams its upload to disk, queues it as a job through the daemon loop (the same queue and
batching as any file) and waits for the job without holding a thread. A dropped connection leaves the job
going; its result stays at ``/api/jobs/{id}/result?format=srt``. Every answer names the job
(``X-Asrd-Job``). The dashboard's guard (Host, CSRF, token) applies to these routes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asrd.config import LANGUAGES, Settings
from asrd.control import apiinbox
from asrd.control.actions import Action, ActionKind, ActionRefused
from asrd.control.jobs import Job, JobState
from asrd.web.apiupload import PCM_RATE, UploadError, receive
from asrd.web.port import DaemonPort, Snapshot

log = logging.getLogger("asrd.api")

SETTLED = (JobState.DONE, JobState.QUARANTINED)
RECHECK_SECONDS = 30.0  # a waiting request looks at its job at least this often (only while one waits)
DETECT_SECONDS = 30  # /detect-language listens to the first 30 s, as Whisper does
# Whisper's language names (what whisper-asr-webservice answers in detected_language) for asrd's codes.
LANGUAGE_NAMES = {"zh": "chinese", "en": "english", "yue": "cantonese", "ja": "japanese", "ko": "korean"}
MEDIA_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain",
               "tsv": "text/tab-separated-values", "json": "application/json"}


class Waiter:
    """Wakes the requests waiting for jobs whenever the daemon publishes a change (from its thread)."""

    def __init__(self, port: DaemonPort) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        port.listen(self._changed)

    def _changed(self, _snap: Snapshot) -> None:
        with self._lock:
            waiting = list(self._waiting)
        for loop, event in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def wait(self, port: DaemonPort, job_id: int, seconds: float, request: Request | None = None) -> Job | None:
        """The job once done or quarantined; its last state when ``seconds`` ran out or the client hung up
        (``request``); None if it vanished. The job itself goes on either way."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        gone: list[bool] = []
        watcher = asyncio.ensure_future(_hang_up(request, gone, event)) if request is not None else None
        with self._lock:
            self._waiting.add(entry)
        try:
            end = time.monotonic() + seconds
            while True:
                event.clear()
                job = port.jobs.by_id(job_id)
                left = end - time.monotonic()
                if job is None or job.state in SETTLED or left <= 0:
                    return job
                if gone:
                    log.info("the client of job %d hung up; the job goes on (/api/jobs/%d/result)", job_id, job_id)
                    return job
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, RECHECK_SECONDS))
        finally:
            with self._lock:
                self._waiting.discard(entry)
            if watcher is not None:
                watcher.cancel()


async def _hang_up(request: Request, gone: list[bool], event: asyncio.Event) -> None:
    """Once the body is read, the server's next message is the client hanging up (or the response done)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.append(True)
    event.set()


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _settings(request: Request) -> Settings:
    return _port(request).settings


def sidecar(job: Job, fmt: str) -> Path | None:
    return next((p for p in job.sidecars if p.suffix == f".{fmt}"), None)


def transcript_doc(job: Job) -> dict[str, Any]:
    path = sidecar(job, "json")
    if path is None:
        raise OSError(f"job {job.id} has no .json sidecar")
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _plain(path: Path | None) -> str:
    if path is None:
        raise OSError("the sidecar is missing")
    return path.read_text(encoding="utf-8")


async def _take(request: Request, api: str, file_field: str, *, raw_pcm: bool = False,
                keep_bytes: int | None = None, fields_from_query: bool = False) -> tuple[int, dict[str, str]]:
    """Stream the upload into the API inbox and queue it; its job id and the form fields."""
    port, settings = _port(request), _settings(request)
    folder = apiinbox.inbox_dir(settings)
    upload = await receive(request.stream(), request.headers.get("content-type", ""), folder, file_field,
                           raw_pcm=raw_pcm, max_bytes=settings.api.max_upload_mb << 20, keep_bytes=keep_bytes)
    if upload.path is None:
        raise UploadError(f"the form has no {file_field!r} file")
    fields = dict(request.query_params) if fields_from_query else upload.fields
    try:
        language = _language(fields.get("language") or "auto")
        prompt = fields.get("prompt") or fields.get("initial_prompt") or ""
        hotwords = tuple(w.strip() for w in prompt.replace("，", ",").split(",") if w.strip())
        # Bazarr names the video it took the audio from (video_file, newer versions): a name to show, never opened.
        shown = Path(fields.get("video_file") or upload.filename or upload.path.name).name
        apiinbox.ApiRequest(api, shown, language, hotwords, time.time()).save(upload.path)
    except UploadError:
        upload.path.unlink(missing_ok=True)
        raise
    try:
        outcome = await asyncio.wait_for(
            asyncio.wrap_future(port.submit(Action(ActionKind.ENQUEUE, who=f"{api} API", path=upload.path))), 30)
    except ActionRefused as err:
        raise UploadError(str(err), 409) from None
    except asyncio.TimeoutError:
        raise UploadError("the daemon did not queue the upload in time; it will be found by the next scan",
                          503) from None
    await asyncio.to_thread(apiinbox.expire, settings)
    log.info("%s API: %s (%d bytes) is job %s", api, upload.filename or upload.path.name, upload.size, outcome)
    return int(outcome), fields


def _language(value: str) -> str:
    value = value.strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value not in LANGUAGES:
        raise UploadError(f"language {value!r}: the model speaks {', '.join(x for x in LANGUAGES if x != 'auto')} "
                          "(or leave it out to detect it)")
    return value


async def _finished(request: Request, job_id: int) -> Job | Response:
    """Wait for the job: the finished job, or the answer to give when it failed or takes too long."""
    waiter: Waiter = request.app.state.api_waiter
    job = await waiter.wait(_port(request), job_id, _settings(request).api.wait_seconds, request)
    headers = {"X-Asrd-Job": str(job_id), "Location": f"/api/jobs/{job_id}"}
    if job is None:
        return JSONResponse({"error": f"job {job_id} was forgotten"}, 410, headers=headers)
    if job.state is JobState.QUARANTINED:
        return JSONResponse({"error": f"transcription failed: {job.last_error}", "job": job_id}, 422, headers=headers)
    if job.state is not JobState.DONE:
        return JSONResponse({"job": job_id, "state": job.state.value, "result": f"/api/jobs/{job_id}/result"}, 202,
                            headers=headers)
    return job


def _refused(err: UploadError, openai: bool = False) -> Response:
    if openai:  # the shape the OpenAI SDK reads its message from
        return JSONResponse({"error": {"message": str(err), "type": "invalid_request_error", "param": None,
                                       "code": None}}, err.status)
    return JSONResponse({"error": str(err)}, err.status)


# ---------------------------------------------------------------- whisper-asr-webservice (Bazarr)

def whisper_json(doc: dict[str, Any]) -> dict[str, Any]:
    segments = [{"id": i, "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"], "tokens": [],
                 "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
                for i, s in enumerate(doc.get("segments", []))]
    return {"text": " ".join(s["text"] for s in segments).strip(), "segments": segments,
            "language": doc.get("language")}


def whisper_tsv(doc: dict[str, Any]) -> str:
    rows = ["start\tend\ttext"]
    for s in doc.get("segments", []):
        text = s["text"].replace("\t", " ").replace("\n", " ").strip()
        rows.append(f"{round(s['start'] * 1000)}\t{round(s['end'] * 1000)}\t{text}")
    return "\n".join(rows) + "\n"


async def asr(request: Request) -> Response:
    query = request.query_params
    task = query.get("task", "transcribe")
    output = query.get("output", "txt")
    if task != "transcribe":
        return _refused(UploadError(f"task {task!r}: asrd transcribes only (no translation)"))
    if output not in MEDIA_TYPES:
        return _refused(UploadError(f"output {output!r}: one of {', '.join(MEDIA_TYPES)}"))
    raw = query.get("encode", "true").lower() == "false"
    try:
        job_id, _ = await _take(request, "asr", "audio_file", raw_pcm=raw, fields_from_query=True)
    except UploadError as err:
        return _refused(err)
    job = await _finished(request, job_id)
    if isinstance(job, Response):
        return job
    try:
        if output in ("srt", "vtt", "txt"):
            body = _plain(sidecar(job, output))
        elif output == "tsv":
            body = whisper_tsv(transcript_doc(job))
        else:
            body = json.dumps(whisper_json(transcript_doc(job)), ensure_ascii=False)
    except (OSError, ValueError) as err:
        return JSONResponse({"error": f"the transcript of job {job_id} cannot be read: {err}"}, 500)
    asked = apiinbox.ApiRequest.load(job.path)
    stem = Path(asked.filename if asked is not None else job.path.name).stem
    return Response(body, media_type=MEDIA_TYPES[output], headers={
        "Asr-Engine": "asrd", "X-Asrd-Job": str(job_id),
        "Content-Disposition": f'attachment; filename="{_safe(stem)}.{output}"'})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "audio"


async def detect_language(request: Request) -> Response:
    raw = request.query_params.get("encode", "true").lower() == "false"
    try:
        # Raw PCM can be cut at 30 s on the way in; an encoded file is kept whole (it is not decoded here).
        job_id, _ = await _take(request, "asr", "audio_file", raw_pcm=raw,
                                keep_bytes=DETECT_SECONDS * PCM_RATE * 2 if raw else None, fields_from_query=True)
    except UploadError as err:
        return _refused(err)
    job = await _finished(request, job_id)
    if isinstance(job, Response):
        return job
    try:
        doc = transcript_doc(job)
    except (OSError, ValueError) as err:
        return JSONResponse({"error": f"the transcript of job {job_id} cannot be read: {err}"}, 500)
    weight: dict[str, float] = {}
    for s in doc.get("segments", []):
        if s.get("language"):
            weight[s["language"]] = weight.get(s["language"], 0.0) + s["end"] - s["start"]
    code = doc.get("language") or "en"
    confidence = weight.get(code, 0.0) / sum(weight.values()) if weight else 0.0
    return JSONResponse({"detected_language": LANGUAGE_NAMES.get(code, code), "language_code": code,
                         "confidence": round(confidence, 3)}, headers={"X-Asrd-Job": str(job_id)})


# ---------------------------------------------------------------- OpenAI

OPENAI_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


async def transcriptions(request: Request) -> Response:
    try:
        job_id, fields = await _take(request, "openai", "file")
    except UploadError as err:
        return _refused(err, openai=True)
    fmt = fields.get("response_format") or "json"
    if fmt not in OPENAI_FORMATS:  # checked after the upload: the field may follow the file in the form
        return _refused(UploadError(f"response_format {fmt!r}: one of {', '.join(OPENAI_FORMATS)} (job {job_id} "
                                    "goes on anyway)"), openai=True)
    job = await _finished(request, job_id)
    if isinstance(job, Response):
        return job
    headers = {"X-Asrd-Job": str(job_id)}
    try:
        if fmt in ("srt", "vtt"):
            return PlainTextResponse(_plain(sidecar(job, fmt)), headers=headers)
        doc = transcript_doc(job)
    except (OSError, ValueError) as err:
        return _refused(UploadError(f"the transcript of job {job_id} cannot be read: {err}", 500), openai=True)
    text = " ".join(s["text"] for s in doc.get("segments", [])).strip()
    if fmt == "text":
        return PlainTextResponse(text + "\n", headers=headers)
    if fmt == "json":
        return JSONResponse({"text": text}, headers=headers)
    verbose = whisper_json(doc)
    code = doc.get("language")
    return JSONResponse({"task": "transcribe", "language": LANGUAGE_NAMES.get(code or "", code or "unknown"),
                         "duration": doc.get("duration", 0.0), "text": text, "segments": verbose["segments"]},
                        headers=headers)


async def models(request: Request) -> Response:
    name = _settings(request).model.name
    return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "asrd"}]})


# ---------------------------------------------------------------- results by job id

async def result(request: Request) -> Response:
    """A finished job's transcript in one format (txt, srt, vtt, json), e.g. after a dropped connection."""
    job_id = request.path_params["job_id"]
    job = _port(request).jobs.by_id(job_id)
    if job is None:
        return JSONResponse({"error": f"no job {job_id}"}, 404)
    fmt = request.query_params.get("format", "txt")
    if job.state is not JobState.DONE:
        return JSONResponse({"job": job_id, "state": job.state.value, "reason": job.last_error}, 409)
    path = sidecar(job, fmt)
    if path is None:
        return JSONResponse({"error": f"job {job_id} has no .{fmt} sidecar"}, 404)
    try:
        body = path.read_bytes()
    except OSError as err:
        return JSONResponse({"error": f"{path.name}: {err.strerror}"}, 410)
    return Response(body, media_type=MEDIA_TYPES.get(fmt, "text/plain") + "; charset=utf-8")


def routes(settings: Settings) -> list[Route]:
    found = [Route("/api/jobs/{job_id:int}/result", result)]
    if settings.api.asr:
        found += [Route("/asr", asr, methods=["POST"]), Route("/detect-language", detect_language, methods=["POST"])]
    if settings.api.openai:
        found += [Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]), Route("/v1/models", models)]
    return found
