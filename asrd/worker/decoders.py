"""The decoding backends behind ``asrd.worker.audio``: file opening and readers (``rawfile``: the guarded
file under them and the header facts read from the bytes).

``opened`` picks libsndfile (``soundfile``) or FFmpeg (``PyAV``) from a file's first bytes and
yields a reader with ``info()`` (header facts as ``AudioInfo``) and ``blocks()`` (mono float32 at
the native rate). Failures of the bytes themselves raise ``DecodeError``; OS errors pass through.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.audio.stream
import av.error
import numpy as np
import soundfile as sf

from asrd.records import SAMPLE_RATE
from asrd.worker.rawfile import GuardedFile, has_mp4_index, has_vbr_header, wav_extent

__all__ = ["AudioInfo", "DecodeError", "NotAudioError", "opened"]

_BLOCK = 1 << 16  # native-rate frames per block (one resampler call): large enough to amortise the Python work
# How far a decode may fall short of the declared length before the file counts as truncated:
# codec priming and padding (a few frames) stay far below it on every file tried.
_SHORTFALL_S = 0.25
# First bytes of the containers that go to libsndfile (WAV, RF64, W64, AIFF, Ogg, CAF, AU).
# Not FLAC: FFmpeg decodes it twice as fast (1,440x against 660x realtime, 44.1 kHz stereo).
# Not MP3: libsndfile's libmpg123 writes warnings to stderr for every odd frame.
_SF_MAGIC = (b"RIFF", b"RF64", b"BW64", b"riff", b"FORM", b"OggS", b"caff", b".snd")
# FFmpeg formats whose durations are read from the file, not guessed from the bit rate.
_DECLARING_FORMATS = frozenset(
    ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "ogg", "flac", "wav", "w64", "aiff", "caf", "asf", "wv")
)
# FFmpeg sample formats (without the planar "p") as numpy types.
_SAMPLE_TYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(kind)
    for name, kind in (("u8", np.uint8), ("s16", np.int16), ("s32", np.int32), ("s64", np.int64),
                       ("flt", np.float32), ("dbl", np.float64))
}


class DecodeError(Exception):
    """The file's content cannot be decoded; retrying the same bytes gives the same result."""

    #: Always true: transient causes (OS errors) are raised as ``OSError`` instead.
    permanent: bool = True

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class NotAudioError(DecodeError):
    """Not something to decode at all (empty, not audio, not a regular file): unlike a truncated or
    corrupt file, which a finished copy may repair, these are quarantined at once."""


@dataclass(frozen=True)
class AudioInfo:
    """What a file's headers say, without decoding it."""

    duration: int | None  # 16 kHz samples; None when unknown (a stream written to a pipe may not say)
    duration_declared: bool  # False when ``duration`` is unknown or only an estimate (bit rate, file size)
    sample_rate: int  # native
    channels: int
    codec: str  # "PCM_16", "VORBIS" (soundfile); "aac", "mp3float", "flac" (PyAV)
    container: str  # "WAV", "OGG" (soundfile); "mov,mp4,m4a,3gp,3g2,mj2", "mp3" (PyAV)
    backend: str  # "soundfile" or "pyav"


class _Reader:
    """An opened file: header facts, then mono float32 blocks at the native rate."""

    def __init__(self, path: Path, file: GuardedFile) -> None:
        self.path = path
        self.file = file
        self.rate = 0
        self.declared: int | None = None  # native frames the container promises, if it says
        self.decoded = 0  # native frames produced so far

    def _seconds(self, frames: int) -> str:
        return f"{frames / self.rate:.1f} s" if self.rate else f"{frames} frames"

    def _shortfall(self) -> DecodeError | None:
        if self.declared is None or self.declared - self.decoded <= self.rate * _SHORTFALL_S:
            return None
        declared, decoded = self._seconds(self.declared), self._seconds(self.decoded)
        return DecodeError(self.path, f"truncated: header says {declared} but only {decoded} could be decoded")

    def _check_complete(self) -> None:
        if (error := self._shortfall()) is not None:
            raise error

    def _failure(self, message: str) -> DecodeError | None:
        """The error for a decoder failure at ``self.decoded``; None to accept the file as it is."""
        message = message.removeprefix("Error : ").rstrip(".")
        at = self._seconds(self.decoded)
        if not self.file.at_eof:
            return DecodeError(self.path, f"corrupt data at {at} ({message})")
        if self.declared is not None:  # a damaged last packet is no loss if the length adds up
            return self._shortfall()
        return DecodeError(self.path, f"truncated: data ends abruptly at {at} ({message})")


class _SoundfileReader(_Reader):
    def __init__(self, path: Path, file: GuardedFile, wav_extent: tuple[int | None, int] | None) -> None:
        super().__init__(path, file)
        self._sf = sf.SoundFile(file)
        self.rate = self._sf.samplerate
        self._available: int | None = None  # frames a WAV's data chunk really holds
        self._estimated: int | None = None
        known = 0 < self._sf.frames < 1 << 62  # libsndfile says 0 or "huge" when it does not know
        if wav_extent is not None:
            self.declared, self._available = wav_extent
            if self.declared is None and known:  # a streamed WAV: libsndfile counts what the file holds
                self._estimated = self._sf.frames
        elif known:
            self.declared = self._sf.frames

    def misses_data(self) -> bool:
        """A streamed WAV whose data size was left at 0: libsndfile believes it and reads nothing."""
        return self.declared is None and self._available is not None and self._sf.frames < self._available

    def info(self) -> AudioInfo:
        frames = self.declared if self.declared is not None else self._estimated
        return AudioInfo(
            _to_16k(frames, self.rate), self.declared is not None, self.rate, self._sf.channels,
            self._sf.subtype, self._sf.format, "soundfile",
        )  # fmt: skip

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._available is not None and self.declared is not None and self._available < self.declared:
            # libsndfile quietly clamps a WAV's data chunk to the file size; the header knows better.
            self.decoded = self._available
            self._check_complete()
        mono = self._sf.channels == 1
        while True:
            try:
                block = self._sf.read(_BLOCK, dtype="float32", always_2d=True)
            except sf.LibsndfileError as exc:
                if (error := self._failure(exc.error_string)) is not None:
                    raise error from exc
                return
            if not len(block):
                break
            self.decoded += len(block)
            yield self.rate, block[:, 0] if mono else block.mean(axis=1, dtype=np.float32)
        self._check_complete()

    def close(self) -> None:
        self._sf.close()


class _PyAVReader(_Reader):
    def __init__(self, path: Path, file: GuardedFile, head: bytes) -> None:
        super().__init__(path, file)
        try:
            self._container = av.open(file, "r", metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            _reraise_os(exc)
            if head[4:8] == b"ftyp" and not has_mp4_index(file):
                reason = "truncated: MP4/M4A index (moov atom) missing, the recording or copy was interrupted"
                raise DecodeError(path, reason) from exc
            raise NotAudioError(path, f"not an audio file: format not recognised ({_ffmpeg_message(exc)})") from exc
        stream = self._container.streams.best("audio")
        if not isinstance(stream, av.audio.stream.AudioStream):
            others = ", ".join(sorted({s.type for s in self._container.streams}))
            self._container.close()
            found = f" (only {others})" if others else ""
            raise NotAudioError(path, f"not an audio file: no audio stream found{found}")
        self._stream = stream
        self.rate = stream.rate or 0
        self._estimated: int | None = None
        seconds = None
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration:
            seconds = self._container.duration / av.time_base
        if seconds and seconds > 0 and self.rate:  # 0 or negative: the muxer could not say
            names = set(self._container.format.name.split(","))
            if names & _DECLARING_FORMATS or ("mp3" in names and has_vbr_header(file, head)):
                self.declared = round(seconds * self.rate)
            else:
                self._estimated = round(seconds * self.rate)

    def info(self) -> AudioInfo:
        frames = self.declared if self.declared is not None else self._estimated
        return AudioInfo(
            _to_16k(frames, self.rate), self.declared is not None, self.rate, self._stream.channels,
            self._stream.codec_context.name, self._container.format.name, "pyav",
        )  # fmt: skip

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        # Frames are small (1024 samples for AAC), so per-frame numpy work would dominate: collect
        # zero-copy views of their planes and mix a whole batch at once.
        layout: tuple[int, str, int] = (0, "", 0)  # rate, sample format, channels
        planes: list[list[np.ndarray]] = []
        pending = 0
        try:
            for frame in self._container.decode(self._stream):
                fmt = frame.format
                this = (frame.sample_rate, fmt.name, len(frame.layout.channels))
                if this != layout or pending >= _BLOCK:
                    if pending:
                        yield layout[0], _mix(planes, layout[2])
                    layout, pending, self.rate = this, 0, frame.sample_rate
                    planes = [[] for _ in range(this[2] if fmt.is_planar else 1)]
                    dtype = _SAMPLE_TYPES[fmt.name.removesuffix("p") if fmt.is_planar else fmt.name]
                count = frame.samples * (1 if fmt.is_planar else this[2])
                for chunks, plane in zip(planes, frame.planes, strict=True):
                    # PyAV's stubs do not declare AudioPlane's buffer protocol
                    chunks.append(np.frombuffer(plane, dtype, count))  # type: ignore[call-overload]
                pending += frame.samples
                self.decoded += frame.samples
        except av.error.FFmpegError as exc:
            _reraise_os(exc)
            if (error := self._failure(_ffmpeg_message(exc))) is not None:
                raise error from exc
        if pending:
            yield layout[0], _mix(planes, layout[2])
        self._check_complete()

    def close(self) -> None:
        self._container.close()


def _mix(planes: list[list[np.ndarray]], channels: int) -> np.ndarray:
    """Average decoded frames (a list of arrays per plane) into one float32 block in [-1, 1]."""
    joined = [np.concatenate(chunks) for chunks in planes]
    # Planar formats give one array per channel; packed ones interleave the channels in one.
    columns = joined if len(joined) == channels else [joined[0][i::channels] for i in range(channels)]
    out = columns[0].astype(np.float32)
    for column in columns[1:]:
        out += column
    dtype = columns[0].dtype
    scale = 1.0 / channels
    if dtype.kind == "i":
        scale /= 1 << (8 * dtype.itemsize - 1)
    elif dtype.kind == "u":  # unsigned 8-bit PCM is centred on 128
        out -= 128.0 * channels
        scale /= 128
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def _reraise_os(exc: Exception) -> None:
    """PyAV's errors for errno codes subclass ``OSError`` or ``MemoryError``: not content errors."""
    if isinstance(exc, (OSError, MemoryError)):
        raise exc


def _ffmpeg_message(exc: av.error.FFmpegError) -> str:
    return str(exc.strerror or exc).rstrip(".")


def _to_16k(frames: int | None, rate: int) -> int | None:
    """Native frames as 16 kHz samples; None when either is unknown (never 0 standing for "unknown")."""
    return round(frames * SAMPLE_RATE / rate) if frames is not None and rate else None


def _open_reader(path: Path, file: GuardedFile, size: int) -> _SoundfileReader | _PyAVReader:
    if size == 0:
        raise NotAudioError(path, "file is empty (0 bytes)")
    head = file.read(16)
    if head[:4] in _SF_MAGIC:
        wav = wav_extent(file, size)
        file.seek(0)
        try:
            reader = _SoundfileReader(path, file, wav)
        except sf.LibsndfileError:
            if file.error is not None:
                raise file.error from None
        else:
            if not reader.misses_data():
                return reader
            reader.close()  # FFmpeg reads such a WAV to its end
        # libsndfile cannot read this codec (MP3 or AAC inside WAV/CAF, Speex in Ogg...): FFmpeg can.
    file.seek(0)
    return _PyAVReader(path, file, head)


@contextmanager
def opened(path: Path) -> Iterator[_SoundfileReader | _PyAVReader]:
    """The reader for ``path``; an OS error recorded on the way beats any DecodeError."""
    # Non-blocking open: a FIFO with an audio name must not hang the caller waiting for a writer.
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as raw:
        status = os.fstat(raw.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise NotAudioError(path, "not a regular file")
        file = GuardedFile(raw)
        try:
            reader = _open_reader(path, file, status.st_size)
            try:
                yield reader
            finally:
                reader.close()
        except Exception as exc:  # not GeneratorExit: a caller that stops early is no failure
            if file.error is not None:
                raise file.error from exc
            raise
        if file.error is not None:
            raise file.error
