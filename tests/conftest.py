"""Session fixtures: the shared real-speech material and tiny random-weight FunASR models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real speech, real VAD weights); skip when absent."""
    path = REPO_ROOT.parent / "shared"
    if not path.is_dir():
        pytest.skip(f"shared test material not found at {path} (CI provides it beside the checkout)")
    return path


@pytest.fixture(scope="session")
def tiny_sensevoice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SenseVoiceSmall-architecture model directory with random weights (seed 0)."""
    from asrd.testing import build_sensevoice  # imports torch: only when a test asks for it

    return build_sensevoice(tmp_path_factory.mktemp("models") / "sensevoice-tiny")


@pytest.fixture(scope="session")
def tiny_paraformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Paraformer-architecture model directory with random weights (seed 0)."""
    from asrd.testing import build_paraformer

    return build_paraformer(tmp_path_factory.mktemp("models") / "paraformer-tiny")
