"""The daemon's side of energy accounting: each finished file's energy into the energy log, the .json
sidecar's ``processing`` block, and the sessions' unattributed rest (the idle tail) as overhead.

The worker measures and attributes (``asrd.worker.ledger``); this only records and reports.
"""

from __future__ import annotations

import os

from asrd.config import EnergySettings
from asrd.control.energy_log import EnergyLog, MemoryEnergyLog
from asrd.control.jobs import Job
from asrd.energy.grid import intensity
from asrd.energy.records import UJ_PER_WH, EnergyRow, FileEnergy, add
from asrd.energy.unload import AutoUnload
from asrd.records import SAMPLE_RATE
from asrd.worker.protocol import Done, Stopped


class EnergyBook:
    def __init__(self, log: EnergyLog | None, settings: EnergySettings | None) -> None:
        self.log: EnergyLog = log if log is not None else MemoryEnergyLog()
        self.settings = settings or EnergySettings()
        self.auto_unload = AutoUnload()  # for idle_unload_seconds = "auto", learnt from the workers' sessions
        self.uj = {"compute": 0, "overhead": 0}  # logged so far by phase (metrics): load and idle are overhead

    def file_done(self, now: float, job: Job, msg: Done, energy: FileEnergy) -> None:
        self.uj["compute"] += energy.direct_uj
        self.uj["overhead"] += energy.overhead_uj
        grid = intensity(self.settings.grid_g_per_kwh, self.settings.zone)
        self.log.add(EnergyRow(
            now, "file", energy.method, energy.device, energy.direct_uj, energy.overhead_uj,
            add(energy.direct, energy.overhead), job.id, os.fsdecode(job.path), job.inbox,
            msg.transcript.duration / SAMPLE_RATE, msg.seconds, None if grid is None else grid.g_per_kwh,
            self.settings.price_per_kwh or None,
        ))

    def session_ended(self, now: float, msg: Stopped) -> None:
        """A worker's session is over: its load/idle cost teaches "auto", and the part no file was charged
        with (the idle tail, failed files) is logged as overhead."""
        self.auto_unload.observe(msg.energy)
        session = msg.energy
        if not session.unattributed_uj:
            return
        self.uj["overhead"] += session.unattributed_uj
        grid = intensity(self.settings.grid_g_per_kwh, self.settings.zone)
        self.log.add(EnergyRow(
            now, "session", session.method, session.device, 0, session.unattributed_uj, session.unattributed,
            g_per_kwh=None if grid is None else grid.g_per_kwh, price_per_kwh=self.settings.price_per_kwh or None,
        ))

    def processing(self, msg: Done, device: str, precision: str) -> dict[str, object] | None:
        """The .json sidecar's ``processing`` block ([energy] in_sidecar)."""
        if not self.settings.in_sidecar:
            return None
        block: dict[str, object] = {"device": device, "precision": precision, "seconds": round(msg.seconds, 3)}
        energy = msg.energy
        if energy is not None:
            wh = energy.total_uj / UJ_PER_WH
            part: dict[str, object] = {
                "wh": _sig(wh), "direct_wh": _sig(energy.direct_uj / UJ_PER_WH),
                "overhead_wh": _sig(energy.overhead_uj / UJ_PER_WH), "method": energy.method,
            }
            grid = intensity(self.settings.grid_g_per_kwh, self.settings.zone)
            if grid is not None:
                part.update(co2e_g=_sig(wh / 1000 * grid.g_per_kwh), grid_g_per_kwh=grid.g_per_kwh,
                            grid_source=grid.source)
            if self.settings.price_per_kwh:
                part.update(cost=_sig(wh / 1000 * self.settings.price_per_kwh), currency=self.settings.currency)
            block["energy"] = part
        return block


def _sig(value: float) -> float:
    """Four significant digits: a memo's energy is a small fraction of a Wh."""
    return float(f"{value:.4g}")
