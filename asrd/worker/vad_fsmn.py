"""FunASR FSMN-VAD behind the same streaming ``Segmenter`` interface as ``asrd.worker.vad``.

FSMN decides the raw speech regions; padding, minimum length and the quietest-point split of
over-long segments come from the same ``Shaper`` the webrtc segmenter uses. With
``FSMN_DEFAULT_PARAMS`` the output is FSMN's own (its 800 ms end silence, no extra padding, since FSMN
already extends speech by 200 ms before and 100 ms after), so FunASR's published segments are
reproduced exactly.

Audio goes to FSMN in fixed ``chunk_ms`` pieces through ``generate(cache=..., is_final=...)``; the
cache carries the model state between calls and FunASR drops decided frames from it, so memory stays
bounded by the chunk and the open segment, not by the file. funasr is imported lazily: importing
this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from asrd.recognizer.modeldir import check_model_dir
from asrd.records import AudioChunk, Segment, ms_to_samples
from asrd.worker.vad import FRAME, Framer, Shaper, VadParams, frame_energies

# FSMN's published behaviour: max_end_silence_time 800 ms and nothing added on top.
FSMN_DEFAULT_PARAMS = VadParams(min_silence_ms=800, padding_ms=0, min_speech_ms=0)

# FSMN's own max_single_segment_time cuts blindly; push it out of the way so the shaper's
# quietest-point split is the only one (FunASR still frees decided frames inside long speech).
_NO_FSMN_CUT_MS = 24 * 3600 * 1000

# Where FSMN can still place a segment start, behind the audio it has consumed: its 200 ms decision
# window plus 200 ms look-back, plus the fbank frame and LFR context; rounded up generously.
_FSMN_LOOKBACK = ms_to_samples(1000)
# FunASR divides by the feature frames of a call; a whole stream shorter than one 25 ms fbank frame
# gives none and a ZeroDivisionError. Such a stream has no speech anyway.
_MIN_STREAM = ms_to_samples(25)


def load_fsmn(model_dir: Path, ncpu: int = 1, device: str = "cpu") -> Any:
    """Build a FunASR AutoModel for the FSMN-VAD in ``model_dir`` (offline; may be shared by segmenters)."""
    check_model_dir(model_dir)
    from funasr import AutoModel  # heavy (torch + funasr): only in processes that run the model

    return AutoModel(
        model=str(model_dir),
        disable_update=True,  # otherwise it asks PyPI for a newer funasr, with no timeout
        disable_pbar=True,
        ncpu=ncpu,  # the default of 4 is far slower on small machines
        device=device,
        max_single_segment_time=_NO_FSMN_CUT_MS,
        frontend_conf={"dither": 0.0},  # deterministic features
    )


class FsmnSegmenter:
    """Streaming FSMN-VAD segmenter.

    ``model`` lets several segmenters share one loaded AutoModel (each stream has its own cache).
    ``aggressiveness`` in ``params`` does not apply to FSMN.
    """

    def __init__(
        self,
        model_dir: Path,
        params: VadParams = FSMN_DEFAULT_PARAMS,
        ncpu: int = 1,
        *,
        chunk_ms: int = 2000,
        device: str = "cpu",
        model: Any = None,
    ) -> None:
        if chunk_ms < 100:
            raise ValueError("chunk_ms must be at least 100")
        self.params = params
        self._model = model if model is not None else load_fsmn(model_dir, ncpu, device)
        self._chunk_ms = chunk_ms
        self._stride = ms_to_samples(chunk_ms)
        self._shaper = Shaper(params)
        self._framer = Framer()
        self._cache: dict[str, Any] = {}
        self._pending: list[np.ndarray] = []  # fed, not yet given to FSMN
        self._pending_len = 0
        self._sent = 0  # samples given to FSMN

    def feed(self, chunk: AudioChunk) -> list[Segment]:
        frames = self._framer.push(chunk)
        if len(frames):
            self._shaper.add_energies(frame_energies(frames))
        if len(chunk.samples):
            self._pending.append(np.asarray(chunk.samples, dtype=np.float32))
            self._pending_len += len(chunk.samples)
        # Always hold back at least one sample: the final call must carry audio, or FunASR returns
        # early without closing the open segment.
        n = (self._pending_len - 1) // self._stride * self._stride
        if n > 0:
            data = np.concatenate(self._pending)
            self._pending = [data[n:]]
            self._pending_len = len(data) - n
            self._run(data[:n], is_final=False)
        self._shaper.release(self._earliest_start())
        return self._shaper.take(self._framer.fed)

    def finish(self) -> list[Segment]:
        if self._pending_len and self._sent + self._pending_len >= _MIN_STREAM:
            self._run(np.concatenate(self._pending), is_final=True)
            self._pending, self._pending_len = [], 0
        self._shaper.close(self._sent)  # only if FSMN left a segment open, which it should not
        return self._shaper.take(self._framer.fed, final=True)

    @property
    def keep_from(self) -> int:
        return self._shaper.release(self._earliest_start())

    def _earliest_start(self) -> int:
        return max(self._sent - _FSMN_LOOKBACK, 0)

    def _run(self, audio: np.ndarray, is_final: bool) -> None:
        result = self._model.generate(
            input=audio,
            cache=self._cache,
            is_final=is_final,
            chunk_size=self._chunk_ms,
            # [start, -1] as soon as a start is known, [-1, end] later: the shaper can split long
            # speech while it is still going on.
            is_streaming_input=True,
            # Fixed end silence; without it funasr 1.4.16 switches to its dynamic schedule (issue #2970).
            max_end_silence_time=self.params.min_silence_ms,
            dynamic_silence=False,
            disable_pbar=True,
        )
        self._sent += len(audio)
        for start_ms, end_ms in result[0]["value"] if result else []:
            if start_ms >= 0:
                self._shaper.open(ms_to_samples(start_ms))
            if end_ms >= 0:
                self._shaper.close(ms_to_samples(end_ms))
        self._shaper.advance(self._sent - self._sent % FRAME)
