"""Load a FunASR checkpoint without the extra copy FunASR makes of it.

FunASR 1.4.16's ``load_pretrained_model`` (funasr/train_utils/load_pretrained_model.py) loads the
checkpoint and then deep-copies it (``src_state = copy.deepcopy(ori_state)``) before copying the
tensors into the model, and never uses the original again. So loading holds three copies of the
weights: the model's, the loaded one and the deep copy. For full-size SenseVoiceSmall (0.9 GB) that
made the worker peak at 3.3 GB while loading, 1.5 GB after, enough to get it killed on a small box.
Within ``single_copy_loading`` that deep copy is the object itself. Imported only in the model worker.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from asrd.recognizer.patches import Applied, difference, replace_attribute, seeded


def _same(obj: Any, memo: Any = None) -> Any:
    return obj


_NO_DEEP_COPY = types.SimpleNamespace(deepcopy=_same, copy=copy.copy)


def patch_loader() -> Applied | None:
    """Make FunASR's checkpoint loader use the loaded weights without copying them, until undone.
    Self-check: a small checkpoint loads into the same weights as with FunASR's own deep copy."""
    try:
        from funasr.train_utils import load_pretrained_model as loader
    except ImportError:
        return None
    if getattr(loader, "copy", None) is not copy:
        return None  # not the loader this was written for
    undo = replace_attribute(loader, "copy", _NO_DEEP_COPY)
    return Applied(lambda: _check(loader), undo)


def _check(loader: Any) -> float:
    import torch

    source = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    with torch.no_grad():
        for param in source.parameters():
            param.copy_(torch.randn(param.shape, generator=seeded()))
    with tempfile.TemporaryDirectory(prefix="asrd-check-") as tmp:
        path = Path(tmp) / "model.pt"
        torch.save(source.state_dict(), path)
        loaded = []
        for copier in (loader.copy, copy):  # ours (in place now), then FunASR's own
            target = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
            saved, loader.copy = loader.copy, copier
            try:
                with _quiet_loader():
                    loader.load_pretrained_model(str(path), target, scope_map=[])
            finally:
                loader.copy = saved
            loaded.append(list(target.state_dict().values()))
    return difference(loaded[0], loaded[1]) + difference(loaded[1], list(source.state_dict().values()))


@contextlib.contextmanager
def _quiet_loader() -> Iterator[None]:
    """The loader logs every key at INFO; that is noise for a self-check."""
    with contextlib.redirect_stdout(io.StringIO()):
        previous = logging.root.manager.disable
        logging.disable(logging.INFO)
        try:
            yield
        finally:
            logging.disable(previous)


@contextlib.contextmanager
def single_copy_loading() -> Iterator[None]:
    """While this is active, FunASR's checkpoint loader uses the loaded weights without copying them.
    A FunASR whose loader looks different is left alone."""
    applied = patch_loader()
    try:
        yield
    finally:
        if applied is not None:
            applied.undo()
