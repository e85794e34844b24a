"""Loading a checkpoint without FunASR's deep copy of it still loads every weight."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from funasr.train_utils import load_pretrained_model as loader

from asrd.recognizer.checkpoint import single_copy_loading
from asrd.recognizer.funasr import FunASRRecognizer


def test_the_deep_copy_is_skipped_only_inside() -> None:
    state = {"w": torch.ones(3)}
    with single_copy_loading():
        assert loader.copy.deepcopy(state) is state
    assert loader.copy is copy
    with pytest.raises(RuntimeError), single_copy_loading():
        raise RuntimeError("a failed load")
    assert loader.copy is copy  # put back after an error too


@pytest.mark.parametrize("model", ["sensevoice", "paraformer"])
def test_every_checkpoint_weight_is_loaded(model: str, request: pytest.FixtureRequest) -> None:
    model_dir: Path = request.getfixturevalue(f"tiny_{model}_dir")
    saved = torch.load(model_dir / "model.pt", map_location="cpu")
    saved = saved.get("state_dict", saved)
    recognizer = FunASRRecognizer(model_dir, device="cpu", threads=1, skip_patches=("packed_linears", "ffn_relu"))
    loaded = recognizer._model.model.state_dict()
    assert saved and set(saved) <= set(loaded)
    for name, tensor in saved.items():
        assert torch.equal(loaded[name], tensor), name
