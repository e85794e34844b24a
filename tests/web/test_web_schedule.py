"""The Now page says when the backlog waits for a [schedule] window (the daemon's schedule.json)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any


def test_now_page_shows_the_window_the_backlog_waits_for(client: Any, port: Any, tmp_path: Path) -> None:
    assert "waiting for window" not in client.get("/").text
    port.state_dir = tmp_path
    start = time.time() + 3 * 3600
    (tmp_path / "schedule.json").write_text(json.dumps({
        "active": True, "kind": "price", "held": 2, "quiet_until": None,
        "window": {"start": start, "end": start + 600, "cost": 0.1, "reason": "the cheapest window"},
    }))
    page = client.get("/").text
    assert f"2 file(s) waiting for window {datetime.fromtimestamp(start).strftime('%H:%M')} (cheapest)" in page
