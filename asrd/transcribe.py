"""Files through the whole pipeline: decode -> VAD -> recognize -> assemble -> sidecars.

Audio streams through: decoding, VAD and recognition work on bounded pieces (``engine``), and
only the recognised text (small) is kept until the sidecars are written, so memory does not grow
with the length of a file or the number of files.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from asrd.config import ModelSettings, Settings, VadSettings
from asrd.output.cuerules import CueRules
from asrd.output.sidecars import Sidecar, choose_paths, write_outputs
from asrd.recognizer import RecognizeOptions, Recognizer
from asrd.records import SAMPLE_RATE, Transcript
from asrd.worker.audio import probe
from asrd.worker.batching import BatchBudget
from asrd.worker.engine import Engine, FileDone, FileFailed, FileProgress, FileRequest
from asrd.worker.threads import ThreadPlan
from asrd.worker.vad import Segmenter, VadParams, WebrtcSegmenter

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (samples done, samples in the file or None while unknown)


def vad_params(vad: VadSettings) -> VadParams:
    return VadParams(
        aggressiveness=vad.aggressiveness,
        min_silence_ms=vad.min_silence_ms,
        padding_ms=vad.padding_ms,
        min_speech_ms=vad.min_speech_ms,
        max_segment_samples=int(vad.max_segment_seconds * SAMPLE_RATE),
    )


def segmenter_factory(vad: VadSettings, hub: str = "ms") -> Callable[[], Segmenter]:
    """A new segmenter per file; FSMN-VAD's model is loaded once here and shared."""
    params = vad_params(vad)
    if vad.engine == "webrtc":
        return lambda: WebrtcSegmenter(params)
    from asrd.recognizer.modeldir import resolve
    from asrd.worker.vad_fsmn import FSMN_DEFAULT_PARAMS, FsmnSegmenter, load_fsmn

    model_dir = resolve(vad.fsmn_model, hub)
    model = _Serialized(load_fsmn(model_dir, ncpu=1))  # front-end threads share it
    # FSMN's own published settings decide speech; only the segment length limit is ours.
    fsmn_params = replace(FSMN_DEFAULT_PARAMS, max_segment_samples=params.max_segment_samples)
    return lambda: FsmnSegmenter(model_dir, fsmn_params, model=model)


def build_engine(
    recognizer: Recognizer,
    model: ModelSettings,
    vad: VadSettings,
    *,
    segmenter: Callable[[], Segmenter] | None = None,
    budget: BatchBudget | None = None,
    frontend_threads: int | None = None,
) -> Engine:
    """The batching engine for ``recognizer`` as the ``[model]`` and ``[vad]`` sections configure it
    (what ``asrd transcribe`` and the daemon's model worker both run)."""
    if frontend_threads is None:
        plan = ThreadPlan.for_device(recognizer.device, model_threads=getattr(recognizer, "threads", 0))
        frontend_threads = plan.frontend_threads
    return Engine(
        recognizer,
        segmenter or segmenter_factory(vad, model.hub),
        budget or BatchBudget.configured(recognizer.device, model.batch_seconds, model.files_in_flight),
        frontend_threads=frontend_threads,
    )


@dataclass(frozen=True)
class Outcome:
    source: Path
    transcript: Transcript
    sidecars: tuple[Sidecar, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Failure:
    source: Path
    error: BaseException


class Pipeline:
    """Sidecars for files, through one ``Engine`` that batches speech across them."""

    def __init__(
        self,
        settings: Settings,
        recognizer: Recognizer,
        *,
        overwrite: bool = False,
        segmenter: Callable[[], Segmenter] | None = None,
        budget: BatchBudget | None = None,
        frontend_threads: int | None = None,
    ) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.overwrite = overwrite
        self.engine = build_engine(
            recognizer, settings.model, settings.vad,
            segmenter=segmenter, budget=budget, frontend_threads=frontend_threads,
        )
        self._claimed: set[Path] = set()
        t = settings.transcribe
        self._options = RecognizeOptions(language=t.language, itn=t.itn, hotwords=t.hotwords)

    def transcribe(self, source: Path, progress: Progress | None = None) -> Outcome:
        """Transcribe one file and write its sidecars. Raises DecodeError, SidecarError, ModelError."""
        result = next(self.transcribe_many([source], _per_file(progress)))
        if isinstance(result, Failure):
            raise result.error
        return result

    def transcribe_many(
        self, sources: Iterable[Path], progress: Callable[[Path, int, int | None], Any] | None = None
    ) -> Iterator[Outcome | Failure]:
        """Every file's outcome (or failure), in the order they finish. Speech of up to the budget's
        ``max_files`` files is batched together."""
        out = self.settings.output
        rules = CueRules.from_settings(self.settings.subtitles)
        paths: dict[int, Path] = {}
        early: list[Failure] = []

        def requests() -> Iterator[FileRequest]:
            for key, source in enumerate(sources):
                paths[key] = source
                if "{lang}" not in out.naming:
                    # Refuse early, before spending compute, when the sidecars could not be written anyway.
                    try:
                        choose_paths(source, out.formats, out.naming, out.output_dir, None, overwrite=self.overwrite)
                    except Exception as err:
                        early.append(Failure(source, err))
                        continue
                yield FileRequest(key, source, self._options)

        for event in self._events(requests(), progress, paths):
            while early:
                yield early.pop(0)
            if isinstance(event, FileFailed):
                yield Failure(paths[event.key], event.error)
            elif isinstance(event, FileDone):
                try:
                    written = write_outputs(
                        event.transcript, out, rules=rules, overwrite=self.overwrite, claimed=self._claimed
                    )
                except Exception as err:
                    yield Failure(paths[event.key], err)
                else:
                    yield Outcome(paths[event.key], event.transcript, tuple(written))
        yield from early

    def recognize_file(self, source: Path, progress: Progress | None = None) -> Transcript:
        """One file's transcript, no sidecars. Raises what the file's decoding or recognition raised."""
        events = self._events([FileRequest(0, source, self._options)], _per_file(progress), {0: source})
        for event in events:
            if isinstance(event, FileFailed):
                raise event.error
            if isinstance(event, FileDone):
                return event.transcript
        raise RuntimeError(f"{source}: the engine ended without a result")  # not reached

    def _events(
        self,
        requests: Iterable[FileRequest],
        progress: Callable[[Path, int, int | None], Any] | None,
        paths: dict[int, Path],
    ) -> Iterator[FileDone | FileFailed]:
        totals: dict[int, int | None] = {}  # the header's length; None when it does not say

        def probed(items: Iterable[FileRequest]) -> Iterator[FileRequest]:
            for request in items:
                try:
                    totals[request.key] = probe(request.path).duration
                except Exception:
                    totals[request.key] = None  # decoding will report what is wrong
                yield request

        for event in self.engine.run(probed(requests), self.engine.budget.max_files):
            if isinstance(event, FileProgress):
                if progress is not None:
                    # Once decoded, the decoded length wins over what the header said or guessed.
                    total = event.total if event.total is not None else totals.get(event.key)
                    progress(paths[event.key], event.done if total is None else min(event.done, total), total)
                continue
            if isinstance(event, FileDone) and progress is not None:
                progress(paths[event.key], event.transcript.duration, event.transcript.duration)
            yield event


def _per_file(progress: Progress | None) -> Callable[[Path, int, int | None], None] | None:
    if progress is None:
        return None
    return lambda _path, done, total: progress(done, total)


class _Serialized:
    """One FSMN-VAD model shared by front-end threads: one ``generate`` at a time (each stream
    keeps its own cache; FunASR's AutoModel itself is not documented as thread-safe)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._lock = threading.Lock()

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._model.generate(*args, **kwargs)
