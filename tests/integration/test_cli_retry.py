"""``asrd retry FILE`` and ``asrd retry --failed`` through the command line, on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrd.cli import main
from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import Failure, JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.statedir import DB_NAME

T0 = 1_700_000_000.0


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    state, inbox = tmp_path / "state", tmp_path / "inbox"
    state.mkdir()
    inbox.mkdir()
    config = tmp_path / "asrd.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\nmax_attempts = 2\n')
    return config, state / DB_NAME, inbox


def _store_with(db: Path, inbox: Path, **states: Failure | None) -> dict[str, Path]:
    """One job per name: quarantined (PERMANENT), failed (RETRY), or left queued (None)."""
    paths = {}
    store = SqliteJobStore(db, max_attempts=2)
    try:
        for name, kind in states.items():
            path = inbox / name
            path.write_bytes(name.encode())
            job = store.offer(path, str(inbox), fingerprint(path), T0)
            assert job is not None
            if kind is not None:
                store.claim(T0, 1)
                store.fail(job.id, T0, "scripted", kind)
            paths[name] = path
    finally:
        store.close()
    return paths


def _states(db: Path, paths: dict[str, Path]) -> dict[str, tuple[JobState, int]]:
    store = SqliteJobStore(db, max_attempts=2)
    try:
        return {name: ((job := store.get(p)) and (job.state, job.attempts)) or (JobState.DONE, -1)
                for name, p in paths.items()}
    finally:
        store.close()


def test_retry_file_requeues_that_file_only(setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, db, inbox = setup
    paths = _store_with(db, inbox, **{"bad.wav": Failure.PERMANENT, "other.wav": Failure.PERMANENT})
    assert _states(db, paths)["bad.wav"] == (JobState.QUARANTINED, 1)
    assert main(["retry", "--config", str(config), str(paths["bad.wav"])]) == 0
    out = capsys.readouterr().out
    assert "1 file(s) queued again" in out and "daemon is not running" in out
    assert _states(db, paths) == {"bad.wav": (JobState.QUEUED, 0), "other.wav": (JobState.QUARANTINED, 1)}


Setup = tuple[Path, Path, Path]


def test_retry_failed_requeues_every_problem(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    config, db, inbox = setup
    paths = _store_with(db, inbox, **{"a.wav": Failure.PERMANENT, "b.wav": Failure.RETRY, "c.wav": None})
    assert main(["retry", "--config", str(config), "--failed"]) == 0
    assert "2 file(s) queued again" in capsys.readouterr().out
    assert {n: s for n, (s, _) in _states(db, paths).items()} == dict.fromkeys(paths, JobState.QUEUED)
    assert main(["retry", "--config", str(config), "--failed"]) == 0  # nothing left: not an error
    assert "0 file(s) queued again" in capsys.readouterr().out


def test_retry_reports_what_it_cannot_do(setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, db, inbox = setup
    assert main(["retry", "--config", str(config), str(inbox / "x.wav")]) == 1  # no database yet
    assert f"no job database at {db}" in capsys.readouterr().err
    _store_with(db, inbox, **{"queued.wav": None})
    assert main(["retry", "--config", str(config), str(inbox / "unknown.wav")]) == 1
    assert "0 file(s) queued again" in capsys.readouterr().out
    assert main(["retry", "--config", str(config)]) == 2  # neither files nor --failed
    assert "--failed" in capsys.readouterr().err
