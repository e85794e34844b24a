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
import logging
import types
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def _same(obj: Any, memo: Any = None) -> Any:
    return obj


_NO_DEEP_COPY = types.SimpleNamespace(deepcopy=_same, copy=copy.copy)


@contextlib.contextmanager
def single_copy_loading() -> Iterator[None]:
    """While this is active, FunASR's checkpoint loader uses the loaded weights without copying them.
    A FunASR whose loader looks different is left alone."""
    try:
        from funasr.train_utils import load_pretrained_model as loader
    except ImportError:
        yield
        return
    if getattr(loader, "copy", None) is not copy:
        log.debug("FunASR's checkpoint loader is not the expected one; loading it as it is")
        yield
        return
    loader.copy = _NO_DEEP_COPY  # type: ignore[attr-defined]
    try:
        yield
    finally:
        loader.copy = copy  # type: ignore[attr-defined]
