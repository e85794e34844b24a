"""asrd.worker.audio: decoding real files of every format, and the bad inputs a watched folder receives."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from asrd.media import MEDIA_EXTENSIONS
from asrd.records import SAMPLE_RATE
from asrd.worker import decoders
from asrd.worker.audio import DecodeError, decode, load, probe

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
M4A = DATA / "jfk_44k_stereo.aac.m4a"

# file -> (backend, native rate, channels, duration in 16 kHz samples)
REAL_FILES = {
    "test_ko.wav": ("soundfile", 16000, 1, 62208),
    "zero_shot_prompt.wav": ("soundfile", 24000, 1, 55680),
    "jfk.flac": ("pyav", 44100, 2, 176000),
    "asr_example.mp3": ("pyav", 16000, 1, 88747),
    "jfk_44k_stereo.aac.m4a": ("pyav", 44100, 2, 176000),
    "test_ja.opus": ("soundfile", 16000, 1, 86976),
    "vad_example_zh.ogg": ("soundfile", 16000, 1, 1127530),
}


def reason_of(path: Path) -> str:
    with pytest.raises(DecodeError) as caught:
        for _ in decode(path):
            pass
    assert caught.value.path == path
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    assert caught.value.permanent
    return caught.value.reason


def top_level_boxes(path: Path) -> list[bytes]:
    boxes, pos, data = [], 0, path.read_bytes()
    while pos + 8 <= len(data):
        boxes.append(data[pos + 4 : pos + 8])
        pos += int.from_bytes(data[pos : pos + 4], "big")
    return boxes


def remux_m4a(dst: Path, faststart: bool) -> Path:
    """Copy the AAC packets of the test M4A into a new MP4, with the index (moov) first or last."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(M4A)) as src, av.open(str(dst), "w", format="mp4", options=options) as out:
        stream = src.streams.audio[0]
        copy = out.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return dst


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_files_decode_to_declared_length(name: str) -> None:
    backend, rate, channels, duration = REAL_FILES[name]
    info = probe(DATA / name)
    assert (info.backend, info.sample_rate, info.channels, info.duration) == (backend, rate, channels, duration)
    samples = load(DATA / name)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - duration) <= 0.05 * SAMPLE_RATE
    assert 0.01 < np.abs(samples).max() <= 1.0  # speech, not silence, and in range


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "placeholder.wav"
    path.touch()
    assert reason_of(path) == "file is empty (0 bytes)"
    with pytest.raises(DecodeError, match="empty"):
        probe(path)


def test_text_file_named_mp3(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("Shopping list: milk, eggs, a new microphone.\n" * 20)
    assert reason_of(path).startswith("not an audio file: format not recognised")
    with pytest.raises(DecodeError, match="not an audio file"):
        probe(path)


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "screen.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert reason_of(path) == "not an audio file: no audio stream found (only video)"


def test_truncated_wav_is_refused_before_decoding(tmp_path: Path) -> None:
    data = (DATA / "test_ko.wav").read_bytes()
    path = tmp_path / "partial.wav"
    path.write_bytes(data[: len(data) // 2])
    chunks = decode(path)
    with pytest.raises(DecodeError, match=r"^.*: truncated: header says 3\.9 s but only 1\.9 s could be decoded$"):
        next(chunks)  # nothing is yielded first: the header already tells
    assert probe(path).duration == REAL_FILES["test_ko.wav"][3]  # what the header promises


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_wav_written_to_a_pipe_decodes_in_full(tmp_path: Path, size: int) -> None:
    # A writer that cannot seek back leaves the RIFF and data sizes at one of these.
    data = bytearray((DATA / "test_ko.wav").read_bytes())
    at = data.index(b"data") + 4
    data[4:8] = data[at : at + 4] = size.to_bytes(4, "little")
    path = tmp_path / "streamed.wav"
    path.write_bytes(data)
    length = REAL_FILES["test_ko.wav"][3]
    assert probe(path).duration == length
    assert len(load(path)) == length


def test_truncated_mp3_is_detected_from_its_xing_header(tmp_path: Path) -> None:
    data = (DATA / "asr_example.mp3").read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    assert reason_of(path) == "truncated: header says 5.5 s but only 2.8 s could be decoded"


def test_truncated_m4a_with_index_first(tmp_path: Path) -> None:
    whole = remux_m4a(tmp_path / "faststart.m4a", faststart=True)
    assert top_level_boxes(whole).index(b"moov") < top_level_boxes(whole).index(b"mdat")
    path = tmp_path / "half.m4a"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert reason_of(path).startswith("truncated: header says 11.0 s but only 5.")


def test_truncated_m4a_without_its_index(tmp_path: Path) -> None:
    # Phones write the index last: a recording cut short has none.
    data = M4A.read_bytes()
    path = tmp_path / "interrupted.m4a"
    path.write_bytes(data[: len(data) // 2])
    assert reason_of(path).startswith("truncated: MP4/M4A index (moov atom) missing")


def test_m4a_with_index_at_the_end_decodes_fully(tmp_path: Path) -> None:
    # Peers decoded Android M4A (moov after mdat) to zero samples and called it success.
    path = remux_m4a(tmp_path / "android.m4a", faststart=False)
    boxes = top_level_boxes(path)
    assert boxes.index(b"mdat") < boxes.index(b"moov")
    samples = load(path)
    assert abs(len(samples) - 11 * SAMPLE_RATE) <= 0.05 * SAMPLE_RATE
    np.testing.assert_allclose(samples, load(M4A), atol=1e-6)


def test_corrupt_data_mid_stream(tmp_path: Path) -> None:
    data = bytearray(M4A.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path = tmp_path / "damaged.m4a"
    path.write_bytes(bytes(data))
    assert reason_of(path).startswith("corrupt data at 5.")


def test_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(0, np.int16), SAMPLE_RATE)
    assert reason_of(path) == "decoded zero samples"


@pytest.mark.parametrize("suffix", ["wav", "flac"])  # soundfile and PyAV
def test_stereo_is_averaged(tmp_path: Path, suffix: str) -> None:
    left = sf.read(DATA / "test_ko.wav", dtype="float32")[0]
    right = np.roll(left, 4000) * np.float32(0.5)
    path = tmp_path / f"stereo.{suffix}"
    sf.write(path, np.stack([left, right], axis=1), SAMPLE_RATE, subtype="PCM_16")
    written = sf.read(path, dtype="float32")[0]  # after 16-bit quantisation
    np.testing.assert_allclose(load(path), written.mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("name", ["jfk.flac", "jfk_44k_stereo.aac.m4a", "vad_example_zh.ogg", "zero_shot_prompt.wav"])
def test_chunks_are_contiguous_and_independent_of_chunk_size(name: str) -> None:
    outputs = []
    for size in (1000, 7919, SAMPLE_RATE, 30 * SAMPLE_RATE):
        chunks = list(decode(DATA / name, chunk_samples=size))
        assert [c.start for c in chunks] == [0, *(c.end for c in chunks[:-1])]
        assert all(len(c.samples) == size for c in chunks[:-1]) and 0 < len(chunks[-1].samples) <= size
        assert all(c.samples.dtype == np.float32 for c in chunks)
        outputs.append(np.concatenate([c.samples for c in chunks]))
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], atol=1e-6)


def test_resampling_keeps_a_sine_at_1khz(tmp_path: Path) -> None:
    rate, seconds = 44100, 3
    t = np.arange(rate * seconds) / rate
    path = tmp_path / "sine.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), rate, subtype="FLOAT")
    samples = load(path)
    assert len(samples) == seconds * SAMPLE_RATE
    steady = samples[SAMPLE_RATE // 10 : -SAMPLE_RATE // 10]
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak = np.fft.rfftfreq(len(steady), 1 / SAMPLE_RATE)[spectrum.argmax()]
    assert abs(peak - 1000) < 1.0
    assert abs(np.abs(steady).max() - 0.5) < 0.005
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(samples)) / SAMPLE_RATE)
    middle = slice(SAMPLE_RATE // 10, -SAMPLE_RATE // 10)
    assert np.abs(samples[middle] - expected[middle]).max() < 0.005  # in phase: no delay added


class _FailingFile(io.FileIO):
    """A file whose reads fail with ``err`` once ``after`` bytes have been read, like a dying NAS."""

    def __init__(self, path: Path, err: int, after: int) -> None:
        super().__init__(path, "r")
        self.err, self.after = err, after

    def read(self, size: int = -1) -> bytes:
        if self.tell() >= self.after:
            raise OSError(self.err, os.strerror(self.err))
        return super().read(size)

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.mark.parametrize("name", ["vad_example_zh.ogg", "test_ko.wav", "asr_example.mp3", "jfk.flac", M4A.name])
@pytest.mark.parametrize("err", [errno.EIO, errno.ESTALE], ids=["EIO", "ESTALE"])
def test_os_errors_mid_stream_are_not_decode_errors(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    path = DATA / name

    def failing_open(name: Path, mode: str, **_: object) -> _FailingFile:
        return _FailingFile(name, err, path.stat().st_size // 2)

    monkeypatch.setattr(decoders, "open", failing_open, raising=False)
    with pytest.raises(OSError) as caught:
        for _ in decode(path, chunk_samples=SAMPLE_RATE):
            pass
    assert caught.value.errno == err and not isinstance(caught.value, DecodeError)


def test_os_errors_on_open_pass_through(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        next(decode(tmp_path / "gone.wav"))
    with pytest.raises(IsADirectoryError):
        probe(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    assert reason_of(path) == "not a regular file"


def test_stopping_early_closes_quietly() -> None:
    chunks = decode(DATA / "vad_example_zh.ogg", chunk_samples=SAMPLE_RATE)
    first = next(chunks)
    chunks.close()
    assert first.start == 0 and len(first.samples) == SAMPLE_RATE


def test_media_extensions() -> None:
    assert {"wav", "flac", "ogg", "opus", "mp3", "m4a", "aac", "mp4", "mkv", "webm", "amr", "wma"} <= MEDIA_EXTENSIONS
    assert all(ext == ext.lower() and "." not in ext for ext in MEDIA_EXTENSIONS)
    assert {path.suffix[1:] for path in DATA.glob("*.*") if path.suffix != ".md"} <= MEDIA_EXTENSIONS
