"""Random-weight FunASR model directories for tests and benchmarks, built offline.

Each builder writes the files a downloaded model has, for the real architecture, so
``funasr.AutoModel(model=<dir>, disable_update=True, device="cpu", ncpu=N)`` loads and runs it
through exactly the code path of the real thing. The weights are random (shaped so decoding is
not degenerate: tags, a few tokens per second, timestamps), so the text means nothing.

    python -m asrd.testing build sensevoice-tiny /tmp/sv-tiny
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
