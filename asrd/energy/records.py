"""What a file, or a worker session, cost in energy: integer microjoules by domain, with the method.

Integers, so that splitting a measured interval among files loses nothing: the parts add up to the
measured total exactly (``asrd.worker.ledger``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

UJ_PER_WH = 3_600_000_000

#: How a number was obtained. Every value asrd reports carries one of these.
METHODS = (
    "measured:rapl",  # CPU package (+ DRAM) counters from Linux powercap
    "measured:nvml",  # the GPU's cumulative energy counter
    "measured:nvml+rapl",
    "estimated:model",  # CPU seconds x a per-core power: an estimate, not a measurement
    "calibrated:plug",  # one of the above x a factor the user measured with a wall-plug meter
)

Domains = tuple[tuple[str, int], ...]
"""(domain, microjoules) pairs, sorted by domain: ``gpu``, ``package``, ``dram``, ``cpu`` (estimated)."""


def domains(values: Mapping[str, int]) -> Domains:
    return tuple(sorted((k, v) for k, v in values.items() if v))


def add(*parts: Domains) -> Domains:
    total: dict[str, int] = {}
    for part in parts:
        for name, uj in part:
            total[name] = total.get(name, 0) + uj
    return domains(total)


def total_uj(parts: Iterable[tuple[str, int]]) -> int:
    return sum(uj for _, uj in parts)


@dataclass(frozen=True)
class FileEnergy:
    """One file's energy: ``direct`` (its share of the intervals it was in flight, by its share of the
    padded batches), ``overhead`` (its share of the model load and idle time before those intervals)."""

    method: str
    direct: Domains = ()
    overhead: Domains = ()
    device: str = ""

    @property
    def direct_uj(self) -> int:
        return total_uj(self.direct)

    @property
    def overhead_uj(self) -> int:
        return total_uj(self.overhead)

    @property
    def total_uj(self) -> int:
        return self.direct_uj + self.overhead_uj

    @property
    def wh(self) -> float:
        return self.total_uj / UJ_PER_WH

    @property
    def estimated(self) -> bool:
        return self.method.startswith("estimated") or self.method.startswith("calibrated")


@dataclass(frozen=True)
class SessionEnergy:
    """A whole worker session, sent when it ends. ``load`` (spawn to loaded), ``idle`` (loaded, nothing
    in flight) and ``direct`` (files in flight) partition what was measured. ``unattributed`` is the part
    of load and idle no file was charged with (the idle tail after the last file) plus the shares of
    files that failed: reports count it as overhead."""

    method: str
    device: str
    load: Domains = ()
    idle: Domains = ()
    direct: Domains = ()
    unattributed: Domains = ()
    load_seconds: float = 0.0
    idle_seconds: float = 0.0

    @property
    def total_uj(self) -> int:
        return total_uj(add(self.load, self.idle, self.direct))

    @property
    def unattributed_uj(self) -> int:
        return total_uj(self.unattributed)


@dataclass(frozen=True)
class EnergyRow:
    """One row of the energy log: a finished file (``kind`` "file") or a worker session's unattributed
    rest (``kind`` "session": idle tail, failed files' shares). Intensity and price as they were then."""

    at: float  # wall clock, seconds since the epoch
    kind: str
    method: str
    device: str
    direct_uj: int
    overhead_uj: int
    parts: Domains = ()  # direct + overhead by domain
    job_id: int | None = None
    path: str = ""
    inbox: str = ""
    audio_seconds: float = 0.0
    seconds: float = 0.0
    g_per_kwh: float | None = None
    price_per_kwh: float | None = None

    @property
    def total_uj(self) -> int:
        return self.direct_uj + self.overhead_uj


@dataclass(frozen=True)
class Wait:
    """One job's record. ``due_*``: when it was first held back (it would have run then) and the signal's
    value at that moment; ``ran_*``: when it was let go (its window, run-now, the deadline) and the value then.
    Values are None where the signal had no number (``signal = "hours"``, no usable series)."""

    job_id: int
    backlog: bool = False
    kind: str | None = None  # [schedule] signal_kind when it was held: "price" or "carbon"
    due_at: float | None = None
    due_value: float | None = None
    ran_at: float | None = None
    ran_value: float | None = None

    @property
    def delta(self) -> float | None:
        """How much lower the signal was when it ran than when it became due (positive: scheduling helped)."""
        if self.due_value is None or self.ran_value is None:
            return None
        return self.due_value - self.ran_value
