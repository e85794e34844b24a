"""The version handshake: a node's actor says which asrd, protocol, Python and Ray it runs before it is
given a model to load; the bridge refuses any node that differs from itself (the messages are pickled
dataclasses, so both ends must define them alike)."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from asrd import __version__
from asrd.worker.protocol import PROTOCOL


@dataclass(frozen=True)
class Hello:
    asrd: str
    protocol: int
    python: str
    ray: str
    node_ip: str = ""
    pid: int = 0
    gpus: tuple[str, ...] = ()  # the GPU ids Ray gave the actor (its CUDA_VISIBLE_DEVICES)


def local_hello(ray_version: str, node_ip: str = "", pid: int = 0, gpus: tuple[str, ...] = ()) -> Hello:
    return Hello(__version__, PROTOCOL, platform.python_version(), ray_version, node_ip, pid, gpus)


def refusal(mine: Hello, theirs: Hello) -> str | None:
    """Why a node must not be used (None: it may). Python differs only in the patch level at most."""
    if (theirs.asrd, theirs.protocol) != (mine.asrd, mine.protocol):
        return (f"runs asrd {theirs.asrd} (protocol {theirs.protocol}), this daemon asrd {mine.asrd} "
                f"(protocol {mine.protocol}): install the same asrd on every node")
    if theirs.python.split(".")[:2] != mine.python.split(".")[:2] or theirs.ray != mine.ray:
        return (f"runs Python {theirs.python} with Ray {theirs.ray}, this daemon Python {mine.python} "
                f"with Ray {mine.ray}")
    return None
