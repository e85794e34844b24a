"""A person's correction survives the file being transcribed again (real daemon, real worker, tiny model):
the new machine result is stored, the edited sidecars stay theirs, until they discard the edits."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from asrd.config import load_settings
from asrd.control.actions import Action, ActionKind, Controls, apply
from asrd.control.daemon import Daemon
from asrd.control.jobs import JobState
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.service import MemoryNotifier, ServiceState
from asrd.control.timers import ManualTimers
from asrd.output.ownership import for_store
from asrd.output.sidecars import is_ours
from asrd.records import Cue

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
FORMATS = ["txt", "srt", "vtt", "json"]


def test_edits_survive_a_retranscription_until_discarded(tmp_path: Path, tiny_sensevoice_dir: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings = load_settings(None, {
        "model": {"idle_unload_seconds": 300, "threads": 1},
        "daemon": {"state_dir": str(tmp_path / "state")},
        "output": {"formats": FORMATS},
        "inbox": [{"path": str(inbox), "settle_seconds": 0.3}],
    })
    store = SqliteJobStore(tmp_path / "state" / "jobs.sqlite3")
    daemon = Daemon(settings, store, ServiceState(MemoryNotifier()), ManualTimers(), model_dir=str(tiny_sensevoice_dir))
    source = inbox / "memo.flac"

    def run_until(done: object, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            daemon.step(time.time())
            if done():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; jobs: {store.counts()}")

    def job_done() -> bool:
        job = store.get(source)
        return job is not None and job.state is JobState.DONE

    daemon.start(time.time())
    try:
        shutil.copy(DATA / "jfk.flac", source)
        run_until(job_done)
        job = store.get(source)
        assert job is not None and sorted(p.suffix for p in job.sidecars) == [".json", ".srt", ".txt", ".vtt"]
        own = for_store(store)
        assert all(is_ours(p, source, own) for p in job.sidecars)
        first_done = job.updated

        controls = Controls(store, daemon.dispatcher)
        edited = (Cue(500 * 16, 2_000 * 16, "And so, my fellow Americans,"), Cue(2_500 * 16, 6_000 * 16, "ask not."))
        outcome = apply(Action(ActionKind.SAVE_EDITS, job.id, cues=edited), controls, time.time())
        assert "saved 2 cue(s)" in outcome
        saved = {p: p.read_bytes() for p in job.sidecars}
        assert "my fellow Americans" in source.with_suffix(".srt").read_text(encoding="utf-8")
        assert not any(is_ours(p, source, own) for p in job.sidecars)

        # the file changes (a longer recording under the same name): transcribed again
        shutil.copy(DATA / "vad_example_zh.ogg", inbox / "tmp.part")
        (inbox / "tmp.part").replace(source)
        run_until(lambda: job_done() and store.by_id(job.id).updated > first_done)  # type: ignore[union-attr]
        again = store.by_id(job.id)
        assert again is not None and again.state is JobState.DONE
        for path, content in saved.items():
            assert path.read_bytes() == content, path  # the person's files are left alone
        record = store.edited(job.id)
        assert record is not None and record.newer is not None
        machine = json.loads({m.fmt: m.content for m in record.machine}["json"])
        assert machine["duration"] > 60  # the new recording's machine result is what is stored
        entry = store.library.get(job.id)
        assert entry is not None and entry.summary.duration > 60 * 16_000  # and indexed

        outcome = apply(Action(ActionKind.DISCARD_EDITS, job.id), controls, time.time())
        assert "newer machine result" in outcome
        for path in job.sidecars:
            assert is_ours(path, source, own), path
            assert path.read_bytes() == {m.fmt: m.content for m in record.machine}[path.suffix[1:]]
        assert store.edited(job.id) is None
    finally:
        daemon.stop(time.time())
        store.close()
