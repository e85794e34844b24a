"""A real ``asrd run`` with the dashboard on, for browser tests: started, waited for, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_dashboard(config: Path, port: int, timeout: float = 30.0) -> Iterator[str]:
    """The dashboard's URL once ``/api/status`` answers; on exit the daemon must stop cleanly (exit 0)."""
    import httpx  # test extra

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRD_", "NOTIFY_", "WATCHDOG_"))}
    proc = subprocess.Popen([sys.executable, "-m", "asrd", "run", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/api/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"the dashboard did not come up:\n{proc.communicate()[0]}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, out


def shots_dir(fallback: Path) -> Path:
    """Where browser tests put screenshots: ``$ASRD_SCREENSHOTS`` (docs/screenshots is made so), else ``fallback``."""
    folder = Path(os.environ.get("ASRD_SCREENSHOTS") or fallback / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
