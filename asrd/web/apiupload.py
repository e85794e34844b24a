"""A multipart/form-data request streamed into the API inbox (through ``multipart.MultipartReader``, the
same reader as the dashboard's uploads): the file part straight to disk, chunk by chunk (memory flat with
file size), the other fields kept as short strings.

The file goes under a temp name (``.asrd-tmp-*.tmp``, which every scan ignores) and is renamed into the
inbox only when the request is complete, so a half-sent upload never becomes a job.
Raw 16 kHz mono s16le PCM (Bazarr sends that with ``encode=false``) is wrapped in a WAV header on the way.
"""

from __future__ import annotations

import os
import secrets
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from asrd.media import MEDIA_EXTENSIONS, TEMP_PREFIX
from asrd.web.multipart import MultipartReader

PCM_RATE = 16000


class UploadError(Exception):
    """The request cannot be taken: the message says why; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# First bytes of the containers we can name; an upload's own name is a hint at best.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"RIFF", 0, "wav"), (b"fLaC", 0, "flac"), (b"OggS", 0, "ogg"), (b"ID3", 0, "mp3"), (b"\xff\xfb", 0, "mp3"),
    (b"\xff\xf3", 0, "mp3"), (b"\xff\xf1", 0, "aac"), (b"\xff\xf9", 0, "aac"), (b"ftyp", 4, "m4a"),
    (b"\x1a\x45\xdf\xa3", 0, "mkv"), (b"#!AMR", 0, "amr"), (b"FORM", 0, "aiff"),
)


def extension(head: bytes, filename: str) -> str:
    for magic, offset, ext in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return ext
    suffix = Path(filename).suffix.lower().lstrip(".")
    return suffix if suffix in MEDIA_EXTENSIONS else "bin"  # the decoder sniffs the content anyway


def wav_header(data_bytes: int) -> bytes:
    data_bytes = min(data_bytes, 0xFFFFFFFF - 36)
    return b"RIFF" + struct.pack("<I4s4sIHHIIHH4sI", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, 1, PCM_RATE,
                                 PCM_RATE * 2, 2, 16, b"data", data_bytes)


@dataclass
class Upload:
    """The outcome: the file in the inbox (None if the request had no file field) and the text fields."""

    path: Path | None = None
    filename: str = ""
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


class _File:
    """The part named ``file_field``, to a temp file (a ``multipart.FilePart``); the first one only."""

    def __init__(self, folder: Path, filename: str, raw_pcm: bool, max_bytes: int, keep_bytes: int | None) -> None:
        self.filename, self.raw_pcm, self.max_bytes, self.keep_bytes = filename, raw_pcm, max_bytes, keep_bytes
        self.tmp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
        self.sink: BinaryIO | None = open(self.tmp, "xb")  # noqa: SIM115 - closed in finish()/discard()
        if raw_pcm:
            self.sink.write(wav_header(0))
        self.head = b""  # the first bytes, to name the container
        self.written = 0
        self.received = 0

    def write(self, data: memoryview) -> None:
        assert self.sink is not None
        self.received += len(data)
        if self.received > self.max_bytes:
            raise UploadError(f"the upload is larger than {self.max_bytes >> 20} MiB ([api] max_upload_mb)", 413)
        if self.keep_bytes is not None:
            data = data[: max(0, self.keep_bytes - self.written)]
        if len(self.head) < 16:
            self.head += bytes(data[: 16 - len(self.head)])
        self.sink.write(data)
        self.written += len(data)

    def end(self) -> None:
        pass  # published by publish() once the whole body is in (a refused request keeps nothing)

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        self.tmp.unlink(missing_ok=True)

    def publish(self, folder: Path, file_field: str) -> Upload:
        assert self.sink is not None
        if self.raw_pcm:
            self.sink.seek(0)
            self.sink.write(wav_header(self.written))
        self.sink.flush()
        os.fsync(self.sink.fileno())
        self.sink.close()
        self.sink = None
        if self.written == 0:
            self.tmp.unlink(missing_ok=True)
            raise UploadError(f"the {file_field!r} part is empty")
        ext = "wav" if self.raw_pcm else extension(self.head, self.filename)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        final = folder / f"{stamp}-{secrets.token_hex(4)}.{ext}"
        os.rename(self.tmp, final)
        return Upload(final, self.filename, self.written)


async def receive(body: AsyncIterator[bytes], content_type: str, folder: Path, file_field: str, *,
                  raw_pcm: bool = False, max_bytes: int, keep_bytes: int | None = None) -> Upload:
    """Stream a multipart body into ``folder``. ``keep_bytes``: keep only the first bytes of the file (the
    rest is read and dropped). Raises UploadError; on any error nothing is left in ``folder``."""
    files: list[_File] = []

    def open_part(name: str, filename: str | None) -> _File | None:
        if name != file_field or files:
            return None  # a text field (a second file part under the same name is dropped as one)
        files.append(_File(folder, filename or "", raw_pcm, max_bytes, keep_bytes))
        return files[0]

    reader = MultipartReader(content_type, open_part, lambda status, message: UploadError(message, status),
                             not_multipart="send the audio as multipart/form-data")
    try:
        async for chunk in body:
            reader.feed(chunk)
        reader.finish()
        upload = files[0].publish(folder, file_field) if files else Upload()
    except Exception as err:
        for f in files:
            f.discard()
        if isinstance(err, UploadError):
            raise
        if isinstance(err, OSError):
            raise UploadError(f"cannot store the upload: {err.strerror or err}", 507) from None
        raise UploadError(f"a malformed multipart body: {err}") from None
    upload.fields = {k: v for k, v in reader.fields.items() if k != file_field}
    return upload
