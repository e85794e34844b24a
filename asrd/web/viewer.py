"""The transcript viewer: a job's cues (from its .json sidecar, else the library) synced to its original,
subtitle-rule warnings per cue, downloads by job id and format, and a streamed zip of many transcripts.

Clients name a job id and a format, never a path: only files recorded on the job are served.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asrd.control.jobs import Job, JobState
from asrd.control.library import LibraryQuery, json_sidecar
from asrd.media import SIDECAR_FORMATS
from asrd.output.cuerules import CueRules, check
from asrd.records import SAMPLE_RATE, Cue
from asrd.web.api import BadRequest
from asrd.web.editor import state as edit_state
from asrd.web.i18n import rule_label
from asrd.web.library import library_query, seconds
from asrd.web.pages import page
from asrd.web.port import DaemonPort
from asrd.web.views import job_doc

MAX_JSON_BYTES = 64 * 1024 * 1024  # a .json sidecar larger than this is not parsed for the viewer
CHUNK = 256 * 1024
_TYPES = {"txt": "text/plain; charset=utf-8", "srt": "application/x-subrip; charset=utf-8",
          "vtt": "text/vtt; charset=utf-8", "json": "application/json"}
VIDEO = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".f4v", ".ts", ".mts",
                   ".m2ts", ".mpg", ".mpeg", ".3gp", ".3g2", ".asf", ".vob"})


def _port(request: Request) -> DaemonPort:
    port: DaemonPort = request.app.state.port
    return port


def _regular(path: Path) -> os.stat_result | None:
    """The file's stat if it is a regular file (not a link or a device put in its place), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _samples(value: Any) -> int:
    return round(float(value) * SAMPLE_RATE)


def _from_json(path: Path) -> dict[str, Any] | None:
    st = _regular(path)
    if st is None or st.st_size > MAX_JSON_BYTES:
        return None
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("cues"), list) else None


def transcript_doc(port: DaemonPort, job: Job) -> dict[str, Any] | None:
    """Cues with times in seconds, their tokens where known, and the subtitle rules each breaks."""
    side = json_sidecar(job.sidecars)
    doc = _from_json(side) if side is not None else None
    cues: list[Cue] = []
    tokens: list[dict[str, Any]] = []
    language = None
    if doc is not None:
        try:
            for c in doc["cues"]:
                cues.append(Cue(_samples(c["start"]), _samples(c["end"]), str(c["text"]),
                                _samples(c.get("speech_start", c["start"])), _samples(c.get("speech_end", c["end"]))))
            for seg in doc.get("segments") or []:
                tokens += [{"text": str(t["text"]), "start": float(t["start"]), "end": float(t["end"])}
                           for t in seg.get("tokens") or []]
            language = doc.get("language")
        except (KeyError, TypeError, ValueError, AttributeError):
            cues, tokens, doc = [], [], None
    record = port.jobs.edited(job.id)  # a person's saved corrections (asrd.web.editor)
    if doc is None:  # no readable .json: the library has the same cues (no tokens, no speech spans)
        entry = port.jobs.library.get(job.id)
        if entry is None:
            return None
        cues = [Cue(c.start, c.end, c.text) for c in entry.cues] if record is None else list(record.cues)
        language = entry.summary.language or None
    warnings: dict[int, list[dict[str, str]]] = {}
    for v in check(cues, CueRules.from_settings(port.settings.subtitles)):
        warnings.setdefault(v.index, []).append({"rule": v.rule, "label": rule_label(v.rule), "detail": v.detail})
    out = []
    for i, cue in enumerate(cues):
        start, end = seconds(cue.start), seconds(cue.end)
        mine = [t for t in tokens if start <= t["start"] < end]
        if "".join(t["text"] for t in mine).replace(" ", "") != "".join(cue.text.split()):
            mine = []  # tokens that do not spell the cue (an edited cue, say) would show other words
        out.append({"index": i, "start": start, "end": end, "text": cue.text, "warnings": warnings.get(i, []),
                    "tokens": mine})
    return {"job_id": job.id, "name": job.path.name, "language": language, "source": "json" if doc else "library",
            "cues": out, "warnings": sum(len(w) for w in warnings.values())}


def _job(request: Request) -> Job | None:
    return _port(request).jobs.by_id(request.path_params["job_id"])


async def transcript_api(request: Request) -> Response:
    job = _job(request)
    if job is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    doc = transcript_doc(_port(request), job)
    if doc is None:
        return JSONResponse({"error": f"{job.path.name} has no transcript yet ({job.state.value})"}, 404)
    return JSONResponse(doc)


async def viewer(request: Request) -> Response:
    port = _port(request)
    job = _job(request)
    if job is None:
        return page(request, "missing.html", 404, what=f"no job {request.path_params['job_id']}")
    doc = transcript_doc(port, job)
    formats = [f for f in SIDECAR_FORMATS if any(p.suffix == "." + f for p in job.sidecars)]
    return page(request, "viewer.html", job=job_doc(job, port.snapshot()), doc=doc, formats=formats,
                video=job.path.suffix.lower() in VIDEO, edit=edit_state(port, job))


async def sidecar(request: Request) -> Response:
    """A job's sidecar by format (txt srt vtt json), or its original (``original``), as a download."""
    job = _job(request)
    fmt = request.path_params["fmt"]
    if job is None:
        return JSONResponse({"error": f"no job {request.path_params['job_id']}"}, 404)
    if fmt == "original":
        path, kind = job.path, "application/octet-stream"
    elif fmt in SIDECAR_FORMATS:
        found = next((p for p in job.sidecars if p.suffix == "." + fmt), None)
        if found is None:
            return JSONResponse({"error": f"{job.path.name} has no .{fmt} sidecar"}, 404)
        path, kind = found, _TYPES[fmt]
    else:
        return JSONResponse({"error": f"unknown format {fmt!r}; one of {', '.join(SIDECAR_FORMATS)}, original"}, 400)
    st = _regular(path)
    if st is None:
        return JSONResponse({"error": f"{path.name} is no longer there (or not a regular file)"}, 410)
    return FileResponse(path, media_type=kind, stat_result=st, filename=path.name)


class _Pipe:
    """A write-only, unseekable file for ``zipfile``: what is written is taken out in pieces to stream."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, *args: object) -> int:
        raise OSError("not seekable")  # zipfile then writes data descriptors instead of going back

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def _arcname(job: Job, path: Path, inbox: str) -> str:
    try:  # the file's place under its inbox, so same-named files in subfolders stay apart
        rel = path.relative_to(job.inbox)
    except ValueError:
        rel = Path(path.name)
    return "/".join([inbox, *rel.parts])


def zip_stream(files: Iterator[tuple[str, Path]]) -> Iterator[bytes]:
    """A zip of ``files`` (archive name, path), produced piece by piece: memory stays flat with size."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in files:
            st = _regular(path)
            if st is None:
                continue
            info = zipfile.ZipInfo.from_file(path, arcname)
            info.compress_type = zipfile.ZIP_DEFLATED if path.suffix in (".txt", ".srt", ".vtt", ".json") \
                else zipfile.ZIP_STORED
            try:
                with open(path, "rb") as src, zf.open(info, "w", force_zip64=st.st_size > 2**31) as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        yield pipe.take()
            except OSError:
                continue  # vanished or unreadable since it was listed: left out
            yield pipe.take()
    yield pipe.take()


async def export_zip(request: Request) -> Response:
    """``GET /api/export.zip?inbox=&since=&until=[&originals=1]``: the sidecars of every finished transcript
    chosen (the library's filters), streamed as one zip."""
    port = _port(request)
    try:
        query, _, _ = library_query(request)
    except BadRequest as err:
        return JSONResponse({"error": str(err)}, 400)
    originals = request.query_params.get("originals") in ("1", "true", "yes")

    def files() -> Iterator[tuple[str, Path]]:
        offset = 0
        while True:
            listed = port.jobs.library.browse(LibraryQuery(**{**query.__dict__, "text": "", "limit": 500,
                                                              "offset": offset}))
            for s in listed.summaries:
                job = port.jobs.by_id(s.job_id)
                if job is None or job.state is not JobState.DONE:
                    continue
                name = Path(s.inbox).name or "inbox"
                for path in (*job.sidecars, *((job.path,) if originals else ())):
                    yield _arcname(job, path, name), path
            offset += len(listed.summaries)
            if not listed.summaries or offset >= listed.total:
                return

    label = "-".join(filter(None, ["asrd", request.query_params.get("inbox"), request.query_params.get("since"),
                                   request.query_params.get("until")]))
    return StreamingResponse(zip_stream(files()), media_type="application/zip", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(label)}.zip", "Cache-Control": "no-store"})


ROUTES = [
    Route("/viewer/{job_id:int}", viewer),
    Route("/api/jobs/{job_id:int}/transcript", transcript_api),
    Route("/api/jobs/{job_id:int}/sidecars/{fmt}", sidecar),
    Route("/api/export.zip", export_zip),
]
