"""Hand memory freed while loading a model back to the operating system.

glibc's malloc keeps freed small blocks in its arenas for reuse, so RSS stays at its high-water mark
after the memory is free. Loading frees a lot: int8 quantisation builds a converted copy of the model
and drops the fp32 one, whose ~1 GB (full-size SenseVoiceSmall) then still counted in the worker's
RSS (measured: 1.75 GB after loading, 0.79 GB after ``malloc_trim``). No torch import here.
"""

from __future__ import annotations

import ctypes
import gc


def trim_heap() -> bool:
    """Ask glibc to return free heap memory to the OS; False where there is no ``malloc_trim``
    (macOS, musl), where nothing is needed or possible."""
    gc.collect()  # a dropped torch module is a web of reference cycles: only the collector frees it
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
