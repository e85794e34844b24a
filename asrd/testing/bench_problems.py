"""The Problems page with many failed files: ``python -m asrd.testing.bench_problems [--problems N] [--done N]``.

Fills a SQLite job store with N failed and quarantined jobs (default 10,000, spread over 40 reasons, some
with a reason unique to the file) beside finished ones, then times what the dashboard does with them through
its real routes (Starlette's TestClient over ``asrd.web.twin.MemoryPort`` holding that store): the Problems
page (first, middle and last page; one reason), the Now page, "retry all", "forget" one file (dismiss), and
the store's own queries. A benchmark, not a test: it prints numbers and checks nothing. Needs the web extra.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import Failure, JobQuery, JobState
from asrd.control.jobs_sqlite import SqliteJobStore

ORIGIN = "http://127.0.0.1:8765"
REASONS = [f"cannot decode: {kind} stream {n}" for kind in ("opus", "aac", "mp3", "flac") for n in range(10)]


def fill(store: SqliteJobStore, problems: int, done: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    store._db.execute("PRAGMA synchronous = OFF")  # filling only
    start = time.time() - 86400 - problems - done
    for n in range(problems + done):
        path = Path(f"/inbox/{n // 1000:03d}/file-{n:06d}.m4a")
        job = store.offer(path, "/inbox", Fingerprint(1, n + 1, 1000 + n, n, f"h{n}"), start)
        assert job is not None
        (claimed,) = store.claim(start, 1)  # the failed ones are due later than ``start``: this is the new one
        assert claimed.id == job.id
        if n >= problems:
            store.complete(claimed.id, start + n)
            continue
        reason = rng.choice(REASONS) if rng.random() < 0.9 else f"odd failure of file {n}"
        kind = Failure.PERMANENT if rng.random() < 0.5 else Failure.RETRY
        store.fail(claimed.id, start + n, reason, kind)


def _time(what: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        what()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    from starlette.testclient import TestClient

    from asrd.web.app import build_app
    from asrd.web.hub import Hub
    from asrd.web.security import Policy
    from asrd.web.twin import MemoryPort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--done", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteJobStore(Path(tmp) / "jobs.db")
        started = time.perf_counter()
        fill(store, args.problems, args.done)
        print(f"filled {args.problems} problems and {args.done} done jobs in {time.perf_counter() - started:.1f} s")
        port: Any = MemoryPort(store=store)  # type: ignore[arg-type]  # the SQLite store behind the twin's port
        hub = Hub(port.snapshot())
        port.listen(hub.publish)
        client = TestClient(build_app(port, hub, Policy("auto", frozenset())), base_url=ORIGIN)
        post = {"origin": ORIGIN, "hx-request": "true"}
        last = -(-args.problems // 50)
        rows: list[tuple[str, Callable[[], Any]]] = [
            ("GET /problems", lambda: client.get("/problems")),
            ("GET /problems?page=middle", lambda: client.get(f"/problems?page={last // 2 or 1}")),
            ("GET /problems?page=last", lambda: client.get(f"/problems?page={last}")),
            ("GET /problems?reason=one", lambda: client.get("/problems", params={"reason": REASONS[7]})),
            ("GET /api/jobs?state=problem", lambda: client.get("/api/jobs?state=problem")),
            ("GET / (Now)", lambda: client.get("/")),
            ("store.counts()", store.counts),
            ("store.reasons(20)", lambda: store.reasons(20)),
            ("store.search(problems)", lambda: store.search(JobQuery(problems=True, limit=50))),
        ]
        print(f"{'what':<34} {'median ms':>10} {'worst ms':>9}")
        for label, what in rows:
            median, worst = _time(what, args.runs)
            print(f"{label:<34} {median:>10.1f} {worst:>9.1f}")
        victim = store.search(JobQuery(states=(JobState.QUARANTINED,), limit=1)).jobs[0]
        t0 = time.perf_counter()
        answer = client.post(f"/api/jobs/{victim.id}/forget", headers=post)
        print(f"{'POST forget (dismiss one)':<34} {(time.perf_counter() - t0) * 1000:>10.1f}   {answer.text[:60]}")
        t0 = time.perf_counter()
        answer = client.post("/api/jobs/retry-all", headers=post)
        print(f"{'POST retry-all':<34} {(time.perf_counter() - t0) * 1000:>10.1f}   {answer.text[:60]}")
        median, worst = _time(lambda: client.get("/problems"), args.runs)
        print(f"{'GET /problems (after retry all)':<34} {median:>10.1f} {worst:>9.1f}")
        store.close()


if __name__ == "__main__":
    main()
