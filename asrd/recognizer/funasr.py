"""The FunASR engine. Imports torch and funasr: only the process that runs the model loads this."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrd.output.text import join_text
from asrd.recognizer import PATCH_UNUSED, ModelError, RecognizeOptions, describe_patches
from asrd.recognizer.funasr_output import parse_tags, span_tokens
from asrd.recognizer.modeldir import check_model_dir
from asrd.recognizer.precision import NonFinite, auto_precision, check_autocast, native_bf16
from asrd.records import Recognized, SpeechSpan

if TYPE_CHECKING:
    from asrd.recognizer.ctc_align import SharedLogSoftmax

log = logging.getLogger(__name__)

# Only these model classes use `hotword`; SenseVoice and plain Paraformer ignore it silently.
_HOTWORD_MODELS = {"SeacoParaformer", "FunASRNano", "ContextualParaformer"}


class _LogWriter(io.TextIOBase):
    """File-like sink sending FunASR's print() output (banner, notices) to the log, not our stdout."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.debug("funasr: %s", line.rstrip())
        return len(text)


@contextlib.contextmanager
def _quiet(*, loading: bool = False) -> Iterator[None]:
    """FunASR prints to stdout, and while loading logs chatter (``trust_remote_code: False``) as
    warnings on the root logger; neither belongs on a user's terminal or in the journal."""
    with contextlib.redirect_stdout(_LogWriter()):
        if loading:
            logging.disable(logging.WARNING)
        try:
            yield
        finally:
            if loading:
                logging.disable(logging.NOTSET)


def resolve_device(requested: str) -> str:
    """``auto`` picks cuda, then mps, then cpu. An explicit device that is absent is an error."""
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "mps":
        if not mps:
            raise ModelError("device 'mps' requested but Apple Metal (MPS) is not available here")
        return "mps"
    if requested.startswith("cuda"):
        if not cuda:
            raise ModelError(f"device {requested!r} requested but no CUDA GPU is available (torch sees none)")
        index = int(requested.split(":", 1)[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {requested!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist")
        return requested
    raise ModelError(f"unknown device {requested!r}")


def _model_class(model_dir: Path) -> str:
    for line in (model_dir / "config.yaml").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("model:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    return "unknown"


class FunASRRecognizer:
    """A FunASR model loaded once from a checked local directory; batches go through ``generate()``."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str = "auto",
        threads: int = 0,
        precision: str = "auto",
        timestamps: bool | None = None,
        allow_cpu_half: bool = False,
        patches: bool = True,
        skip_patches: Sequence[str] = (),
    ) -> None:
        """``allow_cpu_half`` is for tests: it lets fp16/bf16 run on the CPU (slow, no use in production)
        so the half-precision path can be exercised on machines without a GPU. ``patches=False`` runs
        FunASR's own code everywhere (``[model] funasr_patches``); ``skip_patches`` names patches to
        leave off (tests compare with FunASR's own code that way). See asrd.recognizer.patches."""
        check_model_dir(model_dir)
        self._dir = model_dir
        self._class = _model_class(model_dir)
        # Paraformer's token times come free with decoding. SenseVoice's come from a CTC forced
        # alignment that FunASR makes slow (see ctc_align); with asrd's equivalent, faster pieces in
        # place they cost ~2% of the full model's time on 2 CPU cores, so they are on by default.
        self._timestamps = True if timestamps is None else timestamps
        self._warned_hotwords = False
        self._warned_overflow = False
        self._autocast: tuple[str, Any] | None = None  # (device type, torch dtype) for fp16/bf16
        self._in_half = False  # a generate() under autocast is running: the encoder output is checked
        started = time.monotonic()
        from asrd.recognizer.patches import Patcher

        self._patcher = patcher = Patcher(patches, skip=skip_patches)
        if patcher.allowed("packed_linears"):
            from asrd.recognizer.packed import limit_caches  # before anything runs a oneDNN primitive

            limit_caches()
        with _quiet(loading=True):
            import torch
            from funasr import AutoModel

            from asrd.recognizer.checkpoint import patch_loader
            from asrd.worker.threads import ThreadPlan

            self._device = resolve_device(device)
            # FunASR's default of 4 threads on a 2-core machine made inference 60x slower
            # (thread oversubscription); always set it to what this process may use, leaving the
            # front end its share (0 = choose for the device).
            self.threads = threads = ThreadPlan.for_device(self._device, model_threads=threads).model_threads
            torch.set_num_threads(threads)
        # FunASR's loader would hold a third copy of the weights. (Outside _quiet: a failed self-check warns.)
        single_copy = patcher.apply("checkpoint_copy", patch_loader)
        with _quiet(loading=True):
            try:
                self._model: Any = AutoModel(
                    model=str(model_dir),
                    device=self._device,
                    ncpu=threads,
                    disable_update=True,  # else it asks PyPI for updates with no timeout
                    disable_pbar=True,
                    disable_log=True,
                    frontend_conf={"dither": 0.0},  # dither makes identical input give different text
                )
            finally:
                if single_copy is not None:
                    single_copy.undo()  # for this load only
        self._precision = self._apply_precision(precision, allow_cpu_half=allow_cpu_half)
        self._apply_patches()
        from asrd.recognizer.heap import trim_heap

        trim_heap()  # the fp32 model int8 quantisation replaced, and loading's buffers
        self.load_seconds = time.monotonic() - started
        log.info(
            "loaded %s (%s) on %s, %s, %d thread(s) in %.1f s; FunASR patches: %s",
            model_dir, self._class, self._device, self._precision, threads, self.load_seconds,
            describe_patches(self.patches),
        )

    def _apply_patches(self) -> None:
        """The patches that apply to the loaded model, after precision (int8 quantisation replaces the
        model with a converted copy), each self-checked by the patcher."""
        from asrd.recognizer import attention, ctc_align, packed, padding

        patcher, model = self._patcher, self._model.model
        # Paraformer: a span's text must not depend on its batch
        patcher.apply("cif_padding", lambda: padding.patch_predictor_input(model))
        patcher.apply("sanm_attention", lambda: attention.patch_attention(model))
        patcher.apply("fsmn_memory", lambda: attention.patch_fsmn(model))
        patcher.apply("lean_layers", lambda: attention.patch_lean_layers(model))
        if self._device == "cpu" and self._precision == "fp32":
            packed_linears = patcher.apply("packed_linears", lambda: packed.patch_linears(model))
            if packed_linears is not None:
                log.debug("%d Linear layers packed for oneDNN", packed_linears.handle)
            patcher.apply("ffn_relu", lambda: packed.patch_ffn_relu(model))
        self._shared_ctc: SharedLogSoftmax | None = None
        if self._class == "SenseVoiceSmall" and self._timestamps:
            if patcher.apply("ctc_alignment", lambda: ctc_align.patch_alignment(model)) is None:
                log.info("SenseVoice token timestamps use FunASR's own, slower alignment")
            shared = patcher.apply("ctc_shared_log_softmax", lambda: ctc_align.patch_shared_log_softmax(model))
            self._shared_ctc = None if shared is None else shared.handle

    @property
    def patches(self) -> tuple[tuple[str, str], ...]:
        """(name, state) of every FunASR patch in the registry for this model (asrd.recognizer.patches)."""
        return self._patcher.states()

    def _apply_precision(self, precision: str, *, allow_cpu_half: bool) -> str:
        import torch

        from asrd.recognizer.precision import patch_fp32_decisions, patch_int8

        wanted = precision
        if precision == "auto":
            precision = auto_precision(self._device, native_bf16(self._device))
        if precision == "fp32":
            return "fp32"
        if precision == "int8":
            if self._device != "cpu":
                raise ModelError("precision 'int8' is for the CPU; use fp16 or bf16 on a GPU")
            # Dynamic int8 quantisation of the Linear layers: about 2x faster on CPU.
            if self._patcher.apply("int8", lambda: patch_int8(self._model)) is None:
                log.warning("precision int8 needs asrd's int8 patch, which is off (%s): running fp32",
                            self._patcher.state("int8"))
                return "fp32"
            return "int8"
        if precision not in ("fp16", "bf16"):
            raise ModelError(f"unknown precision {precision!r}; use auto, fp32, fp16, bf16 or int8")
        if self._device == "cpu" and not allow_cpu_half and not (precision == "bf16" and native_bf16("cpu")):
            # fp16 on a CPU was 5.7x slower than fp32 here; bf16 only pays with bf16 instructions.
            raise ModelError(f"precision {precision!r} needs a GPU (cuda or mps) or, for bf16, a CPU with "
                             "bfloat16 instructions (AVX512-BF16/AMX); on this CPU use fp32 or int8")
        if precision == "bf16" and self._device.startswith("cuda") and not native_bf16(self._device):
            # torch would emulate it (slower than fp32) on GPUs older than Ampere.
            raise ModelError(f"precision 'bf16' needs a GPU with native bfloat16 (Ampere or newer); {self._device} "
                             "has none: use fp32, or fp16")
        dtype = torch.float16 if precision == "fp16" else torch.bfloat16
        device_type = torch.device(self._device).type
        check_autocast(self._device, dtype, precision)
        # FunASR's own fp16/bf16 options (AutoModel(fp16=True)) cast the weights but not the fp32 fbank
        # features: in 1.4.16 both crash on SenseVoice and Paraformer ("mat1 and mat2 must have the same
        # dtype"). Autocast instead runs the matrix products in half precision and leaves the weights,
        # the features and the positional encodings (SenseVoice computes them in the input's dtype:
        # bf16 cannot even hold frame positions past 256) in fp32.
        model = self._model.model
        applied = self._patcher.apply("fp32_decisions", lambda: patch_fp32_decisions(model, device_type))
        if applied is None and self._patcher.state("fp32_decisions") != PATCH_UNUSED:
            (log.info if wanted == "auto" else log.warning)(
                "precision %s needs asrd's fp32_decisions patch, which is off (%s): running fp32",
                precision, self._patcher.state("fp32_decisions"))
            return "fp32"
        self._autocast = (device_type, dtype)
        if isinstance(getattr(model, "encoder", None), torch.nn.Module):
            model.encoder.register_forward_hook(self._check_finite)
        return precision

    def _check_finite(self, module: Any, args: Any, output: Any) -> None:
        import torch

        out = output[0] if isinstance(output, tuple) else output
        if self._in_half and isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
            raise NonFinite("inf or NaN in the encoder output")

    @property
    def name(self) -> str:
        return str(self._dir)

    @property
    def device(self) -> str:
        return self._device

    @property
    def precision(self) -> str:
        return self._precision

    def recognize(self, spans: Sequence[SpeechSpan], options: RecognizeOptions) -> list[Recognized]:
        if not spans:
            return []
        kwargs: dict[str, Any] = {
            "batch_size": len(spans),
            "language": options.language,
            "use_itn": options.itn,
            "disable_pbar": True,
        }
        if self._timestamps:
            kwargs["output_timestamp"] = True
        if options.hotwords:
            if self._class in _HOTWORD_MODELS:
                kwargs["hotword"] = " ".join(options.hotwords)
            elif not self._warned_hotwords:
                log.warning("hotwords are ignored: model %s (%s) does not support them", self._dir, self._class)
                self._warned_hotwords = True
        raw = self._generate(spans, kwargs)
        if len(raw) != len(spans):
            # When the CIF predictor finds no token in ANY item of a batch, FunASR returns a single
            # {'text': ''} for the whole batch; redo one by one so every span gets its own result.
            single = {**kwargs, "batch_size": 1}
            raw = [(self._generate([span], single) or [{}])[0] for span in spans]
        return [self._result(span, item) for span, item in zip(spans, raw, strict=True)]

    def _forget_logits(self) -> None:
        if self._shared_ctc is not None:
            self._shared_ctc.clear()  # do not hold a batch's (B, T, 25k) CTC logits past its generate()

    def _generate(self, spans: Sequence[SpeechSpan], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return self._generate_quietly(spans, kwargs)
        finally:
            self._forget_logits()

    def _generate_quietly(self, spans: Sequence[SpeechSpan], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        with _quiet():
            try:
                return self._generate_in_precision(spans, kwargs)
            except RuntimeError as err:
                if type(err).__name__ == "OutOfMemoryError" and self._device.startswith("cuda"):
                    import torch

                    self._forget_logits()
                    torch.cuda.empty_cache()  # give the smaller retry (pipeline) the freed blocks
                raise
            except IndexError:
                if not kwargs.get("output_timestamp"):
                    raise
                # SenseVoice's timestamp code re-encodes each decoded piece and crashes when one does
                # not round-trip to a single id; the text is still good without times.
                log.warning("token timestamps failed for this batch; continuing without them")
                self._forget_logits()
                return self._generate_in_precision(spans, {**kwargs, "output_timestamp": False})

    def _generate_in_precision(self, spans: Sequence[SpeechSpan], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        # Results come back in input order; numpy inputs in one call share a key, so match by position.
        inputs = [span.samples for span in spans]
        if self._autocast is None:
            return list(self._model.generate(input=inputs, **kwargs))
        import torch

        device_type, dtype = self._autocast
        try:
            self._in_half = True
            with torch.autocast(device_type, dtype=dtype):
                return list(self._model.generate(input=inputs, **kwargs))
        except NonFinite:
            # fp16 overflow (FunASR issue #1889: NaN in the SANM encoder under fp16 autocast) would
            # otherwise come out as wrong or empty text with no error. Redo the batch in fp32.
            if not self._warned_overflow:
                log.warning(
                    "%s overflowed (inf/NaN in the encoder); such batches are redone in fp32 "
                    '(precision = "bf16" or "fp32" avoids this)', self._precision,
                )
                self._warned_overflow = True
            self._forget_logits()
        finally:
            self._in_half = False
        return list(self._model.generate(input=inputs, **kwargs))

    def _result(self, span: SpeechSpan, item: dict[str, Any]) -> Recognized:
        text, language, emotion, events = parse_tags(str(item.get("text", "")))
        tokens = span_tokens(span, text, item)
        if tokens and self._class != "SenseVoiceSmall":
            # With timestamps Paraformer separates every token by a space, CJK included; rejoin.
            # (SenseVoice's text is already right: rejoining its words would space out punctuation.)
            text = ""
            for token in tokens:
                text = join_text(text, token.text)
        return Recognized(
            source=span.source,
            index=span.index,
            start=span.start,
            end=span.end,
            text=text,
            language=language if language != "nospeech" else None,
            emotion=emotion,
            events=events,
            tokens=tokens,
        )

    def close(self) -> None:
        self._model = None
