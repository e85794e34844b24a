"""The compose files in the repository: parsed, and holding the promises README makes about them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from asrd.control.daemon import DRAIN_SECONDS

REPO = Path(__file__).resolve().parents[2]


def service(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
    return doc["services"]["asrd"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["compose.yaml", "compose.nvidia.yaml"])
def test_compose_publishes_on_loopback_drains_and_keeps_state(name: str) -> None:
    svc = service(name)
    assert all(port.startswith("127.0.0.1:") for port in svc["ports"])  # dashboard: this machine only
    grace = re.fullmatch(r"(\d+)s", svc["stop_grace_period"])
    assert grace and int(grace[1]) > DRAIN_SECONDS  # docker stop must not SIGKILL a drain
    mounts = {volume.split(":")[1] for volume in svc["volumes"]}
    assert {"/inbox", "/state", "/models"} <= mounts
    assert svc["environment"]["PUID"] and svc["environment"]["PGID"]
    assert svc["build"]["dockerfile"] == "Containerfile"


def test_nvidia_compose_reserves_the_gpu_and_builds_the_cuda_image() -> None:
    svc = service("compose.nvidia.yaml")
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert svc["build"]["args"]["TORCH"].startswith("cu")
