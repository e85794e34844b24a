"""Model I/O happens in the worker and in `asrd model`, never in the daemon before READY=1.

No hub is reachable here: `python -m asrd.testing.hub --stand-in ROOT` serves hub ids from a folder,
slowly, to the worker that `asrd run` spawns and to `asrd model fetch|check`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from asrd.testing.hub import offer, silent_proxy
from asrd.testing.sdnotify import NotifySocket as Notify

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
HUB_ID = "iic/SenseVoiceSmall"


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Empty model caches and a proxy that accepts connections and never answers (the slow way to fail)."""
    with silent_proxy() as proxy:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASRD_", "NOTIFY_", "WATCHDOG_"))}
        env.pop("no_proxy", None)
        env.pop("NO_PROXY", None)
        env.update({"https_proxy": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "HTTP_PROXY": proxy,
                    "MODELSCOPE_CACHE": str(tmp_path / "ms-cache"), "HF_HOME": str(tmp_path / "hf-home"),
                    "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub")})
        yield env


def asrd(*args: str, env: dict[str, str], stand_in: Path | None = None, timeout: float = 120,
         ) -> subprocess.CompletedProcess[str]:
    prefix = ["-m", "asrd.testing.hub", "--stand-in", str(stand_in), "--"] if stand_in else ["-m", "asrd"]
    return subprocess.run([sys.executable, *prefix, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def empty_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[model]\nthreads = 1\n")
    return path


# ------------------------------------------------------------------ asrd model fetch | check


def test_model_check_local_dir_complete_and_incomplete(tmp_path: Path, tiny_sensevoice_dir: Path,
                                                      offline: dict[str, str]) -> None:
    config = empty_config(tmp_path)
    ok = asrd("model", "check", "--config", str(config), "--model", str(tiny_sensevoice_dir), env=offline)
    assert ok.returncode == 0, ok.stderr
    assert f"{tiny_sensevoice_dir}: ok" in ok.stdout
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sensevoice_dir, broken)
    (broken / "am.mvn").unlink()
    for action in ("check", "fetch"):
        bad = asrd("model", action, "--config", str(config), "--model", str(broken), env=offline)
        assert bad.returncode == 1
        assert f"{broken}: incomplete model directory, missing am.mvn" in bad.stderr
    gone = asrd("model", "check", "--config", str(config), "--model", str(tmp_path / "nope"), env=offline)
    assert gone.returncode == 1 and f"{tmp_path / 'nope'}: model directory not found" in gone.stderr


def test_model_fetch_then_check_a_hub_id(tmp_path: Path, tiny_sensevoice_dir: Path, offline: dict[str, str]) -> None:
    root = tmp_path / "stand-in"
    offer(root, HUB_ID, tiny_sensevoice_dir, chunk_bytes=256 << 10, pause_seconds=0)
    config = empty_config(tmp_path)
    before = asrd("model", "check", "--config", str(config), "--model", "SenseVoiceSmall", env=offline,
                  stand_in=root)
    assert before.returncode == 1
    assert f"model '{HUB_ID}' is not downloaded yet; run `asrd model fetch`" in before.stderr
    fetched = asrd("model", "fetch", "--config", str(config), "--model", "SenseVoiceSmall", env=offline,
                   stand_in=root)
    assert fetched.returncode == 0, fetched.stderr
    cached = root / "cache" / HUB_ID
    assert fetched.stdout.strip() == f"{cached}: ok"
    assert sorted(p.name for p in cached.iterdir()) == sorted(p.name for p in tiny_sensevoice_dir.iterdir())
    after = asrd("model", "check", "--config", str(config), "--model", "SenseVoiceSmall", env=offline,
                 stand_in=root)
    assert after.returncode == 0, after.stderr
    lines = after.stdout.strip().splitlines()  # loads, then the state of each FunASR patch, then ok
    assert lines[0].startswith(f"{cached}: loads on cpu")
    assert lines[-1] == f"{cached}: ok"


@pytest.mark.parametrize("hub", ["ms", "hf"])
def test_model_fetch_offline_without_cache_fails_fast(tmp_path: Path, offline: dict[str, str], hub: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[model]\nhub = "{hub}"\n')
    started = time.monotonic()
    run = asrd("model", "fetch", "--config", str(config), env=offline, timeout=60)
    took = time.monotonic() - started
    assert run.returncode == 1
    assert "could not be reached" in run.stderr and "asrd model fetch" in run.stderr, run.stderr
    assert took < 20, f"took {took:.1f} s"  # 5 s to decide, plus Python and the hub library imports


# ------------------------------------------------------------------ asrd run with a hub id


def daemon_config(tmp_path: Path, model: str) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text("\n".join([
        "[model]", f'name = "{model}"', "threads = 1",
        "[daemon]", f'state_dir = "{tmp_path / "state"}"',
        "[[inbox]]", f'path = "{tmp_path / "inbox"}"', "settle_seconds = 0.2",
    ]) + "\n")
    return path


def start_daemon(config: Path, env: dict[str, str], notify: Notify, imports: Path,
                 stand_in: Path | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "asrd.testing.hub", "--record-imports", str(imports)]
    if stand_in is not None:
        args += ["--stand-in", str(stand_in)]
    return subprocess.Popen([*args, "--", "run", "--config", str(config)],
                            env={**env, "NOTIFY_SOCKET": str(notify.path)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_daemon(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def status(config: Path, env: dict[str, str], *json_flag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "asrd", "status", *json_flag, "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_daemon_is_ready_before_the_worker_downloads(tmp_path: Path, tiny_sensevoice_dir: Path,
                                                     offline: dict[str, str]) -> None:
    root = tmp_path / "stand-in"
    # ~2.5 MB in 32 KiB pieces, 60 ms apart: about 5 s of "download".
    offer(root, HUB_ID, tiny_sensevoice_dir, chunk_bytes=32 << 10, pause_seconds=0.06)
    config = daemon_config(tmp_path, HUB_ID)
    shutil.copy(DATA / "test_ko.wav", tmp_path / "inbox" / "memo.wav")  # work at once: the worker starts
    notify = Notify(tmp_path, wait=0.05)
    imports = tmp_path / "daemon-imports.txt"
    proc = start_daemon(config, offline, notify, imports, stand_in=root)
    try:
        wait_for(lambda: notify.seen("READY=1") or proc.poll() is not None, what="READY=1")
        assert proc.poll() is None
        assert not (root / "cache" / HUB_ID).exists(), "READY=1 must not wait for the download"
        seen: dict = {}

        def downloading() -> bool:
            doc = json.loads(status(config, offline, "--json").stdout)
            download = (doc.get("daemon") or {}).get("download")
            if download and 0 < download["done_bytes"] < download["total_bytes"]:
                seen.update(download)
            return bool(seen)

        wait_for(downloading, timeout=30, what="download progress in asrd status --json")
        # The total grows as files start, as with the real hubs' hooks.
        assert seen["total_bytes"] <= sum(p.stat().st_size for p in tiny_sensevoice_dir.iterdir())
        text: list[str] = []

        def shown() -> bool:
            text[:] = status(config, offline).stdout.splitlines()
            return any(re.match(r"model: downloading model: \d\.\d of \d\.\d MB \(worker pid \d+\)$", line)
                       for line in text)

        wait_for(shown, timeout=30, what="download progress in asrd status")
        wait_for(lambda: notify.seen("STATUS=downloading model: "), timeout=10, what="download in STATUS=")
        wait_for(lambda: (tmp_path / "inbox" / "memo.txt").exists() or proc.poll() is not None, timeout=120,
                 what="the file transcribed with the downloaded model")
        assert (tmp_path / "inbox" / "memo.txt").exists()
        assert "download" not in json.loads(status(config, offline, "--json").stdout)["daemon"] or \
            json.loads(status(config, offline, "--json").stdout)["daemon"]["download"] is None
    finally:
        log = stop_daemon(proc)
    assert proc.returncode == 0, log
    assert not imports.exists(), f"the daemon imported {imports.read_text()}"


def test_daemon_offline_with_a_hub_id_starts_and_never_imports_hub_libraries(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    config = daemon_config(tmp_path, HUB_ID)
    notify = Notify(tmp_path, wait=0.05)
    imports = tmp_path / "daemon-imports.txt"
    started = time.monotonic()
    proc = start_daemon(config, offline, notify, imports)
    try:
        wait_for(lambda: notify.seen("READY=1") or proc.poll() is not None, what="READY=1")
        assert proc.poll() is None
        assert time.monotonic() - started < 15
        # A file makes the worker try: it cannot reach the hub, says so, and the file waits.
        shutil.copy(DATA / "test_ko.wav", tmp_path / "inbox" / "memo.wav")

        def model_error() -> str:
            return (json.loads(status(config, offline, "--json").stdout).get("daemon") or {}).get("model_error") or ""

        wait_for(lambda: "could not be reached" in model_error(), timeout=90, what="the worker's model error")
    finally:
        log = stop_daemon(proc)
    assert proc.returncode == 0, log
    assert not imports.exists(), f"the daemon imported {imports.read_text()}"


def test_daemon_refuses_an_incomplete_local_model_dir(tmp_path: Path, tiny_sensevoice_dir: Path,
                                                     offline: dict[str, str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sensevoice_dir, broken)
    (broken / "model.pt").unlink()
    config = daemon_config(tmp_path, str(broken))
    run = subprocess.run([sys.executable, "-m", "asrd", "run", "--config", str(config)], capture_output=True,
                         text=True, env=offline, timeout=60)
    assert run.returncode == 78
    assert f"{broken}: incomplete model directory, missing model.pt" in run.stderr
