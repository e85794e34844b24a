"""Energy meters: cumulative energy counters, read at interval boundaries, never power x time.

Every meter answers ``read()`` with the microjoules used per domain since it was opened (cumulative,
so no interval is lost between two reads). Runs in the model worker only: an open NVML handle keeps a
GPU out of its deepest sleep, and reading it wakes one, so the daemon never opens one.

- ``RaplMeter``: Linux powercap (``/sys/class/powercap/intel-rapl:*``), package (+ DRAM) counters or psys
  alone, never both (psys contains the package; summing them double-counts, codecarbon PR #950), the
  MMIO mirror of a package skipped. Counters wrap at ``max_energy_range_uj``. Since Linux 5.10 the
  counters are root-only (CVE-2020-8694); ``MeterUnavailable`` then says how to grant read access.
- ``NvmlMeter``: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load; Volta and newer).
- ``ModelMeter``: an estimate, CPU seconds of this process x a per-core power.
- ``ScaledMeter``: another meter x a factor measured with a wall-plug meter (``calibrated:plug``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from asrd.energy.records import Domains, domains

log = logging.getLogger(__name__)

POWERCAP = Path("/sys/class/powercap")
RAPL_FIX = (
    "grant read access to group asrd (a udev rule on SUBSYSTEM==\"powercap\" or a tmpfiles.d 'z' line, see "
    "systemd/README); since Linux 5.10 energy_uj is readable by root only (CVE-2020-8694)"
)


class MeterUnavailable(Exception):
    """This meter cannot be used here; the message says why (and how to fix it, where one can)."""


class Meter(Protocol):
    method: str

    def read(self) -> Domains:
        """Microjoules per domain used since the meter was opened."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- RAPL (powercap)


@dataclass
class _Zone:
    domain: str
    energy: Path
    wrap: int  # max_energy_range_uj + 1: the counter's modulus
    last: int
    used: int = 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as err:
        raise MeterUnavailable(f"{path}: not readable ({RAPL_FIX})") from err
    except (OSError, ValueError) as err:
        raise MeterUnavailable(f"{path}: {err}") from err


class RaplMeter:
    method = "measured:rapl"

    def __init__(self, root: Path = POWERCAP) -> None:
        self._zones = self._find(root)

    @staticmethod
    def _find(root: Path) -> list[_Zone]:
        if not root.is_dir():
            raise MeterUnavailable(f"{root}: no powercap RAPL here (a VM or not Linux): energy will be estimated")
        packages: list[tuple[str, Path]] = []
        drams: list[tuple[str, Path]] = []
        psys: list[tuple[str, Path]] = []
        seen: set[str] = set()
        # Only intel-rapl:N (packages, also AMD's) and intel-rapl:N:M (their subzones); intel-rapl-mmio:* mirrors
        # the same package counter through MMIO, and counting both doubles it (codecarbon PR #950).
        for zone in sorted(root.glob("intel-rapl:*")):
            try:
                name = (zone / "name").read_text().strip()
            except OSError:
                continue
            depth = zone.name.count(":")
            if depth == 1 and name.startswith("package"):
                if name in seen:  # a mirrored counter of a package already counted (codecarbon #1274)
                    continue
                seen.add(name)
                packages.append((name, zone))
            elif depth == 1 and name == "psys":
                psys.append((name, zone))
            elif depth == 2 and name == "dram":
                drams.append((f"dram-{zone.name.split(':')[1]}", zone))
        chosen = packages + drams if packages else psys
        if not chosen:
            raise MeterUnavailable(f"{root}: no RAPL package or psys zone")
        zones = []
        for name, zone in chosen:
            domain = "package" if name.startswith("package") else ("dram" if name.startswith("dram") else "psys")
            wrap = _read_int(zone / "max_energy_range_uj") + 1
            zones.append(_Zone(domain, zone / "energy_uj", wrap, _read_int(zone / "energy_uj")))
        return zones

    def read(self) -> Domains:
        used: dict[str, int] = {}
        for zone in self._zones:
            now = _read_int(zone.energy)
            zone.used += (now - zone.last) % zone.wrap  # one wrap between reads at most (minutes at full power)
            zone.last = now
            used[zone.domain] = used.get(zone.domain, 0) + zone.used
        return domains(used)

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- NVML


def load_pynvml() -> ModuleType:
    try:
        import pynvml  # the nvidia-ml-py package; only ever imported here, in the worker
    except ImportError as err:
        raise MeterUnavailable("nvidia-ml-py is not installed (pip install 'asrd[gpu-energy]')") from err
    return pynvml


class NvmlMeter:
    """The GPU's own energy counter. ``nvml`` is the ``pynvml`` module or a stand-in with the same
    functions (``asrd.testing.fake_meters.FakeNvml``). Opened after spawn, closed before exit."""

    method = "measured:nvml"

    def __init__(self, index: int = 0, nvml: Any = None) -> None:  # Any: pynvml has no type hints
        self._nvml = nvml if nvml is not None else load_pynvml()
        try:
            self._nvml.nvmlInit()
        except Exception as err:  # pynvml raises its own NVMLError subclasses
            raise MeterUnavailable(f"NVML: {err}") from err
        try:
            self._handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            self._start = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception as err:
            self._nvml.nvmlShutdown()
            # Pre-Volta and many virtual GPUs have no counter; saying so beats reporting 0 Wh (codecarbon #1316).
            raise MeterUnavailable(f"NVML: GPU {index} has no energy counter ({err})") from err

    def read(self) -> Domains:
        mj = int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        return domains({"gpu": (mj - self._start) * 1000})

    def close(self) -> None:
        self._nvml.nvmlShutdown()


# ---------------------------------------------------------------- estimates and combinations


class ModelMeter:
    """An estimate: CPU seconds of this process (all its threads) x ``watts_per_core``. Counts what the
    model and front end do on the CPU; not the GPU, not the rest of the machine."""

    method = "estimated:model"

    def __init__(self, watts_per_core: float, cpu_seconds: Callable[[], float] = time.process_time) -> None:
        self._watts = watts_per_core
        self._cpu = cpu_seconds
        self._start = cpu_seconds()

    def read(self) -> Domains:
        return domains({"cpu": round((self._cpu() - self._start) * self._watts * 1e6)})

    def close(self) -> None:
        pass


class CombinedMeter:
    """Several meters of different domains read together (NVML for the GPU, RAPL for the CPU)."""

    def __init__(self, meters: Sequence[Meter]) -> None:
        self._meters = list(meters)
        kinds = sorted(m.method.split(":", 1)[1] for m in meters)
        self.method = "measured:" + "+".join(sorted(kinds, key=lambda k: k != "nvml"))

    def read(self) -> Domains:
        merged: dict[str, int] = {}
        for meter in self._meters:
            for name, uj in meter.read():
                merged[name] = merged.get(name, 0) + uj
        return domains(merged)

    def close(self) -> None:
        for meter in self._meters:
            meter.close()


class ScaledMeter:
    """Another meter's values x ``factor``: the ratio a wall-plug meter showed against it."""

    method = "calibrated:plug"

    def __init__(self, inner: Meter, factor: float) -> None:
        self._inner = inner
        self._factor = factor

    def read(self) -> Domains:
        return domains({name: round(uj * self._factor) for name, uj in self._inner.read()})

    def close(self) -> None:
        self._inner.close()


def open_meter(
    source: str,
    *,
    gpu_index: int | None,
    watts_per_core: float,
    plug_factor: float = 1.0,
    powercap: Path = POWERCAP,
    nvml: Any = None,  # Any: the pynvml module or a stand-in
) -> Meter:
    """The meter ``[energy] meter`` asks for. ``auto``: NVML when a GPU is used and RAPL where readable,
    else the estimate, with the reason logged once. ``gpu_index`` None: no GPU is used (NVML is not opened)."""
    if source == "estimated":
        return ModelMeter(watts_per_core)
    if source == "plug":
        return ScaledMeter(open_meter("auto", gpu_index=gpu_index, watts_per_core=watts_per_core,
                                      powercap=powercap, nvml=nvml), plug_factor)
    found: list[Meter] = []
    if gpu_index is not None and source in ("auto", "nvml"):
        try:
            found.append(NvmlMeter(gpu_index, nvml))
        except MeterUnavailable as err:
            log.info("energy: %s", err)
    if source in ("auto", "rapl"):
        try:
            found.append(RaplMeter(powercap))
        except MeterUnavailable as err:
            log.info("energy: %s", err)
    if not found:
        log.info("energy: no counters readable; estimating from CPU time at %.1f W per core", watts_per_core)
        return ModelMeter(watts_per_core)
    return found[0] if len(found) == 1 else CombinedMeter(found)
