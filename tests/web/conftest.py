"""Web tests: Starlette's TestClient over the in-memory port (``asrd.web.twin``).

Without the web extra (starlette, uvicorn, jinja2) or httpx these tests are not collected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

if not all(importlib.util.find_spec(m) for m in ("starlette", "uvicorn", "jinja2", "httpx")):
    collect_ignore_glob = ["test_*.py"]  # the dashboard needs: pip install 'asrd[web]' (and httpx for tests)

ORIGIN = "http://127.0.0.1:8765"


@pytest.fixture
def port() -> Any:
    from asrd.web.twin import MemoryPort

    return MemoryPort()


@pytest.fixture
def make_client(port: Any) -> Callable[..., Any]:
    from starlette.testclient import TestClient

    from asrd.web.app import build_app
    from asrd.web.hub import Hub
    from asrd.web.security import Policy

    def make(policy: Policy | None = None, base_url: str = ORIGIN) -> TestClient:
        hub = Hub(port.snapshot())
        port.listen(hub.publish)
        app = build_app(port, hub, policy or Policy("auto", frozenset()))
        return TestClient(app, base_url=base_url, follow_redirects=False)
    return make


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


def media_file(tmp_path: Path, size: int = 100_000) -> Path:
    path = tmp_path / "inbox" / "memo.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(i % 251 for i in range(size)))
    return path
