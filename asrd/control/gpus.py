"""The GPUs this daemon may hand to workers, found without importing torch or creating a CUDA context.

Asked once, when the pool is built (start and reload), never polled: ``nvidia-smi`` opens NVML only
for its own short life, so nothing here keeps a GPU out of its idle power state.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger("asrd.gpus")

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
_GPU_LINE = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[0-9A-Za-z-]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[0-9A-Za-z/-]+)\)")


def parse_smi_list(text: str) -> tuple[str, ...]:
    """UUIDs from ``nvidia-smi -L``: each GPU's, or its MIG instances' when it is partitioned (only
    those can run work then). UUIDs, not indices: they name the same card whatever the order."""
    found: list[str] = []
    for line in text.splitlines():
        if gpu := _GPU_LINE.match(line):
            found.append(gpu.group(2))
        elif (mig := _MIG_LINE.match(line)) and found:
            if found[-1].startswith("GPU-"):
                found.pop()  # the partitioned card itself takes no work
            found.append(mig.group(1))
    return tuple(found)


def _smi(path: str) -> str | None:
    try:
        done = subprocess.run([path, "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("nvidia-smi -L failed: %s", err)
        return None
    return done.stdout if done.returncode == 0 else None


def visible_gpus(
    environ: Mapping[str, str] = os.environ,
    smi: Callable[[str], str | None] = _smi,
    proc: Path = PROC_GPUS,
) -> tuple[str, ...]:
    """What ``devices = "auto"`` spreads over: the inherited ``CUDA_VISIBLE_DEVICES`` when set (the
    operator narrowed it; its entries stay valid in the children), else ``nvidia-smi -L``, else one
    index per card under /proc/driver/nvidia/gpus, else none."""
    inherited = environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        entries: list[str] = []
        for part in (p.strip() for p in inherited.split(",")):
            if not part or part.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on
            entries.append(part)
        return tuple(entries)
    path = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if path is not None and (text := smi(path)) is not None:
        return parse_smi_list(text)
    try:
        count = sum(1 for _ in proc.iterdir())
    except OSError:
        return ()
    return tuple(str(i) for i in range(count))
