"""Files shared by the test-model builders: am.mvn, weights, config, the completion stamp."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

STAMP_NAME = ".asrd-testing.json"
BUILDER_VERSION = 2
"""Bump when a builder's output changes, so stamped directories from older builds are rebuilt.
2: builds run single-threaded (the calibration's float sums depended on the caller's thread count)."""

BUILD_THREADS = 1
"""torch threads a build runs with, whatever the process had set. The calibration passes speech-like
features through the random model; how a matmul splits its sums over threads changes the last bit of
the result, so a build made after a recognizer had set 1 thread differed from one made with 2."""

# Per-mel-bin mean and 1/std of 80-bin fbank features (funasr WavFrontend settings, no dither,
# samples scaled to int16 range) measured over ~140 s of real English and Mandarin speech with
# its pauses. Real models ship statistics of their training data; these normalise features
# the same way (to roughly zero mean, unit variance).
_MEL_MEAN = """
9.797 10.024 10.570 11.445 12.248 12.844 13.209 13.282 13.344 13.234 13.296 13.373 13.615 13.903
14.079 14.170 14.185 14.067 14.106 13.791 13.531 13.727 13.552 13.668 13.539 13.557 13.388 13.437
13.441 13.562 13.723 13.745 13.782 13.842 13.945 13.985 13.937 13.925 13.995 13.929 13.993 13.986
14.070 14.065 14.127 14.173 14.223 14.320 14.473 14.687 14.846 14.920 15.099 15.242 15.393 15.565
15.704 15.735 15.724 15.725 15.659 15.484 15.290 15.160 15.102 15.056 15.009 14.962 14.943 14.887
14.874 14.938 14.916 14.875 14.919 14.826 14.715 14.568 14.218 13.682
"""
_MEL_INV_STD = """
0.415 0.395 0.300 0.284 0.268 0.256 0.245 0.235 0.237 0.240 0.244 0.243 0.240 0.241 0.242 0.238
0.235 0.233 0.236 0.241 0.243 0.242 0.242 0.245 0.252 0.257 0.259 0.260 0.260 0.260 0.265 0.271
0.277 0.277 0.278 0.281 0.282 0.283 0.282 0.284 0.278 0.276 0.279 0.283 0.282 0.281 0.283 0.284
0.279 0.275 0.275 0.277 0.282 0.279 0.272 0.271 0.272 0.276 0.277 0.276 0.282 0.285 0.291 0.293
0.293 0.291 0.289 0.286 0.284 0.279 0.275 0.268 0.267 0.270 0.271 0.270 0.270 0.271 0.279 0.283
"""


def am_mvn_text(lfr_m: int) -> str:
    """A Kaldi nnet CMVN file as funasr reads it, for ``lfr_m`` stacked 80-bin frames.

    ``<AddShift>`` holds minus the mean and ``<Rescale>`` 1/std, repeated per stacked frame
    (the low-frame-rate features are ``lfr_m`` consecutive frames side by side).
    """
    shift = [f"{-float(v):.6g}" for v in _MEL_MEAN.split()] * lfr_m
    scale = [f"{float(v):.6g}" for v in _MEL_INV_STD.split()] * lfr_m
    dim = len(shift)
    return (
        f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(shift)} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(scale)} ]\n</Nnet>\n"
    )


def write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary name, so an interrupted build never leaves a plausible file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_yaml(path: Path, header: str, data: dict[str, Any]) -> None:
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    write_text(path, comment + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def save_weights(path: Path, module: torch.nn.Module) -> None:
    """Save the state dict the way funasr checkpoints are loaded (a plain name -> tensor map)."""
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    torch.save(state, tmp)
    os.replace(tmp, path)


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Deterministic PyTorch-default-like init from ``seed``, independent of global RNG state.

    Weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what nn.Linear/Conv1d do by default), biases
    the same, norm layers at identity, embeddings ~ N(0, 1). Parameters are visited in name
    order so the result does not depend on how the module was constructed.
    """
    gen = torch.Generator().manual_seed(seed)
    owners = {
        f"{mod_name}.{p_name}" if mod_name else p_name: mod
        for mod_name, mod in module.named_modules()
        for p_name, _ in mod.named_parameters(recurse=False)
    }
    with torch.no_grad():
        for name, param in sorted(module.named_parameters()):
            owner = owners[name]
            if isinstance(owner, torch.nn.LayerNorm | torch.nn.BatchNorm1d):
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif isinstance(owner, torch.nn.Embedding):
                param.normal_(generator=gen)
            else:
                fan_in = owner.weight[0].numel() if hasattr(owner, "weight") else param.shape[-1]
                param.uniform_(-(fan_in**-0.5), fan_in**-0.5, generator=gen)


@contextlib.contextmanager
def fixed_numerics() -> Iterator[None]:
    """Run a build with the same float settings whatever the process state, restoring it after.

    Process-wide torch settings that other code changes (a recognizer sets the thread count, a test
    may change the default dtype) would otherwise leak into the weights.
    """
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.set_num_threads(BUILD_THREADS)
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """funasr prints notices (ffmpeg, downloads) to stdout; keep stdout for our own output."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def funasr_tables() -> Any:
    """funasr's class registry, populated (importing funasr registers every model class)."""
    with stdout_to_stderr():
        import funasr  # noqa: F401  (import registers the classes)
        from funasr.register import tables
    return tables


def stamp_matches(dest: Path, stamp: dict[str, Any], files: list[str]) -> bool:
    """True when ``dest`` holds a finished build described by ``stamp`` with all ``files``."""
    try:
        found = json.loads((dest / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found == stamp and all((dest / name).is_file() for name in files)


def build_once(dest: Path, stamp: dict[str, Any], files: list[str], build: Callable[[Path], None]) -> Path:
    """Run ``build(dest)`` unless ``dest`` already holds that build; stamp it when done."""
    dest = Path(dest)
    stamp = {**stamp, "builder_version": BUILDER_VERSION}
    if stamp_matches(dest, stamp, files):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    (dest / STAMP_NAME).unlink(missing_ok=True)  # the stamp is written last, only on success
    with fixed_numerics():
        build(dest)
    write_text(dest / STAMP_NAME, json.dumps(stamp, sort_keys=True) + "\n")
    return dest


# The WavFrontend and SpecAugment settings both published models (SenseVoiceSmall, Paraformer-large) use:
# 80 mel bins, LFR stacking 7 frames with stride 6.
LFR_M, LFR_N, N_MELS = 7, 6, 80
# The SAN-M encoder settings both published models (SenseVoiceSmall, Paraformer-zh) ship with, sizes apart.
SANM_ENCODER: dict[str, object] = {
    "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1,
    "attention_dropout_rate": 0.1,
    "input_layer": "pe",
    "pos_enc_class": "SinusoidalPositionEncoder",
    "normalize_before": True,
    "kernel_size": 11,
    "sanm_shfit": 0,
    "selfattention_layer_type": "sanm",
}


def wav_frontend_conf(**extra: Any) -> dict[str, Any]:
    return {
        "fs": 16000, "window": "hamming", "n_mels": N_MELS, "frame_length": 25, "frame_shift": 10,
        "lfr_m": LFR_M, "lfr_n": LFR_N, **extra,
    }


def specaug_lfr_conf() -> dict[str, Any]:
    return {
        "apply_time_warp": False, "time_warp_window": 5, "time_warp_mode": "bicubic",
        "apply_freq_mask": True, "freq_mask_width_range": [0, 30], "lfr_rate": LFR_N, "num_freq_mask": 1,
        "apply_time_mask": True, "time_mask_width_range": [0, 12], "num_time_mask": 1,
    }
