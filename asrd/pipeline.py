"""One file through the whole pipeline: decode -> VAD -> recognize -> assemble -> sidecars.

Audio streams through: decoding, VAD and recognition work on bounded pieces, and only the
recognised text (small) is kept until the sidecars are written, so memory does not grow
with the length of the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .audio import decode, probe
from .batching import BatchBudget, batches
from .config import Settings
from .cuerules import CueRules
from .recognizer import RecognizeOptions, Recognizer
from .sidecars import Sidecar, choose_paths, write_outputs
from .transcript import assemble
from .types import SAMPLE_RATE, AudioChunk, Recognized, SpeechSpan, Transcript
from .vad import Segmenter, VadParams, WebrtcSegmenter, cut_spans

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (samples done, samples in the file)


def vad_params(settings: Settings) -> VadParams:
    vad = settings.vad
    return VadParams(
        aggressiveness=vad.aggressiveness,
        min_silence_ms=vad.min_silence_ms,
        padding_ms=vad.padding_ms,
        min_speech_ms=vad.min_speech_ms,
        max_segment_samples=int(vad.max_segment_seconds * SAMPLE_RATE),
    )


def segmenter_factory(settings: Settings) -> Callable[[], Segmenter]:
    """A new segmenter per file; FSMN-VAD's model is loaded once here and shared."""
    params = vad_params(settings)
    if settings.vad.engine == "webrtc":
        return lambda: WebrtcSegmenter(params)
    from .recognizer.modeldir import resolve
    from .vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter, load_fsmn

    model_dir = resolve(settings.vad.fsmn_model, settings.model.hub)
    model = load_fsmn(model_dir, ncpu=1)
    # FSMN's own published settings decide speech; only the segment length limit is ours.
    fsmn_params = replace(FSMN_DEFAULT_PARAMS, max_segment_samples=params.max_segment_samples)
    return lambda: FsmnSegmenter(model_dir, fsmn_params, model=model)


@dataclass(frozen=True)
class Outcome:
    source: Path
    transcript: Transcript
    sidecars: tuple[Sidecar, ...] = field(default_factory=tuple)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        recognizer: Recognizer,
        *,
        overwrite: bool = False,
        segmenter: Callable[[], Segmenter] | None = None,
        budget: BatchBudget | None = None,
    ) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.overwrite = overwrite
        self._segmenter = segmenter or segmenter_factory(settings)
        self._budget = budget or BatchBudget.for_device(recognizer.device)
        self._claimed: set[Path] = set()
        t = settings.transcribe
        self._options = RecognizeOptions(language=t.language, itn=t.itn, hotwords=t.hotwords)

    def set_options(self, options: RecognizeOptions) -> None:
        self._options = options

    def transcribe(self, source: Path, progress: Progress | None = None) -> Outcome:
        """Transcribe one file and write its sidecars. Raises DecodeError, SidecarError, ModelError."""
        out = self.settings.output
        if "{lang}" not in out.naming:
            # Refuse early, before spending compute, when the sidecars could not be written anyway.
            choose_paths(source, out.formats, out.naming, out.output_dir, None, overwrite=self.overwrite)
        transcript = self.recognize_file(source, progress)
        rules = CueRules.from_settings(self.settings.subtitles)
        written = write_outputs(transcript, out, rules=rules, overwrite=self.overwrite, claimed=self._claimed)
        return Outcome(source, transcript, tuple(written))

    def recognize_file(self, source: Path, progress: Progress | None = None) -> Transcript:
        total = probe(source).duration
        meter = _Meter()
        spans = cut_spans(meter.count(decode(source)), self._segmenter(), str(source))
        results: list[Recognized] = []
        done = 0
        for batch in batches(spans, self._budget):
            results.extend(self._recognize(batch))
            done = max(done, *(span.end for span in batch))
            if progress is not None:
                # Decoding runs ahead of recognition; progress is what has been recognised.
                progress(min(done, total or done), total or meter.decoded)
        if progress is not None:
            progress(meter.decoded, meter.decoded)
        return assemble(source, meter.decoded, results)


    def _recognize(self, batch: list[SpeechSpan]) -> list[Recognized]:
        """Recognise a batch; on GPU out-of-memory, halve it (and the budget for what follows) and
        try again. Only a single span that does not fit counts as a failure."""
        try:
            return self.recognizer.recognize(batch, self._options)
        except Exception as err:
            if not is_out_of_memory(err) or len(batch) == 1:
                raise
        half = len(batch) // 2
        self._budget = replace(
            self._budget,
            max_items=max(1, min(self._budget.max_items, half)),
            max_padded_samples=max(SAMPLE_RATE, self._budget.max_padded_samples // 2),
        )
        log.warning("out of GPU memory with %d spans; retrying as two batches (budget now %d)", len(batch),
                    self._budget.max_items)
        return self._recognize(batch[:half]) + self._recognize(batch[half:])


def is_out_of_memory(err: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError (and MPS's RuntimeError text), recognised without importing torch here.
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


class _Meter:
    """Counts decoded samples as chunks stream past, for progress and the file's duration."""

    def __init__(self) -> None:
        self.decoded = 0

    def count(self, chunks: Iterable[AudioChunk]) -> Iterator[AudioChunk]:
        for chunk in chunks:
            self.decoded = chunk.end
            yield chunk
