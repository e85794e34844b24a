"""Throughput of the daemon's dispatcher with one worker against several (``[model] devices``) on
the memo workload: real worker processes, the real dispatcher, an in-memory job store, sidecars
written as the daemon writes them.

    python -m asrd.testing.poolbench --model DIR --memos 40 --devices "" cpu,cpu

Every worker is started and loaded before the clock starts, so the numbers are the steady rate
(a cold batch adds one load per worker, staggered).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from asrd.config import load_settings
from asrd.control.dispatch import Dispatcher
from asrd.control.fingerprint import fingerprint
from asrd.control.inboxviews import engine_spec, inbox_views
from asrd.control.jobs import JobState
from asrd.control.jobs_memory import MemoryJobStore
from asrd.worker.handle import WorkerHandle

REPO_SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def run(model: Path, files: list[Path], devices: list[str], threads: int, work: Path) -> dict[str, float]:
    inbox = work / f"inbox-{'-'.join(devices) or 'single'}"
    inbox.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "inbox": [{"path": str(inbox), "output_dir": str(work / "out")}],
        "daemon": {"state_dir": str(work)},
        "model": {"devices": devices, "threads": threads, "device": "cpu"},
    }
    settings = load_settings(None, overrides)
    views = inbox_views(settings)
    key = next(iter(views))
    store = MemoryJobStore(max_attempts=1)
    dispatcher = Dispatcher(store, views, engine_spec(settings, str(model)), -1, spawn=WorkerHandle)
    for slot in dispatcher.pool.slots:  # loaded before the clock starts (one at a time: the RAM peak)
        slot.worker = WorkerHandle(slot.spec)
        while slot.worker.loaded is None:
            dispatcher.step(time.time())
            wait(dispatcher.filenos(), 0.1)
    paths = []
    for src in files:
        dest = inbox / src.name
        dest.write_bytes(src.read_bytes())
        paths.append(dest)
    cpu_before = sum(_cpu_seconds(w.pid) for w in dispatcher.pool.workers if w.pid)
    start = time.time()
    for path in paths:
        store.offer(path, key, fingerprint(path), start)
    while store.counts().get(JobState.DONE, 0) + store.counts().get(JobState.QUARANTINED, 0) < len(paths):
        dispatcher.step(time.time())
        wait(dispatcher.filenos(), 0.05)
    wall = time.time() - start
    cpu = sum(_cpu_seconds(w.pid) for w in dispatcher.pool.workers if w.pid) - cpu_before
    dispatcher.shutdown(time.time(), "benchmark over")
    failed = store.counts().get(JobState.QUARANTINED, 0)
    return {"wall_seconds": wall, "cpu_seconds": cpu, "failed": failed}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a worker (Linux /proc): a machine shared with other work slows the
    wall clock of both set-ups, this much less."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    import soundfile as sf

    from asrd.testing import workloads

    parser = argparse.ArgumentParser(prog="python -m asrd.testing.poolbench")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--memos", type=int, default=200)
    parser.add_argument("--devices", nargs="+", default=["", "cpu,cpu"], help='"" is one worker')
    parser.add_argument("--threads", type=int, default=0, help="model threads in all (0: every CPU)")
    parser.add_argument("--audio-dir", type=Path, default=REPO_SHARED / "audio")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "asrd-poolbench")
    opts = parser.parse_args(argv)
    files = workloads.memos(workloads.speech_pool(opts.audio_dir), opts.work_dir / "memos", opts.memos)
    audio = sum(sf.info(str(f)).duration for f in files)
    print(f"{len(files)} memos, {audio / 60:.1f} min of audio", file=sys.stderr)
    for devices in opts.devices:
        entries = [d for d in devices.split(",") if d]
        result = run(opts.model, files, entries, opts.threads, opts.work_dir / "run")
        wall = result["wall_seconds"]
        print(f"devices={entries}: {wall:.1f} s wall, RTF {wall / audio:.4f}, "
              f"{audio / 3600 / (wall / 60):.3f} audio h/min, worker CPU {result['cpu_seconds']:.0f} s "
              f"({result['cpu_seconds'] / audio:.4f} CPU s per audio s), failed {result['failed']:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
