"""A multipart/form-data request streamed into the API inbox: the file part straight to disk, chunk by
chunk (memory flat with file size), the other fields kept as short strings.

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

from python_multipart.multipart import MultipartParser, parse_options_header

from asrd.media import MEDIA_EXTENSIONS, TEMP_PREFIX

MAX_FIELD_BYTES = 64 * 1024  # a text field (language, prompt...) longer than this is refused
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


class _Receiver:
    """MultipartParser callbacks: the part named ``file_field`` to a temp file, others to ``fields``."""

    def __init__(self, folder: Path, file_field: str, raw_pcm: bool, max_bytes: int, keep_bytes: int | None) -> None:
        self.folder, self.file_field, self.raw_pcm = folder, file_field, raw_pcm
        self.max_bytes, self.keep_bytes = max_bytes, keep_bytes
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename = ""
        self.text = bytearray()
        self.sink: BinaryIO | None = None
        self.tmp: Path | None = None
        self.head = b""  # the first bytes, to name the container
        self.written = 0
        self.received = 0
        self.upload = Upload()
        self.error: UploadError | None = None

    # -- callbacks
    def on_part_begin(self) -> None:
        self.headers, self.name, self.filename, self.text = {}, "", "", bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
        if self.name == self.file_field and self.sink is None:
            self.tmp = self.folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
            self.sink = open(self.tmp, "xb")  # noqa: SIM115 - closed in finish()/discard()
            if self.raw_pcm:
                self.sink.write(wav_header(0))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        chunk = data[start:end]
        if self.name == self.file_field and self.sink is not None:
            self.received += len(chunk)
            if self.received > self.max_bytes:
                self.error = UploadError(f"the upload is larger than {self.max_bytes >> 20} MiB ([api] max_upload_mb)",
                                         413)
                return
            if self.keep_bytes is not None:
                chunk = chunk[: max(0, self.keep_bytes - self.written)]
            if len(self.head) < 16:
                self.head += chunk[: 16 - len(self.head)]
            self.sink.write(chunk)
            self.written += len(chunk)
        else:
            self.text += chunk
            if len(self.text) > MAX_FIELD_BYTES:
                self.error = UploadError(f"the form field {self.name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self.name != self.file_field:
            self.upload.fields[self.name] = self.text.decode("utf-8", "replace")

    # -- after the body
    def finish(self) -> Upload:
        if self.sink is None or self.tmp is None:
            return self.upload
        if self.raw_pcm:
            self.sink.seek(0)
            self.sink.write(wav_header(self.written))
        self.sink.flush()
        os.fsync(self.sink.fileno())
        self.sink.close()
        if self.written == 0:
            self.tmp.unlink(missing_ok=True)
            raise UploadError(f"the {self.file_field!r} part is empty")
        ext = "wav" if self.raw_pcm else extension(self.head, self.filename)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        final = self.folder / f"{stamp}-{secrets.token_hex(4)}.{ext}"
        os.rename(self.tmp, final)
        self.upload.path, self.upload.filename, self.upload.size = final, self.filename, self.written
        return self.upload

    def discard(self) -> None:
        if self.sink is not None:
            self.sink.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


async def receive(body: AsyncIterator[bytes], content_type: str, folder: Path, file_field: str, *,
                  raw_pcm: bool = False, max_bytes: int, keep_bytes: int | None = None) -> Upload:
    """Stream a multipart body into ``folder``. ``keep_bytes``: keep only the first bytes of the file (the
    rest is read and dropped). Raises UploadError; on any error nothing is left in ``folder``."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError("send the audio as multipart/form-data", 415)
    receiver = _Receiver(folder, file_field, raw_pcm, max_bytes, keep_bytes)
    callbacks = {name: getattr(receiver, name) for name in (
        "on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished")}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # a TypedDict of the same callables
    try:
        async for chunk in body:
            parser.write(chunk)
            if receiver.error is not None:
                raise receiver.error
        parser.finalize()
        if receiver.error is not None:
            raise receiver.error
        return receiver.finish()
    except Exception as err:
        receiver.discard()
        if isinstance(err, UploadError):
            raise
        if isinstance(err, OSError):
            raise UploadError(f"cannot store the upload: {err.strerror or err}", 507) from None
        raise UploadError(f"a malformed multipart body: {err}") from None
