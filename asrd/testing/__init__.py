"""Random-weight FunASR model directories for tests and benchmarks, built offline.

Each builder writes the files a downloaded model has, for the real architecture, so
``funasr.AutoModel(model=<dir>, disable_update=True, device="cpu", ncpu=N)`` loads and runs it
through exactly the code path of the real thing. The weights are random (shaped so decoding is
not degenerate: tags, a few tokens per second, timestamps), so the text means nothing.

    python -m asrd.testing build sensevoice-tiny /tmp/sv-tiny

What a build promises to be deterministic about:

- Same seed, same machine (CPU kind and the torch, FunASR and sentencepiece versions): every file
  bit-for-bit, whatever the calling process has done before (thread count, default dtype, test
  order). A build runs single-threaded in float32 and restores the caller's settings after.
- Across CPUs: ``config.yaml``, ``am.mvn``, the vocabulary and tokenizer files exactly; the weights
  have the same names, shapes and dtypes and agree to float rounding: torch picks its kernels for
  the CPU, and the layers fitted to speech-like input (``calibrate``) go through matmuls whose
  rounding is that kernel's. Decoded text can differ only where two tokens nearly tie.

Nothing should compare a model's bytes with a build made on another machine; tests compare with a
build made in the same process (the session fixtures in ``tests/conftest.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asrd.testing.paraformer import build_paraformer
    from asrd.testing.sensevoice import build_sensevoice

__all__ = ["build_paraformer", "build_sensevoice"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the builders pull in torch, which the package's other helpers
    # (benchmark workloads, the VAD report) do not need.
    if name == "build_sensevoice":
        from asrd.testing.sensevoice import build_sensevoice

        return build_sensevoice
    if name == "build_paraformer":
        from asrd.testing.paraformer import build_paraformer

        return build_paraformer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
