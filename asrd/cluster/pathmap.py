"""Paths as the daemon sees them, mapped to each node's mount of the share (and back)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath


def _under(path: PurePosixPath, prefix: PurePosixPath) -> bool:
    return path == prefix or prefix in path.parents


@dataclass(frozen=True)
class PathMap:
    """``{daemon prefix: node prefix}`` for every node, and per-node maps by IP that replace it there.
    The longest matching prefix wins, whole path components only (/srv/call never maps /srv/calls)."""

    common: tuple[tuple[str, str], ...] = ()
    per_node: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    @classmethod
    def of(cls, common: Mapping[str, str], per_node: Mapping[str, Mapping[str, str]]) -> PathMap:
        return cls(tuple(common.items()), tuple((ip, tuple(m.items())) for ip, m in per_node.items()))

    def pairs(self, node_ip: str) -> tuple[tuple[str, str], ...]:
        return next((m for ip, m in self.per_node if ip == node_ip), self.common)

    def to_node(self, path: str, node_ip: str) -> str:
        """The path on node ``node_ip``; unchanged when no prefix matches (the same mount everywhere)."""
        p = PurePosixPath(path)
        matches = [(PurePosixPath(a), PurePosixPath(b)) for a, b in self.pairs(node_ip) if _under(p, PurePosixPath(a))]
        if not matches:
            return path
        src, dst = max(matches, key=lambda m: len(m[0].parts))
        return str(dst.joinpath(p.relative_to(src)))
