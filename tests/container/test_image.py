"""The CPU container image, built from this checkout and run the way a NAS user runs it.

Needs podman and the locally made base image (``.ci/run`` installs both: ``.ci/container-base``);
skipped with the reason otherwise. The image is run as PUID/PGID 1234 against a bind-mounted inbox,
offline (``--network=none``), with a tiny random-weight model mounted read-only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asrd.control.daemon import DRAIN_SECONDS

pytestmark = [pytest.mark.slow, pytest.mark.container]

REPO = Path(__file__).resolve().parents[2]
BASE = "localhost/debian:bookworm"
IMAGE = "localhost/asrd:cpu-test"
UID = GID = 1234
AUDIO = REPO / "tests" / "data" / "audio" / "jfk.flac"
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def engine() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed (.ci/run installs it)")
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / ".ci" / "containers.conf"))
    if podman("image", "exists", BASE, check=False).returncode != 0:
        pytest.skip(f"no base image {BASE} (.ci/container-base makes it with debootstrap)")
    if os.geteuid() != 0:
        pytest.skip("needs root podman: rootless podman maps PUID/PGID into a user namespace")


def _pip_setting(name: str) -> str:
    """A pip option as the host's pip sees it ($PIP_X, then pip's config files); "" when unset."""
    env = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if env:
        return env
    run = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"],
                         capture_output=True, text=True, timeout=60, check=False)
    return run.stdout.strip() if run.returncode == 0 else ""


def build_args() -> list[str]:
    """What the build needs here and nowhere else: the host's pip cache (nothing downloaded twice), the
    proxy's CA bundle only when the host's pip is told to use one, and a local torch CPU wheel only when
    the host has one (download.pytorch.org may be out of reach; PyPI's Linux torch is the CUDA build)."""
    cache = Path.home() / ".cache" / "pip"
    cache.mkdir(parents=True, exist_ok=True)
    args = ["-v", f"{cache}:/root/.cache/pip"]
    cert = _pip_setting("cert")
    if cert and Path(cert).is_file():
        args += ["-v", f"{cert}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
    for links in _pip_setting("find-links").split():
        folder = Path(links.removeprefix("file://"))
        if folder.is_dir() and any(folder.glob(TORCH_WHEEL)):
            args += ["-v", f"{folder}:/wheels:ro", "--build-arg", "TORCH_INDEX="]
            break
    return args


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    started = time.monotonic()
    run = subprocess.run(
        # --format docker: the OCI image format has no HEALTHCHECK, and podman drops it with a warning.
        ["podman", "build", "--format", "docker", "--build-arg", f"BASE={BASE}", *build_args(),
         "-t", IMAGE, "-f", "Containerfile", "."],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    size = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Size"]
    print(f"\nimage built in {time.monotonic() - started:.1f} s, {size / 1e6:.0f} MB")
    return IMAGE


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Container:
    """One container, known by its id; removed by that id."""

    def __init__(self, cid: str) -> None:
        self.id = cid

    def logs(self) -> str:
        run = podman("logs", self.id)
        return run.stdout + run.stderr

    def status(self) -> dict[str, Any]:
        # Through the image's `asrd` (drops to PUID/PGID like everything run in the container).
        return json.loads(podman("exec", self.id, "asrd", "status", "--json", check=False).stdout or "{}")

    def healthy(self) -> bool:
        return podman("healthcheck", "run", self.id, check=False).returncode == 0

    def state(self) -> dict[str, Any]:
        return json.loads(podman("inspect", self.id).stdout)[0]["State"]  # type: ignore[no-any-return]

    def rss_bytes(self) -> int:
        """Resident memory of every process in the container (tini, asrd, any worker), from /proc."""
        total, todo = 0, [int(self.state()["Pid"])]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
        return total


@pytest.fixture
def container_factory(image: str) -> Iterator[Callable[..., Container]]:
    made: list[str] = []

    def make(*args: str) -> Container:
        cid = podman("run", "-d", "--name", f"asrd-test-{uuid.uuid4().hex[:8]}", *args, image).stdout.strip()
        made.append(cid)
        return Container(cid)

    yield make
    for cid in made:
        print(f"--- podman logs {cid[:12]}\n{Container(cid).logs()[-4000:]}")  # shown when the test failed
        podman("rm", "--force", "--time", "0", cid, check=False)


def drop(path: Path) -> None:
    """A recording arriving in the share: the user's, written elsewhere, renamed in."""
    part = path.with_name(".part")
    shutil.copyfile(AUDIO, part)
    os.chown(part, UID, GID)
    os.chmod(part, 0o640)
    os.replace(part, path)


def snapshot(folder: Path) -> dict[str, tuple[int, int, int, int, int]]:
    return {p.name: (p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o7777, p.stat().st_ino,
                     p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_image_runs_as_puid_writes_sidecars_drains_and_restarts(
    container_factory: Callable[..., Container], tiny_sensevoice_dir: Path, tmp_path: Path
) -> None:
    inbox, state, models = tmp_path / "inbox", tmp_path / "state", tmp_path / "models"
    for folder in (inbox, state, models):
        folder.mkdir()
    os.chown(inbox, UID, GID)  # the NAS share, owned by the user; state and models start as root's
    umask = os.umask(0o022)
    os.umask(umask)
    started = time.monotonic()
    args = (
        "--network=none",
        "-e", f"PUID={UID}", "-e", f"PGID={GID}", "-e", f"UMASK={umask:03o}",
        "-e", "ASRD_MODEL__NAME=/model", "-e", "ASRD_MODEL__IDLE_UNLOAD_SECONDS=3",
        "-v", f"{inbox}:/inbox", "-v", f"{state}:/state", "-v", f"{models}:/models",
        "-v", f"{tiny_sensevoice_dir}:/model:ro",
    )
    box = container_factory(*args)
    wait_for("the daemon's start line", lambda: " running: 1 inbox(es)" in box.logs(), 120, every=0.1)
    ready = time.monotonic() - started
    assert wait_for("a passing health check", box.healthy, 60)
    assert (state.stat().st_uid, state.stat().st_gid) == (UID, GID)  # the volume handed to PUID/PGID

    original = inbox / AUDIO.name
    drop(original)
    before = (hashlib.sha256(original.read_bytes()).hexdigest(), snapshot(inbox)[original.name])
    sidecars = {"jfk.txt", "jfk.srt"}
    wait_for("the sidecars", lambda: sidecars <= {p.name for p in inbox.iterdir()}, 300)
    wait_for("the job done", lambda: (box.status().get("queue") or {}).get("done") == 1, 60)
    files = snapshot(inbox)
    assert set(files) == {original.name, *sidecars}
    for name in sidecars:
        uid, gid, mode, _, _ = files[name]
        assert (uid, gid, mode) == (UID, GID, 0o666 & ~umask), name  # as asrd on the host writes them
    assert (hashlib.sha256(original.read_bytes()).hexdigest(), files[original.name]) == before

    wait_for("the idle unload", lambda: not (box.status().get("daemon") or {}).get("worker_pid"), 60)
    time.sleep(2)
    rss = box.rss_bytes()
    users = podman("top", box.id, "user", "args").stdout
    assert all(row.split()[0] == str(UID) for row in users.splitlines()[1:] if row.strip()), users  # tini too
    logs = box.logs()
    assert "INFO daemon: asrd" in logs and not logs.lstrip()[0].isdigit(), logs[:500]  # no own timestamps

    # `docker stop` while a file is in flight (a cold start: the model loads first): it drains, exit 0.
    second = inbox / "jfk-2.flac"
    drop(second)
    wait_for("the second file in flight", lambda: f"transcribing /inbox/{second.name}" in box.logs(), 120)
    stop = time.monotonic()
    podman("stop", "--time", str(int(DRAIN_SECONDS) + 30), box.id, timeout=DRAIN_SECONDS + 60)
    stopped = time.monotonic() - stop
    assert box.state()["ExitCode"] == 0, box.logs()[-2000:]
    assert stopped < DRAIN_SECONDS + 5
    assert box.logs().rstrip().endswith("INFO daemon: stopped")

    # A restart, then a new container on the same volumes (what `docker compose up` does after an image
    # update): both files are done once, the first one's sidecars untouched, nothing written twice.
    podman("start", box.id)
    assert wait_for("a passing health check after the restart", box.healthy, 120)
    wait_for("both files done", lambda: box.status()["queue"] == {**DONE, "done": 2}, 120)
    both = snapshot(inbox)
    assert {name: both[name] for name in files} == files
    assert set(both) == {*files, second.name, "jfk-2.txt", "jfk-2.srt"}
    stop_cleanly(box)
    again = container_factory(*args)
    assert wait_for("a passing health check in a new container", again.healthy, 120)
    time.sleep(8)  # the start-up scan and a settle period: the files are seen again and must be known
    assert again.status()["queue"] == {**DONE, "done": 2}
    assert snapshot(inbox) == both
    stop_cleanly(again)
    print(f"\nstart to READY {ready:.1f} s, idle RSS {rss / 2**20:.1f} MiB, drained stop {stopped:.1f} s")


DONE = {"queued": 0, "running": 0, "done": 0, "failed": 0, "quarantined": 0}


def stop_cleanly(box: Container) -> None:
    podman("stop", "--time", str(int(DRAIN_SECONDS) + 30), box.id, timeout=DRAIN_SECONDS + 60)
    assert box.state()["ExitCode"] == 0, box.logs()[-2000:]
