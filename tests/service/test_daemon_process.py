"""`asrd run` as systemd runs it: a real subprocess, real signals, a real notify socket, the tiny model."""

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

from asrd.testing.sdnotify import NotifySocket as Notify

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
LONG = DATA / "vad_example_zh.ogg"  # 70 s: long enough to be caught mid-file


def write_config(root: Path, model: Path, **extra: str) -> Path:
    (root / "inbox").mkdir(exist_ok=True)
    lines = [
        "[model]", f'name = "{model}"', "threads = 1", f"idle_unload_seconds = {extra.get('idle', '300')}",
        "[daemon]", f'state_dir = "{root / "state"}"',
        "[[inbox]]", f'path = "{root / "inbox"}"', "settle_seconds = 0.5",
    ]
    if "second_inbox" in extra:
        lines += ["[[inbox]]", f'path = "{extra["second_inbox"]}"', "settle_seconds = 0.5"]
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    n = Notify(tmp_path)
    yield n
    n.close()


def start(config: Path, notify: Notify | None = None, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ASRD_", "NOTIFY_", "WATCHDOG_"))}
    environ.update(env)
    if notify is not None:
        environ["NOTIFY_SOCKET"] = str(notify.path)
    return subprocess.Popen(
        [sys.executable, "-m", "asrd", "run", "--config", str(config)],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def status(config: Path) -> dict:
    run = subprocess.run([sys.executable, "-m", "asrd", "status", "--json", "--config", str(config)],
                         capture_output=True, text=True)
    return json.loads(run.stdout)


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


# Shared libraries of the model and the decoders, as they appear in /proc/<pid>/maps: torch (libtorch_cpu,
# libc10), PyAV's FFmpeg (libavcodec-<hash>.so, libswresample), soundfile's libsndfile, numpy's core.
HEAVY_LIBRARY = re.compile(
    r"^(libtorch|libc10|libav(codec|format|util|filter|device)|libswresample|libswscale|libsndfile|_multiarray_umath)"
)


def heavy_mappings(pid: int) -> set[str]:
    """Names of model or decoder libraries mapped into a running process."""
    with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
        names = {os.path.basename(line.split(maxsplit=5)[5].strip()) for line in maps if len(line.split()) == 6}
    return {name for name in names if HEAVY_LIBRARY.match(name)}


def long_recording(folder: Path, minutes: int) -> Path:
    """A wav of ``minutes`` (the 70 s recording repeated): the tiny model needs many seconds for it."""
    import numpy as np
    import soundfile as sf

    samples, rate = sf.read(LONG, dtype="int16")
    repeats = -(-minutes * 60 * rate // len(samples))
    path = folder / "long.wav"
    sf.write(path, np.tile(samples, repeats), rate, subtype="PCM_16")
    return path


def test_kill_9_mid_batch_then_restart_gives_exactly_one_set(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    config = write_config(tmp_path, tiny_sensevoice_dir)
    inbox = tmp_path / "inbox"
    names = [f"rec{i:02d}.ogg" for i in range(20)]
    for name in names:
        shutil.copy(LONG, inbox / name)
    original = LONG.read_bytes()
    proc = start(config)
    try:
        # 180 s: on a busy 2-core machine the model load alone took ~35 s
        wait_for(lambda: len(list(inbox.glob("*.txt"))) >= 3, timeout=180, what="a few files done")
        proc.kill()  # kill -9 of the daemon, in the middle of the batch
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = len(list(inbox.glob("*.txt")))
    assert done_before < 20, "the kill must land mid-batch"
    proc = start(config)
    try:
        wait_for(lambda: (status(config).get("queue") or {}).get("done") == 20, timeout=180, what="all 20 done")
    finally:
        log = stop(proc)
    stems = {n.removesuffix(".ogg") for n in names}
    expected = sorted([*names, *(f"{s}.txt" for s in stems), *(f"{s}.srt" for s in stems)])
    assert sorted(p.name for p in inbox.iterdir()) == expected, log
    assert all((inbox / n).read_bytes() == original for n in names)
    assert all((inbox / f"{s}.srt").stat().st_size > 0 for s in stems)


def test_second_daemon_refused(tmp_path: Path, tiny_sensevoice_dir: Path, notify: Notify) -> None:
    config = write_config(tmp_path, tiny_sensevoice_dir)
    first = start(config, notify)
    try:
        wait_for(lambda: notify.seen("READY=1"), what="READY=1")
        second = subprocess.run([sys.executable, "-m", "asrd", "run", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "already using the state directory" in second.stderr and str(first.pid) in second.stderr
    finally:
        stop(first)


def test_notify_drain_and_status(tmp_path: Path, tiny_sensevoice_dir: Path, notify: Notify) -> None:
    config = write_config(tmp_path, tiny_sensevoice_dir)
    assert status(config)["running"] is False
    proc = start(config, notify, WATCHDOG_USEC="1000000")
    try:
        wait_for(lambda: notify.seen("READY=1"), what="READY=1")
        assert any("STATUS=idle, model unloaded, 0 queued" in m for m in notify.messages)
        wait_for(lambda: notify.seen("WATCHDOG=1"), timeout=5, what="WATCHDOG=1")
        shutil.copy(LONG, tmp_path / "inbox" / "talk.ogg")
        wait_for(lambda: notify.seen("STATUS=transcribing talk.ogg"), timeout=180, what="progress in STATUS")
        doc = status(config)
        assert doc["running"] and doc["daemon"]["worker_pid"]
        # At run time, with a file dispatched: the daemon maps none of the model's or decoders' libraries,
        # while its worker does (which shows the check sees them).
        assert heavy_mappings(proc.pid) == set()
        assert any(name.startswith("libtorch") for name in heavy_mappings(doc["daemon"]["worker_pid"]))
        proc.send_signal(signal.SIGTERM)  # first SIGTERM: finish the file in flight, then exit 0
        assert proc.wait(60) == 0
    finally:
        log = stop(proc)
    assert notify.seen("STOPPING=1") and notify.seen("EXTEND_TIMEOUT_USEC=")
    assert (tmp_path / "inbox" / "talk.txt").exists(), log  # the file in flight was finished
    assert status(config)["queue"]["done"] == 1


def test_second_sigterm_exits_at_once_and_nothing_is_lost(tmp_path: Path, tiny_sensevoice_dir: Path,
                                                           notify: Notify) -> None:
    config = write_config(tmp_path, tiny_sensevoice_dir)
    recording = long_recording(tmp_path / "inbox", minutes=10)  # its drain would take far longer than we wait
    proc = start(config, notify)
    try:
        wait_for(lambda: (status(config).get("queue") or {}).get("running") == 1, what="running")
        proc.send_signal(signal.SIGTERM)
        # The daemon has acted on the first signal (began draining) before the second is sent, so the
        # two cannot merge into one and the exit below is the second signal's.
        wait_for(lambda: notify.seen("STOPPING=1"), timeout=30, what="STOPPING=1 after the first SIGTERM")
        assert not recording.with_suffix(".txt").exists()
        proc.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert proc.wait(20) == 0
        took = time.monotonic() - asked
    finally:
        log = stop(proc)
    assert "second stop signal" in log, log
    assert not recording.with_suffix(".txt").exists(), "the drain finished the file: the second signal was not seen"
    assert took < 20
    doc = status(config)
    assert doc["queue"]["queued"] + doc["queue"]["running"] == 1 and doc["queue"]["done"] == 0
    proc = start(config)  # the next start takes the interrupted file up again and finishes it
    try:
        wait_for(lambda: status(config)["queue"]["done"] == 1, timeout=300, what="done after restart")
    finally:
        log = stop(proc)
    assert recording.with_suffix(".txt").stat().st_size > 0, log


def test_sighup_reload(tmp_path: Path, tiny_sensevoice_dir: Path, notify: Notify) -> None:
    config = write_config(tmp_path, tiny_sensevoice_dir)
    second = tmp_path / "second-inbox"
    second.mkdir()
    proc = start(config, notify)
    try:
        wait_for(lambda: notify.seen("READY=1"), what="READY=1")
        write_config(tmp_path, tiny_sensevoice_dir, second_inbox=str(second))
        notify.messages.clear()
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: notify.seen("READY=1"), what="READY=1 after reload")
        reload_msg = next(m for m in notify.messages if "RELOADING=1" in m)
        usec = int(reload_msg.split("MONOTONIC_USEC=")[1].split()[0])
        assert abs(usec / 1e6 - time.monotonic()) < 60
        shutil.copy(DATA / "test_ko.wav", second / "new.wav")
        wait_for(lambda: (second / "new.txt").exists(), what="the new inbox is watched")
        # An invalid config is refused; the daemon keeps running on the old one.
        config.write_text(config.read_text().replace("threads = 1", "threads = -5"))
        notify.messages.clear()
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: notify.seen("READY=1"), what="READY=1 after refused reload")
        shutil.copy(DATA / "test_ko.wav", tmp_path / "inbox" / "still.wav")
        wait_for(lambda: (tmp_path / "inbox" / "still.txt").exists(), what="still working")
    finally:
        log = stop(proc)
    assert "reload refused" in log and "model.threads" in log


def test_cli_retry_is_seen_at_once(tmp_path: Path, tiny_sensevoice_dir: Path, notify: Notify) -> None:
    # Idle, the daemon sleeps up to a minute; `asrd retry` wakes it (SIGUSR1), so the file is tried again now.
    config = write_config(tmp_path, tiny_sensevoice_dir)
    bad = tmp_path / "inbox" / "broken.wav"
    bad.write_bytes(b"RIFF" + bytes(4000))  # not decodable: quarantined on its first attempt
    proc = start(config, notify)
    try:
        wait_for(lambda: notify.seen("READY=1"), what="READY=1")
        wait_for(lambda: status(config)["queue"]["quarantined"] == 1, timeout=120, what="quarantine")
        first = status(config)["problems"][0]["updated"]
        time.sleep(1.0)  # the loop is asleep on its idle tick now
        run = subprocess.run([sys.executable, "-m", "asrd", "retry", "--config", str(config), str(bad)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "1 file(s) queued again" in run.stdout, run.stdout + run.stderr
        wait_for(lambda: (status(config).get("problems") or [{"updated": first}])[0]["updated"] > first,
                 timeout=15, what="the retried file tried again within seconds (not on the 60 s tick)")
    finally:
        stop(proc)
