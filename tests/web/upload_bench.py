"""Upload throughput and the daemon's memory while it streams:
``python tests/web/upload_bench.py [--browser] [--model DIR] [MB ...]``.

Starts ``asrd run`` with the dashboard on a free loopback port (``--model``: ``[model] name``, say the tiny
test model from ``python -m asrd.testing build sensevoice-tiny DIR``) and new files paused (no model worker),
then for each size sends one file of that many MiB with curl (multipart), or with ``--browser`` through
the Upload page in Chromium (Playwright, as a person would), and prints the time, MiB/s and the daemon's
VmRSS / VmHWM (peak) from /proc. Not a test: numbers for README/notes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def send_curl(url: str, src: Path, name: str) -> None:
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", f"file=@{src};filename={name}",
                          f"{url}/api/upload?inbox=memos"], capture_output=True, text=True, check=True)
    assert out.stdout == "201", out


def send_browser(page: Any, url: str, src: Path, name: str) -> None:
    page.goto(url + "/upload")
    page.set_input_files("#pick-files", str(src))
    page.wait_for_selector("#uploads tr[data-state=done], #uploads tr[data-state=error]", timeout=600_000)
    assert page.get_attribute("#uploads tbody tr", "data-state") == "done", page.text_content("#uploads")


def main(sizes: list[int], browser: bool, model: str | None = None) -> None:
    page = None
    if browser:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        binary = shutil.which("chromium-headless-shell") or shutil.which("chromium")
        chromium = pw.chromium.launch(executable_path=binary)
        page = chromium.new_page()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        inbox = root / "memos"
        inbox.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = root / "config.toml"
        model_table = f'[model]\nname = "{model}"\n' if model else ""
        config.write_text(f'{model_table}[daemon]\nstate_dir = "{root / "state"}"\n[web]\nenabled = true\n'
                          f'listen = "127.0.0.1:{port}"\n[[inbox]]\npath = "{inbox}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASRD_")}
        proc = subprocess.Popen([sys.executable, "-m", "asrd", "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(url + "/api/status", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            httpx.post(url + "/api/pause", timeout=10)  # no worker: the daemon's own memory only
            print(f"daemon idle: VmRSS {status_kb(proc.pid, 'VmRSS') / 1024:.1f} MiB, "
                  f"VmHWM {status_kb(proc.pid, 'VmHWM') / 1024:.1f} MiB")
            for mb in sizes:
                src = root / f"src-{mb}.wav"
                with open(src, "wb") as f:
                    block = os.urandom(1 << 20)
                    for _ in range(mb):
                        f.write(block)
                start = time.perf_counter()
                if page is not None:
                    send_browser(page, url, src, src.name)
                else:
                    send_curl(url, src, src.name)
                took = time.perf_counter() - start
                stored = inbox / src.name
                assert stored.stat().st_size == mb << 20
                rss, peak = status_kb(proc.pid, "VmRSS") / 1024, status_kb(proc.pid, "VmHWM") / 1024
                print(f"{mb} MiB ({'browser' if page else 'curl'}): in {took:.2f} s = {mb / took:.0f} MiB/s; "
                      f"daemon VmRSS {rss:.1f} MiB, VmHWM {peak:.1f} MiB")
                src.unlink()
                stored.unlink()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            if page is not None:
                chromium.close()
                pw.stop()


if __name__ == "__main__":
    args = sys.argv[1:]
    model = args[args.index("--model") + 1] if "--model" in args else None
    if model is not None:
        args.remove("--model")
        args.remove(model)
    main([int(a) for a in args if a != "--browser"] or [50, 500], "--browser" in args, model)
