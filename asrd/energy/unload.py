"""``idle_unload_seconds = "auto"``: keep an idle model loaded only as long as a cold start costs.

Ski rental: keeping the model loaded costs ``P_idle`` watts; unloading costs one cold start, ``E_cold``
joules, when the next file comes. Waiting ``E_cold / P_idle`` seconds and then unloading never uses more
than twice the energy of an oracle that knows when the next file comes. Both are measured per machine
from the worker's own sessions (``SessionEnergy``: load energy, idle energy and idle seconds).

``P_idle`` here is the whole counted device's power while the model sits idle, not only the extra that
the loaded model causes (the worker cannot measure the device without itself): the wait comes out
shorter than the exact break-even, erring towards saving energy. With an estimate that counts CPU time
only, an idle worker costs no watts (it blocks), so the fixed fallback applies: there the tail costs
memory, not energy.
"""

from __future__ import annotations

from dataclasses import dataclass

from asrd.energy.records import SessionEnergy, total_uj

AUTO_MIN = 10.0  # seconds: never less, so a burst of memos does not pay a cold start each
AUTO_MAX = 600.0
FALLBACK = 300.0  # until a session has been measured, and where idle power cannot be measured
MIN_IDLE_SECONDS = 5.0  # idle time a session needs before its idle power is trusted


def break_even(cold_joules: float, idle_watts: float) -> float:
    """Seconds of idle power that cost as much as one cold start, clamped to [AUTO_MIN, AUTO_MAX]."""
    if idle_watts <= 0:
        return AUTO_MAX
    return min(AUTO_MAX, max(AUTO_MIN, cold_joules / idle_watts))


@dataclass
class AutoUnload:
    """Learns ``E_cold`` and ``P_idle`` from the sessions the worker reports (the latest measured ones)."""

    cold_joules: float | None = None
    idle_watts: float | None = None

    def observe(self, session: SessionEnergy) -> None:
        if not session.method.startswith("measured") and not session.method.startswith("calibrated"):
            return  # the CPU-time estimate sees no idle power: the fallback stays
        load = total_uj(session.load) / 1e6
        if load > 0:
            self.cold_joules = load
        if session.idle_seconds >= MIN_IDLE_SECONDS:
            self.idle_watts = total_uj(session.idle) / 1e6 / session.idle_seconds

    def seconds(self) -> float:
        if self.cold_joules is None or self.idle_watts is None:
            return FALLBACK
        return break_even(self.cold_joules, self.idle_watts)
