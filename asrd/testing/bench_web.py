"""The dashboard's cost in the daemon, measured on a real ``asrd run`` (issue: "RSS idle with the web thread on,
after 1,000 page loads and 20 SSE clients; idle wake-ups per second with no client").

    python -m asrd.testing.bench_web --model DIR [--idle-seconds 30] [--loads 1000] [--sse 20]

Starts two daemons one after the other on a scratch inbox - dashboard off, then on (127.0.0.1, a free port) -
and reads ``/proc/PID/status`` (VmRSS, VmHWM) and the context switches of all the daemon's threads
(``/proc/PID/task/*/status``) over an idle interval with no client. With the dashboard on it then holds ``--sse``
event streams open while it loads the pages ``--loads`` times, and reads the memory again. Each daemon is
ended by its own PID (SIGTERM, exit 0 expected). The model is never loaded: no file is dropped in.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGES = ("/", "/files", "/library", "/problems", "/model", "/inboxes", "/system", "/upload", "/api/status",
         "/api/jobs", "/api/search?q=meeting")


@dataclass(frozen=True)
class Sample:
    rss_kb: int
    hwm_kb: int
    switches: int  # voluntary + involuntary context switches of every thread so far


def sample(pid: int) -> Sample:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    switches = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
        except FileNotFoundError:
            continue  # a thread that ended while we read
    return Sample(fields["VmRSS"], fields["VmHWM"], switches)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(root: Path, model: Path, port: int | None) -> Path:
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    lines = ["[model]", f'name = "{model}"', "threads = 1", "[daemon]", f'state_dir = "{root / "state"}"',
             "[[inbox]]", f'path = "{root / "inbox"}"']
    if port is not None:
        lines += ["[web]", "enabled = true", f'listen = "127.0.0.1:{port}"']
    config = root / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def start(config: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRD_", "NOTIFY_", "WATCHDOG_"))}
    return subprocess.Popen([sys.executable, "-m", "asrd", "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(proc: subprocess.Popen[bytes], state: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not (state / "status.json").exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit(f"asrd run did not come up (exit {proc.poll()})")
        time.sleep(0.2)
    time.sleep(3)  # let start-up settle (first rescan, imports) before measuring idle


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def idle(pid: int, seconds: float) -> tuple[Sample, float]:
    before = sample(pid)
    time.sleep(seconds)
    after = sample(pid)
    return after, (after.switches - before.switches) / seconds


def hold_streams(url: str, count: int, stop_flag: threading.Event) -> list[threading.Thread]:
    import httpx  # test extra

    def one() -> None:
        with httpx.Client(timeout=None) as client, client.stream("GET", url + "/api/events") as response:
            for _ in response.iter_bytes():
                if stop_flag.is_set():
                    return

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


def main(argv: list[str] | None = None) -> int:
    import httpx  # test extra

    parser = argparse.ArgumentParser(prog="python -m asrd.testing.bench_web", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="a local model folder (e.g. the tiny test model)")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--sse", type=int, default=20)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="asrd-bench-web-") as scratch:
        root = Path(scratch)
        proc = start(write_config(root / "off", args.model.resolve(), None))
        wait_ready(proc, root / "off" / "state")
        off, off_rate = idle(proc.pid, args.idle_seconds)
        print(f"dashboard off: idle VmRSS {off.rss_kb / 1024:.1f} MB, {off_rate:.2f} wake-ups/s "
              f"over {args.idle_seconds:.0f} s; exit {stop(proc)}")

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(write_config(root / "on", args.model.resolve(), port))
        wait_ready(proc, root / "on" / "state")
        on, on_rate = idle(proc.pid, args.idle_seconds)
        print(f"dashboard on:  idle VmRSS {on.rss_kb / 1024:.1f} MB, {on_rate:.2f} wake-ups/s "
              f"over {args.idle_seconds:.0f} s")
        flag = threading.Event()
        streams = hold_streams(url, args.sse, flag)
        started = time.monotonic()
        with httpx.Client(timeout=30) as client:
            for i in range(args.loads):
                response = client.get(url + PAGES[i % len(PAGES)])
                if response.status_code != 200:
                    raise SystemExit(f"{PAGES[i % len(PAGES)]}: HTTP {response.status_code}")
        took = time.monotonic() - started
        loaded = sample(proc.pid)
        flag.set()
        print(f"after {args.loads} page loads ({took / args.loads * 1000:.1f} ms each) with {len(streams)} event "
              f"streams open: VmRSS {loaded.rss_kb / 1024:.1f} MB (+{(loaded.rss_kb - on.rss_kb) / 1024:.1f}), "
              f"VmHWM {loaded.hwm_kb / 1024:.1f} MB; exit {stop(proc)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
