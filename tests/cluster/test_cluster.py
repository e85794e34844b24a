"""Cluster mode end to end (``scenarios.py``), run by a pytest of its own inside a private network namespace.

Ray 2.60's GCS, raylets and workers listen on every interface whatever ``--node-ip-address`` says (its gRPC
servers bind 0.0.0.0; ray-project/ray#59852 moves them to the node address in a later release). In a network
namespace of their own with only loopback up, the test cluster can be reached from nowhere but this test, and
"every server a test starts listens on 127.0.0.1" holds. Where no namespace can be made (not root and no
user namespaces), the scenarios are skipped with that reason rather than run exposed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="cluster mode needs Ray: pip install 'asrd[cluster]'")

pytestmark = pytest.mark.slow

SCENARIOS = Path(__file__).with_name("scenarios.py")
ROOT = Path(__file__).resolve().parents[2]


def _unshare() -> list[str]:
    """The command prefix that makes a network namespace here (as root, else as a user namespace's root)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2) to keep the test cluster off the network")
    for prefix in (["unshare", "--net"], ["unshare", "--net", "--map-root-user"]):
        probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
        if probe.returncode == 0:
            return prefix
    pytest.skip(f"no network namespace can be made here ({probe.stderr.strip()}): the test cluster would listen on "
                "every interface")


def test_cluster_scenarios_in_a_private_network() -> None:
    inner = f'ip link set lo up && exec "$0" -m pytest -q -p no:randomly -p no:cacheprovider {SCENARIOS}'
    run = subprocess.run([*_unshare(), "sh", "-c", inner, sys.executable], cwd=ROOT, capture_output=True,
                         text=True, timeout=1500)
    report = (run.stdout + run.stderr)[-12000:]
    assert run.returncode == 0, report
    assert " passed" in report and " skipped" not in report, report
