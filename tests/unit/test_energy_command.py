"""``asrd energy`` and the energy line of ``asrd status``, from a real energy log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from asrd.cli import main
from asrd.control.energy_log import SqliteEnergyLog
from asrd.control.statedir import DB_NAME
from asrd.control.status import render, report
from asrd.energy.command import parse_since
from asrd.energy.records import UJ_PER_WH, EnergyRow
from asrd.energy.report import start_of_today


def fill(state: Path, now: float) -> None:
    state.mkdir(parents=True, exist_ok=True)
    log = SqliteEnergyLog(state / DB_NAME)
    # Two memos in the inbox "memos" (30 min of audio each), one long file in "talks", an idle tail, and a row
    # from last month that --since 1d leaves out.
    log.add(EnergyRow(now - 60, "file", "estimated:model", "cpu", UJ_PER_WH, UJ_PER_WH, (("cpu", 2 * UJ_PER_WH),),
                      1, "/in/a.m4a", "memos", 1800, 90, 400.0, 0.3))
    log.add(EnergyRow(now - 50, "file", "estimated:model", "cpu", UJ_PER_WH, 0, (("cpu", UJ_PER_WH),),
                      2, "/in/b.m4a", "memos", 1800, 90, 400.0, 0.3))
    log.add(EnergyRow(now - 40, "file", "estimated:model", "cpu", 4 * UJ_PER_WH, 0, (("cpu", 4 * UJ_PER_WH),),
                      3, "/talks/c.mp4", "talks", 3600, 180, 400.0, 0.3))
    log.add(EnergyRow(now - 10, "session", "estimated:model", "cpu", 0, 2 * UJ_PER_WH, (("cpu", 2 * UJ_PER_WH),),
                      g_per_kwh=400.0, price_per_kwh=0.3))
    log.add(EnergyRow(now - 40 * 86400, "file", "estimated:model", "cpu", 99 * UJ_PER_WH, 0, (), 4, "/old", "memos",
                      60, 1))
    log.close()


def config(tmp_path: Path) -> Path:
    path = tmp_path / "asrd.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[energy]\ncurrency = "GBP"\n')
    return path


def test_energy_json_totals_by_inbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path / "state", time.time())
    assert main(["energy", "--since", "1d", "--by", "inbox", "--json", "--config", str(config(tmp_path))]) == 0
    doc = json.loads(capsys.readouterr().out)
    total = doc["total"]
    assert (total["files"], total["wh"], total["audio_hours"]) == (3, 9.0, 2.0)
    assert total["wh_per_audio_hour"] == 4.5 and total["overhead_share"] == round(3 / 9, 4)
    assert total["co2e_g"] == 3.6 and total["cost"] == 0.0027 and total["estimated"]
    assert doc["groups"]["memos"]["wh"] == 3.0 and doc["groups"]["talks"]["wh"] == 4.0
    assert doc["groups"]["(idle)"]["wh"] == 2.0  # the idle tail belongs to no inbox


def test_energy_text_says_it_is_an_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path / "state", time.time())
    assert main(["energy", "--since", "1d", "--config", str(config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATED" in out and "estimated:model" in out and "GBP" in out
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:5] == ["3", "2.00", "9.000", "4.500"]


def test_energy_without_a_database_shows_nothing_and_bad_since_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["energy", "--json", "--config", str(config(tmp_path))]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["files"] == 0
    assert main(["energy", "--since", "yesterday", "--config", str(config(tmp_path))]) == 2
    assert "7d" in capsys.readouterr().err


def test_energy_per_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path / "state", time.time())
    assert main(["energy", "--since", "1d", "--by", "file", "--json", "--config", str(config(tmp_path))]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert {k: v["wh"] for k, v in groups.items()} == {"/in/a.m4a": 2.0, "/in/b.m4a": 1.0, "/talks/c.mp4": 4.0,
                                                      "(idle)": 2.0}
    assert groups["/in/a.m4a"]["wh_per_audio_hour"] == 4.0


def test_parse_since() -> None:
    assert parse_since("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert parse_since("90m", 10_000.0) == 10_000.0 - 5400


def test_status_shows_todays_energy(tmp_path: Path) -> None:
    state = tmp_path / "state"
    now = time.time()
    now = max(now, start_of_today(now) + 120)  # all rows today, even a minute after midnight
    fill(state, now)
    from asrd.control.jobs_sqlite import SqliteJobStore

    SqliteJobStore(state / DB_NAME).close()
    line = next(x for x in render(report(state)).splitlines() if x.startswith("energy:"))
    assert "Wh for 2.00 audio h (4.50 Wh/audio h, 33 % overhead: load+idle)" in line
    assert "estimated" in line


def test_an_unknown_zone_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    from asrd.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="zone"):
        load_settings(None, {"energy": {"zone": "Atlantis"}})
    assert load_settings(None, {"energy": {"zone": "de"}}).energy.zone == "DE"
