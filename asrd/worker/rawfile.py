"""The file under the decoders: ``GuardedFile`` (which keeps the OS errors the libraries would hide) and the
header facts asrd reads from the bytes itself before choosing a backend - an MP3's VBR frame, an MP4's index,
a WAV's declared and present data."""

from __future__ import annotations

import os
from typing import BinaryIO


class GuardedFile:
    """The file as the decoder libraries read it, keeping the OS errors they would hide.

    libsndfile's callbacks swallow Python exceptions and FFmpeg may take an I/O error for the
    end of the file, so either would report EIO as truncation. The first ``OSError`` is kept
    here and raised in place of whatever the library made of it.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.error: OSError | None = None
        self.at_eof = False  # the last read came back short: the library has reached the end

    def read(self, size: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:
            data = self._raw.read(size)
        except OSError as exc:
            self.error = exc
            return b""
        self.at_eof = size < 0 or len(data) < size
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.at_eof = False
        try:
            return self._raw.seek(offset, whence) if self.error is None else 0
        except OSError as exc:
            self.error = exc
            return 0

    def tell(self) -> int:
        return self._raw.tell()  # the kernel's offset: no I/O that could fail


def has_vbr_header(file: GuardedFile, head: bytes) -> bool:
    """Whether an MP3 states its length (a Xing/Info/VBRI frame); without one FFmpeg guesses."""
    offset = 0
    if head[:3] == b"ID3" and len(head) >= 10:  # skip the ID3v2 tag; its size is "syncsafe"
        offset = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    pos = file.tell()
    file.seek(offset)
    frame = file.read(4096)
    file.seek(pos)  # FFmpeg's buffered reader expects the position it left
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def has_mp4_index(file: GuardedFile) -> bool:
    """Whether an MP4's top-level boxes include the index ("moov"), which phones write last."""
    pos = 0
    while True:
        file.seek(pos)
        header = file.read(16)
        if len(header) < 8:
            return False
        if header[4:8] == b"moov":
            return True
        size = int.from_bytes(header[:4], "big")
        if size == 1 and len(header) == 16:  # a 64-bit size follows the type
            size = int.from_bytes(header[8:16], "big")
        if size < 8:  # 0 means "up to the end of the file"; smaller ones are damage
            return False
        pos += size


def wav_extent(file: GuardedFile, size: int) -> tuple[int | None, int] | None:
    """(frames the data chunk declares, frames the file holds) of a RIFF/WAVE file; the first is
    None when the writer could not say (streamed to a pipe); None when no data chunk is found."""
    file.seek(0)
    if (head := file.read(12))[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, block_align = 12, 0
    for _ in range(64):  # the data chunk follows a handful of metadata chunks at most
        file.seek(pos)
        chunk = file.read(24)
        if len(chunk) < 8:
            return None
        length = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"fmt " and len(chunk) >= 22:
            block_align = int.from_bytes(chunk[20:22], "little")
        elif chunk[:4] == b"data":
            if not block_align:
                return None
            available = (size - pos - 8) // block_align
            # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
            return (None if length in (0, 0xFFFFFFFF) else length // block_align), available
        pos += 8 + length + (length & 1)
    return None
