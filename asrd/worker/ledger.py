"""Who used the energy: a worker session's measured intervals split among its files, losing nothing.

The worker reads its meter at interval boundaries (``tick``): after loading, after every engine step,
before a task arrives at an idle worker, and before it exits. Each interval's energy goes

- to the files whose spans were in that interval's batches, by their padded share (a batch costs
  ``len(batch) x longest``, so the padding is paid by the spans that caused it); in an interval with no
  batch but files in flight (decoding, VAD), to those files equally;
- with no file in flight, to overhead: ``load`` until the model is loaded, ``idle`` after. Overhead is
  charged to the files of the next interval that has any, by the same shares (the cold start and the
  wait were for them). What is left when the session ends (the idle tail), and the share of files that
  failed, stays ``unattributed`` and is reported as overhead.

All amounts are integer microjoules split by largest remainder, so for any sequence of calls:
sum of every file's direct + overhead + unattributed == what the meter measured over the session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from asrd.energy.records import Domains, FileEnergy, SessionEnergy, domains


def split(amount: int, weights: Mapping[int, int]) -> dict[int, int]:
    """``amount`` in integer parts proportional to ``weights`` (all > 0), summing to ``amount`` exactly."""
    total = sum(weights.values())
    parts = {key: amount * w // total for key, w in weights.items()}
    left = amount - sum(parts.values())
    # Largest remainders first; ties by key so the split is deterministic.
    order = sorted(weights, key=lambda key: (-(amount * weights[key] % total), key))
    for key in order[:left]:
        parts[key] += 1
    return parts


def _add(into: dict[str, int], part: Mapping[str, int]) -> None:
    for name, uj in part.items():
        into[name] = into.get(name, 0) + uj


@dataclass
class _Account:
    direct: dict[str, int] = field(default_factory=dict)
    overhead: dict[str, int] = field(default_factory=dict)


class Ledger:
    def __init__(
        self, first: Domains, method: str, device: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.method = method
        self.device = device
        self._clock = clock
        self._since = clock()
        self.load_seconds = 0.0
        self.idle_seconds = 0.0
        self._last = dict(first)
        self._units: dict[int, int] = {}
        self._pending: dict[str, int] = {}  # overhead not charged to any file yet
        self._accounts: dict[int, _Account] = {}
        self._loading = True
        self.load: dict[str, int] = {}
        self.idle: dict[str, int] = {}
        self.direct: dict[str, int] = {}
        self._unattributed: dict[str, int] = {}  # failed files' shares

    def work(self, units: Mapping[int, int]) -> None:
        """Model work done for files in the current interval (padded samples of their spans)."""
        for key, n in units.items():
            if n > 0:
                self._units[key] = self._units.get(key, 0) + n

    def loaded(self, reading: Domains) -> None:
        """The model is loaded: everything so far was the cold start."""
        self.tick(reading, ())
        self._loading = False

    def tick(self, reading: Domains, in_flight: Collection[int]) -> None:
        """Close the interval since the last tick at the meter's ``reading``."""
        at = self._clock()
        seconds, self._since = max(0.0, at - self._since), at
        now = dict(reading)
        delta = {name: max(0, uj - self._last.get(name, 0)) for name, uj in now.items()}
        self._last = {name: max(uj, self._last.get(name, 0)) for name, uj in now.items()}
        shares = dict(self._units) or {key: 1 for key in in_flight}
        self._units.clear()
        if not shares:
            if self._loading:
                _add(self.load, delta)
                self.load_seconds += seconds
            else:
                _add(self.idle, delta)
                self.idle_seconds += seconds
            _add(self._pending, delta)
            return
        _add(self.direct, delta)
        for name, uj in delta.items():
            for key, part in split(uj, shares).items():
                _add(self._account(key).direct, {name: part})
        for name, uj in self._pending.items():
            for key, part in split(uj, shares).items():
                _add(self._account(key).overhead, {name: part})
        self._pending.clear()

    def settle(self, key: int) -> FileEnergy:
        """A finished file's energy (call after the tick that closed its last interval)."""
        account = self._accounts.pop(key, _Account())
        return FileEnergy(self.method, domains(account.direct), domains(account.overhead), self.device)

    def drop(self, key: int) -> None:
        """A failed file: its share becomes unattributed overhead."""
        account = self._accounts.pop(key, None)
        if account is not None:
            _add(self._unattributed, account.direct)
            _add(self._unattributed, account.overhead)
        self._units.pop(key, None)

    def close(self, reading: Domains) -> SessionEnergy:
        """The session's end: the idle tail and anything never settled become unattributed."""
        self.tick(reading, ())
        left = dict(self._unattributed)
        _add(left, self._pending)
        for account in self._accounts.values():
            _add(left, account.direct)
            _add(left, account.overhead)
        self._accounts.clear()
        self._pending.clear()
        self._unattributed.clear()
        return SessionEnergy(
            self.method, self.device, domains(self.load), domains(self.idle), domains(self.direct), domains(left),
            self.load_seconds, self.idle_seconds,
        )

    def _account(self, key: int) -> _Account:
        return self._accounts.setdefault(key, _Account())
