"""Stand-ins for energy counters the test machines lack: a powercap tree in a folder, an NVML module,
and a meter whose counter the test advances by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from asrd.energy.records import Domains, domains


@dataclass(frozen=True)
class FakeZone:
    """One RAPL zone: ``node`` like ``intel-rapl:0`` or ``intel-rapl:0:2``."""

    node: str
    name: str
    energy_uj: int = 0
    max_energy_range_uj: int = 262_143_328_850  # a common package value (about 262 kJ)


def make_powercap(root: Path, zones: list[FakeZone]) -> Path:
    """A powercap tree as the kernel lays it out (flat, ``intel-rapl:N[:M]`` folders)."""
    root.mkdir(parents=True, exist_ok=True)
    for zone in zones:
        folder = root / zone.node
        folder.mkdir()
        (folder / "name").write_text(zone.name + "\n")
        (folder / "max_energy_range_uj").write_text(f"{zone.max_energy_range_uj}\n")
        set_energy(root, zone.node, zone.energy_uj)
    return root


def set_energy(root: Path, node: str, energy_uj: int) -> None:
    path = root / node / "energy_uj"
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o444
    if path.exists():
        os.chmod(path, 0o644)
    path.write_text(f"{energy_uj}\n")
    os.chmod(path, mode)


def make_root_only(root: Path, node: str) -> None:
    """As Linux 5.10+ ships it: ``energy_uj`` mode 0400 owned by root (here: no read bit at all, so the
    test also holds when it runs as the file's owner)."""
    os.chmod(root / node / "energy_uj", 0)


class FakeNvmlError(Exception):
    pass


@dataclass
class FakeNvml:
    """The few ``pynvml`` functions ``NvmlMeter`` calls. ``energy_mj`` per GPU index; ``None`` means
    the GPU has no energy counter (pre-Volta, many vGPUs)."""

    energy_mj: list[int | None] = field(default_factory=lambda: [0])
    initialised: int = 0  # open handles now
    init_calls: int = 0  # nvmlInit calls ever, failed ones too (each would wake a sleeping GPU)
    driver: bool = True

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if not self.driver:
            raise FakeNvmlError("NVML Shared Library Not Found")
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index >= len(self.energy_mj):
            raise FakeNvmlError("Invalid Argument")
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        value = self.energy_mj[handle]
        if value is None:
            raise FakeNvmlError("Not Supported")
        return value


@dataclass
class FakeMeter:
    """A meter whose cumulative microjoules the test (or a simulation) sets; ``per_read`` is added at
    every read, as if that much were used between any two reads."""

    method: str = "measured:nvml"
    used: dict[str, int] = field(default_factory=dict)
    per_read: dict[str, int] = field(default_factory=dict)
    closed: bool = False
    reads: int = 0

    def add(self, **uj: int) -> None:
        for name, value in uj.items():
            self.used[name] = self.used.get(name, 0) + value

    def read(self) -> Domains:
        self.reads += 1
        self.add(**self.per_read)
        return domains(self.used)

    def close(self) -> None:
        self.closed = True
