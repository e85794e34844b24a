"""Every change asrd makes to FunASR's own code, in one list, and the rules for applying them.

asrd replaces a few pieces of FunASR (faster attention, a cheaper checkpoint load, batch-independent
Paraformer results, ...; the modules named in each entry say how and why). They are found by class,
function and attribute names, so a FunASR release that renames or changes one could make a patch stop
applying or apply to code it was not written for. Hence:

- a patch runs only on the FunASR versions it was verified on; on any other version FunASR's own code
  runs for it, and one warning names the version and the patches skipped;
- each patch checks itself once, right after it is applied: its output on a small input against
  FunASR's own, within the tolerance stated here; a patch that fails is undone (with a warning);
- ``[model] funasr_patches = false`` runs FunASR's own code everywhere.
The worker reports what became of each (``Loaded.patches``), shown by ``asrd status`` and
``asrd model check``. This module does not import torch; the patches' code does, in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from asrd.recognizer import PATCH_ACTIVE, PATCH_UNUSED

log = logging.getLogger(__name__)

VERIFIED = ("1.4.16",)  # FunASR releases every patch below was checked against (tests + self-checks)


@dataclass(frozen=True)
class Patch:
    name: str
    replaces: str  # FunASR's (or torch's, inside FunASR's models) module and qualified name
    why: str
    tolerance: float  # self-check: largest |ours - FunASR's| / max |FunASR's| allowed; 0.0 = bit-identical
    verified: tuple[str, ...] = VERIFIED


# In the order the recognizer applies them.
PATCHES: tuple[Patch, ...] = (
    Patch("checkpoint_copy", "funasr.train_utils.load_pretrained_model.copy.deepcopy",
          "the loader deep-copies the checkpoint it just loaded: a third copy of the weights at load time "
          "(checkpoint.py)", 0.0),
    Patch("int8", "torch.nn.Linear in the FunASR model (torch.ao quantize_dynamic)",
          'precision = "int8": dynamic int8 Linear layers, ~2x faster on the CPU (funasr.py); not FunASR\'s '
          "output by design, hence the tolerance", 0.05),
    Patch("fp32_decisions", "<CifPredictor*>.forward, <CTC>.log_softmax (instance attributes)",
          "under fp16/bf16 autocast the CIF predictor and the CTC scores stay fp32 (precision.py); "
          "without it fp16/bf16 are not offered", 0.0),
    Patch("cif_padding", "funasr.models.paraformer.model.Paraformer.calc_predictor (+ calc_predictor_timestamp)",
          "padded encoder frames are zeroed before the CIF predictor so a span's text does not depend on "
          "its batch (padding.py); checked against the span run alone", 1e-5),
    Patch("sanm_attention", "funasr.models.{sanm.attention,sense_voice.model}.MultiHeadedAttentionSANM.forward",
          "fused scaled-dot-product attention instead of four passes over T^2 scores (attention.py)", 1e-5),
    Patch("fsmn_memory", "funasr.models.{sanm.attention,sense_voice.model}.MultiHeadedAttentionSANM.forward_fsmn",
          "the FSMN memory as one channels-last depthwise Conv2d, ~4x faster on the CPU (attention.py)", 0.0),
    Patch("lean_layers", "funasr.models.{sanm.encoder,sense_voice.model}.EncoderLayerSANM.forward",
          "residual sums in place, no multiply by a stochastic-depth 1.0 (attention.py)", 0.0),
    Patch("packed_linears", "torch.nn.Linear in the FunASR model (fp32, x86 CPU)",
          "oneDNN linears with weights packed once, 1.2-2.1x faster than MKL's repacking sgemm (packed.py)", 1e-5),
    Patch("ffn_relu", "funasr.models.transformer.positionwise_feed_forward.PositionwiseFeedForward.forward",
          "the ReLU fused into the packed first Linear (packed.py)", 1e-5),
    Patch("ctc_alignment", "funasr.models.sense_voice.model.ctc_forced_align (during this model's inference)",
          "the Viterbi recursion on numpy instead of ~8 tiny torch ops per frame (ctc_align.py)", 0.0),
    Patch("ctc_shared_log_softmax", "funasr.models.sense_voice.model.SenseVoiceSmall.ctc.log_softmax",
          "one CTC log-softmax per batch instead of one per item with timestamps (ctc_align.py)", 0.0),
)
BY_NAME = {patch.name: patch for patch in PATCHES}


@dataclass(frozen=True)
class Applied:
    """A patch in place. ``check`` returns the difference (in ``Patch.tolerance``'s terms) between the
    patched code's output and FunASR's own on a small input; ``undo`` puts FunASR's code back.
    ``handle`` is whatever the caller needs afterwards (e.g. the object installed)."""

    check: Callable[[], float]
    undo: Callable[[], None]
    handle: Any = None


def funasr_version() -> str:
    """The installed FunASR's version, read from its metadata (no import)."""
    try:
        return metadata.version("funasr")
    except metadata.PackageNotFoundError:
        return "not installed"


class Patcher:
    """Applies the registry's patches for one model load and records what became of each."""

    def __init__(self, enabled: bool = True, *, skip: Iterable[str] = (), version: str | None = None) -> None:
        """``skip`` names patches to leave off (tests compare with FunASR's own code that way)."""
        self.version = funasr_version() if version is None else version
        self._states: dict[str, str] = {}
        unknown = set(skip) - set(BY_NAME)
        if unknown:
            raise ValueError(f"unknown patch name(s): {', '.join(sorted(unknown))}")
        for name in skip:
            self._states[name] = "skipped"
        if not enabled:
            for patch in PATCHES:
                self._states[patch.name] = "funasr_patches = false"
            return
        unverified = [p.name for p in PATCHES if self.version not in p.verified and p.name not in self._states]
        for name in unverified:
            self._states[name] = f"not verified on funasr {self.version}"
        if unverified:
            log.warning("funasr %s is not a version asrd's FunASR patches were verified on (%s); FunASR's own "
                        "code runs instead of: %s", self.version, ", ".join(VERIFIED), ", ".join(unverified))

    def allowed(self, name: str) -> bool:
        return name not in self._states or self._states[name] == PATCH_UNUSED

    def apply(self, name: str, install: Callable[[], Applied | None]) -> Applied | None:
        """Apply patch ``name`` with ``install`` (None from it: nothing to patch in this model), then
        self-check it; returns it when it is active, else None with FunASR's code in place."""
        patch = BY_NAME[name]
        if not self.allowed(name):
            return None
        applied = install()
        if applied is None:
            self._states[name] = PATCH_UNUSED
            return None
        try:
            difference = _without_touching_the_random_state(applied.check)
        except Exception as err:  # a changed FunASR can break the check itself: FunASR's code is safer
            applied.undo()
            self._states[name] = f"self-check failed: {type(err).__name__}"
            log.warning("FunASR patch %s failed its self-check (%s: %s); FunASR's own code runs instead",
                        name, type(err).__name__, err)
            return None
        if not difference <= patch.tolerance:  # NaN fails too
            applied.undo()
            self._states[name] = f"self-check failed: difference {difference:.2g} > {patch.tolerance:g}"
            log.warning("FunASR patch %s failed its self-check: output differs from FunASR's by %.3g "
                        "(tolerance %g); FunASR's own code runs instead", name, difference, patch.tolerance)
            return None
        self._states[name] = PATCH_ACTIVE
        log.debug("FunASR patch %s active (self-check difference %.3g)", name, difference)
        return applied

    def state(self, name: str) -> str:
        return self._states.get(name, PATCH_UNUSED)

    def states(self) -> tuple[tuple[str, str], ...]:
        """(name, state) for every patch in the registry, in its order; never tried = unused."""
        return tuple((patch.name, self.state(patch.name)) for patch in PATCHES)


def _without_touching_the_random_state(check: Callable[[], float]) -> float:
    """Run a self-check so that whatever it draws (a module's initial weights) leaves torch's global
    random state as it was: loading a model must not change what a seeded caller gets next."""
    import torch

    with torch.random.fork_rng(devices=[]):
        return check()


def difference(ours: Any, theirs: Any) -> float:
    """Largest |ours - theirs| relative to the largest |theirs|, over tensors or (nested) tuples/lists
    of them; inf when shapes, types or structure differ. 0.0 means bit-identical (NaN aside)."""
    import torch

    if isinstance(theirs, torch.Tensor):
        if not isinstance(ours, torch.Tensor) or ours.shape != theirs.shape or ours.dtype != theirs.dtype:
            return float("inf")
        if not theirs.is_floating_point():
            return 0.0 if torch.equal(ours, theirs) else float("inf")
        if torch.equal(ours, theirs):
            return 0.0
        scale = float(theirs.abs().max()) if theirs.numel() else 0.0
        return float((ours - theirs).abs().max()) / (scale or 1.0)
    if isinstance(theirs, tuple | list):
        if not isinstance(ours, tuple | list) or len(ours) != len(theirs):
            return float("inf")
        return max((difference(a, b) for a, b in zip(ours, theirs, strict=True)), default=0.0)
    return 0.0 if ours == theirs else float("inf")


def replace_attribute(obj: Any, name: str, value: Any) -> Callable[[], None]:
    """Set ``obj.name`` (an instance attribute shadowing the class's); returns the undo."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)

    def undo() -> None:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)

    return undo


def undo_all(undos: list[Callable[[], None]]) -> Callable[[], None]:
    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


def device_of(module: Any) -> Any:
    """Where ``module``'s weights are (cpu when it has none a torch parameter can tell)."""
    import torch

    param = next(iter(module.parameters()), None) if isinstance(module, torch.nn.Module) else None
    return torch.device("cpu") if param is None else param.device


def seeded(seed: int = 0) -> Any:
    """A private torch generator, so self-checks never move the global random state."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
