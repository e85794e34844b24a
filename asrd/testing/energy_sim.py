"""The energy of a stream of voice memos under an idle-unload policy, on a simulated clock.

``python -m asrd.testing.energy_sim`` prints the 200-memo workload with ``idle_unload_seconds = 300``
against ``"auto"`` (the break-even ``asrd.energy.unload`` computes) and an oracle that knows when the
next memo comes. The device figures are ESTIMATES from public reports (research note energy.md,
section 5), not measurements: replace them with ``asrd energy`` numbers from a real machine.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from asrd.energy.unload import break_even


@dataclass(frozen=True)
class DeviceModel:
    name: str
    cold_joules: float  # spawn to loaded
    load_seconds: float
    idle_watts: float  # extra power while the model sits loaded and idle
    busy_watts: float
    rtf: float  # processing seconds per audio second


# Estimates (energy.md section 5): a CUDA context keeps a GPU 8-66 W above its sleep state (ollama,
# llama.cpp, speaches reports); a cold start of a few seconds at 100-200 W is ~0.2 Wh; the GPU goal of
# 30 audio hours a minute is an RTF of 1/1800.
GPU_TYPICAL = DeviceModel("GPU, +50 W idle (estimate)", 720.0, 5.0, 50.0, 300.0, 1 / 1800)
GPU_LOW = DeviceModel("GPU, +8 W idle (estimate)", 720.0, 5.0, 8.0, 300.0, 1 / 1800)
GPU_HIGH = DeviceModel("GPU, +66 W idle (estimate)", 720.0, 5.0, 66.0, 300.0, 1 / 1800)


@dataclass(frozen=True)
class SimResult:
    memos: int
    audio_seconds: float
    cold_starts: int
    load_joules: float
    idle_joules: float
    compute_joules: float
    waited_seconds: float  # cold-start delay the memos saw, all together

    @property
    def wh(self) -> float:
        return (self.load_joules + self.idle_joules + self.compute_joules) / 3600

    @property
    def overhead_share(self) -> float:
        total = self.load_joules + self.idle_joules + self.compute_joules
        return (self.load_joules + self.idle_joules) / total if total else 0.0


def memo_workload(n: int = 200, days: int = 7, seed: int = 16) -> list[tuple[float, float]]:
    """(arrival second, audio seconds) of ``n`` voice memos: recorded in the day (08-22 h), in bursts of
    1-5 memos 30-180 s apart (someone dictating a few thoughts), bursts at random times; 5-60 s each."""
    rng = random.Random(seed)
    memos: list[tuple[float, float]] = []
    while len(memos) < n:
        day = rng.randrange(days)
        t = day * 86400 + rng.uniform(8 * 3600, 22 * 3600)
        for _ in range(rng.randint(1, 5)):
            if len(memos) == n:
                break
            memos.append((t, min(60.0, max(5.0, rng.lognormvariate(3.0, 0.6)))))
            t += rng.uniform(30, 180)
    return sorted(memos)


def simulate(memos: Sequence[tuple[float, float]], device: DeviceModel, unload_after: float | None) -> SimResult:
    """One worker, memos in arrival order. ``unload_after`` seconds idle, then the worker ends; None: the
    oracle, which unloads at once exactly when the next memo is further away than the break-even."""
    load = idle = compute = waited = 0.0
    cold = 0
    loaded = False
    free_at = 0.0
    audio = 0.0
    for arrival, seconds in memos:
        start = max(arrival, free_at)
        if loaded:
            gap = start - free_at
            wait = unload_after if unload_after is not None else (
                gap if gap * device.idle_watts <= device.cold_joules else 0.0)
            if gap > wait:
                idle += wait * device.idle_watts
                loaded = False
            else:
                idle += gap * device.idle_watts
        if not loaded:
            cold += 1
            load += device.cold_joules
            start += device.load_seconds
            waited += device.load_seconds
            loaded = True
        busy = seconds * device.rtf
        compute += busy * device.busy_watts
        audio += seconds
        free_at = start + busy
    if loaded and unload_after is not None:
        idle += unload_after * device.idle_watts  # the tail after the last memo
    return SimResult(len(memos), audio, cold, load, idle, compute, waited)


def report(devices: Sequence[DeviceModel] = (GPU_LOW, GPU_TYPICAL, GPU_HIGH), n: int = 200) -> str:
    memos = memo_workload(n)
    minutes = sum(s for _, s in memos) / 60
    lines = [f"{n} voice memos over 7 days (bursts of 1-5, 08-22 h), {minutes:.0f} min of audio;"
             " device figures are ESTIMATES (energy.md section 5)"]
    for device in devices:
        auto = break_even(device.cold_joules, device.idle_watts)
        lines.append(f"{device.name}: cold start {device.cold_joules / 3600:.2f} Wh, auto = {auto:.1f} s")
        for label, after in (("300 s", 300.0), (f"auto ({auto:.0f} s)", auto), ("oracle", None)):
            r = simulate(memos, device, after)
            lines.append(f"  {label:<14} {r.wh:8.2f} Wh  {r.wh / (r.audio_seconds / 3600):7.2f} Wh/audio h  "
                         f"{r.cold_starts:3d} cold starts  overhead {r.overhead_share * 100:5.1f} %  "
                         f"cold-start wait {r.waited_seconds / r.memos:4.1f} s/memo")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asrd.testing.energy_sim", description=__doc__)
    parser.add_argument("--memos", type=int, default=200)
    args = parser.parse_args(argv)
    print(report(n=args.memos))
    return 0


if __name__ == "__main__":
    sys.exit(main())
