"""The one streaming ``multipart/form-data`` reader behind every upload (the dashboard's ``uploads`` and the
compatible APIs' ``apiupload``): python-multipart's parser fed chunk by chunk, each file part's bytes handed
straight to a sink its caller opens (nothing spooled to /tmp or held in memory), other parts kept as short
text fields. Errors are raised as the caller's own exception type, made by ``error(status, message)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from python_multipart.multipart import MultipartParser, parse_options_header

MAX_FIELD_BYTES = 64 * 1024  # a text field (language, prompt, ...) longer than this is refused


class FilePart(Protocol):
    """Where one file part's bytes go."""

    def write(self, data: memoryview) -> None: ...
    def end(self) -> None: ...  # the part is complete (flush, fsync, close)


Opener = Callable[[str, str | None], FilePart | None]  # (field name, file name or None) -> a sink, or None: text
ErrorFactory = Callable[[int, str], Exception]


def boundary_of(content_type: str) -> bytes | None:
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    return boundary if kind == b"multipart/form-data" and boundary else None


class MultipartReader:
    """Feed the body with ``feed``; ``finish`` once it has all arrived. ``fields`` holds the text parts.
    An exception raised by a sink (or by this reader) comes out of ``feed`` or ``finish``."""

    def __init__(self, content_type: str, open_part: Opener, error: ErrorFactory, *,
                 not_multipart: str = "send the files as multipart/form-data") -> None:
        boundary = boundary_of(content_type)
        if boundary is None:
            raise error(415, not_multipart)
        self._open = open_part
        self._error = error
        self.fields: dict[str, str] = {}
        self._sink: FilePart | None = None
        self._name = ""
        self._text = bytearray()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        })

    def feed(self, chunk: bytes) -> None:
        self._parser.write(chunk)

    def finish(self) -> None:
        self._parser.finalize()
        if self._sink is not None:
            raise self._error(400, "the upload ended in the middle of a file")

    # python-multipart calls these from inside ``write``.
    def _part_begin(self) -> None:
        self._headers = {}
        self._text.clear()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        raw = params.get(b"filename")
        self._sink = self._open(self._name, None if raw is None else raw.decode("utf-8", "surrogateescape"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(memoryview(data)[start:end])
            return
        self._text.extend(data[start:end])
        if len(self._text) > MAX_FIELD_BYTES:
            raise self._error(413, f"the form field {self._name!r} is longer than {MAX_FIELD_BYTES >> 10} KiB")

    def _part_end(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.end()
        else:
            self.fields[self._name] = self._text.decode("utf-8", "replace")
