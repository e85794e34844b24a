"""Re-runs in the daemon: real SQLite, real worker processes on the two tiny models (SenseVoice, Paraformer),
the inline worker twin where only the daemon's logic is under test."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from test_daemon import JFK, Harness

from asrd.control import edits
from asrd.control.actions import Action, ActionKind, ActionRefused, Controls, apply
from asrd.control.daemon import Daemon
from asrd.control.jobs import Job
from asrd.control.runs import RerunOptions, RunOrigin, RunState
from asrd.control.service import ServiceState
from asrd.control.status import render
from asrd.output.edits import parse_cues
from asrd.output.ownership import for_store
from asrd.output.sidecars import is_ours
from asrd.testing.inline_worker import InlineWorker
from asrd.worker.handle import WorkerHandle


def _done_job(h: Harness, name: str = "memo.flac") -> Job:
    shutil.copy(JFK, h.inbox / name)
    h.run_until(h.done(name), timeout=120)
    job = h.store.get(h.inbox / name)
    assert job is not None
    return job


def _bytes(job: Job) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in job.sidecars}


def _runs_done(h: Harness, job: Job, count: int) -> bool:
    runs = h.store.runs.of_job(job.id)
    return len(runs) == count and all(r.state is RunState.DONE for r in runs)


@pytest.mark.slow
def test_rerun_on_the_other_model_kept_beside_the_first_then_chosen(
    tmp_path: Path, tiny_sensevoice_dir: Path, tiny_paraformer_dir: Path
) -> None:
    h = Harness(tmp_path, WorkerHandle, name=str(tiny_sensevoice_dir), threads=1,
                rerun_models=[str(tiny_paraformer_dir)])
    h.daemon = Daemon(h.settings, h.store, ServiceState(h.notifier), h.timers, model_dir=str(tiny_sensevoice_dir))
    h.daemon.start(h.now())
    try:
        job = _done_job(h)
        first = _bytes(job)
        (auto,) = h.store.runs.of_job(job.id)
        assert auto.origin is RunOrigin.AUTO and auto.chosen and auto.transcript is not None
        default_pid = h.daemon.dispatcher.worker.pid if h.daemon.dispatcher.worker else None
        assert default_pid
        with pytest.raises(ActionRefused, match="not offered"):
            h.daemon.reruns.request(job.id, RerunOptions(model="iic/some-other-model"), h.now())
        other = int(h.daemon.reruns.request(job.id, RerunOptions(model=str(tiny_paraformer_dir)), h.now()))
        same = int(h.daemon.reruns.request(job.id, RerunOptions(language="en", itn=False), h.now()))
        h.run_until(lambda: bool(h.daemon.reruns.pools) or _runs_done(h, job, 3), timeout=30)
        h.run_until(lambda: _runs_done(h, job, 3), timeout=180)
        # The default worker went on as it was (the same process), the other model ran in a worker of its own.
        assert h.daemon.dispatcher.worker is not None and h.daemon.dispatcher.worker.pid == default_pid
        runs = {r.id: r for r in h.store.runs.of_job(job.id)}
        assert runs[other].model == str(tiny_paraformer_dir) and runs[same].model == ""
        assert runs[same].options.language == "en" and runs[same].options.itn is False
        assert runs[other].transcript is not None and auto.transcript is not None
        assert [s.text for s in runs[other].transcript.segments] != [s.text for s in auto.transcript.segments]
        assert [r.id for r in runs.values() if r.chosen] == [auto.id]
        assert _bytes(job) == first  # a re-run never writes sidecars
        # Choose the Paraformer run: every format rewritten from it, still asrd's own.
        outcome = h.daemon.reruns.choose(job.id, other, False, h.now())
        assert f"run {other}" in outcome
        chosen = h.store.get(job.path)
        assert chosen is not None
        texts = {p.name: p.read_text() for p in chosen.sidecars}
        assert sorted(texts) == ["memo.srt", "memo.txt"]
        ownership = for_store(h.store)
        assert all(is_ours(p, job.path, ownership) for p in chosen.sidecars)
        assert [r.id for r in h.store.runs.of_job(job.id) if r.chosen] == [other]
        paraformer_text = " ".join(s.text for s in runs[other].transcript.segments if s.text).split()
        assert paraformer_text and all(w in texts["memo.txt"] for w in paraformer_text[:3])
        # Idle: the other model's worker ends and its pool goes; the daemon no longer holds it.
        h.offset += 400
        h.run_until(lambda: not h.daemon.reruns.pools, timeout=30)
    finally:
        h.daemon.stop(h.now())
        h.store.close()


@pytest.fixture
def inline(tmp_path: Path) -> Harness:
    h = Harness(tmp_path, InlineWorker)
    h.daemon.start(h.now())
    return h


def test_edited_sidecars_survive_reruns_and_are_replaced_only_when_discarded(inline: Harness) -> None:
    h = inline
    try:
        job = _done_job(h)
        srt = next(p for p in job.sidecars if p.suffix == ".srt")
        srt.write_text(srt.read_text().replace("1\n", "1\n[edited] ", 1))  # a person's correction
        edited = _bytes(job)
        run_id = int(h.daemon.reruns.request(job.id, RerunOptions(language="zh"), h.now()))
        h.run_until(lambda: _runs_done(h, job, 2))
        assert _bytes(job) == edited  # the re-run left the person's file alone
        with pytest.raises(ActionRefused, match="edited since asrd wrote it"):
            h.daemon.reruns.choose(job.id, run_id, False, h.now())
        assert _bytes(job) == edited
        h.daemon.reruns.choose(job.id, run_id, True, h.now())
        assert "[edited]" not in srt.read_text() and is_ours(srt, job.path, for_store(h.store))
        assert [r.id for r in h.store.runs.of_job(job.id) if r.chosen] == [run_id]
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_choosing_a_run_over_saved_edits_ends_the_edit(inline: Harness) -> None:
    h = inline
    try:
        job = _done_job(h)
        saved = edits.save(h.store, job, parse_cues({"cues": [{"start_ms": 0, "end_ms": 900, "text": "mine"}]}),
                           h.now())
        assert "saved" in saved and h.store.edited(job.id) is not None
        run_id = int(h.daemon.reruns.request(job.id, RerunOptions(language="zh"), h.now()))
        h.run_until(lambda: _runs_done(h, job, 2))
        with pytest.raises(ActionRefused, match="edited since asrd wrote it"):
            h.daemon.reruns.choose(job.id, run_id, False, h.now())
        assert h.store.edited(job.id) is not None
        h.daemon.reruns.choose(job.id, run_id, True, h.now())
        assert h.store.edited(job.id) is None  # the page must not call the chosen run "your edits"
        srt = next(p for p in job.sidecars if p.suffix == ".srt")
        assert "mine" not in srt.read_text() and is_ours(srt, job.path, for_store(h.store))
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_a_rerun_of_changed_content_is_not_chosen(inline: Harness) -> None:
    h = inline
    try:
        job = _done_job(h)
        run_id = int(h.daemon.reruns.request(job.id, RerunOptions(itn=False), h.now()))
        h.run_until(lambda: _runs_done(h, job, 2))
        with open(job.path, "ab") as f:
            f.write(b"\0" * 1000)
        h.offset += 5
        h.run_until(lambda: (j := h.store.get(job.path)) is not None and j.fingerprint != job.fingerprint
                    and h.state("memo.flac") is not None and h.done("memo.flac")(), timeout=30)
        with pytest.raises(ActionRefused, match="changed since run"):
            h.daemon.reruns.choose(job.id, run_id, False, h.now())
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_restart_mid_rerun_loses_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, InlineWorker)
    h.daemon.start(h.now())
    job = _done_job(h)
    run_id = int(h.daemon.reruns.request(job.id, RerunOptions(language="ja"), h.now()))
    h.daemon.dispatcher._dispatch(h.now())  # claimed and on the worker, not answered yet
    assert h.store.runs.get(run_id).state is RunState.RUNNING  # type: ignore[union-attr]
    # A crash: the daemon never stops; the next one opens the same database.
    h.store.close()
    h2 = Harness(tmp_path, InlineWorker)
    h2.daemon.start(h2.now())
    try:
        h2.run_until(lambda: _runs_done(h2, job, 2))
        run = h2.store.runs.get(run_id)
        assert run is not None and run.transcript is not None and run.transcript.language == "ja"
        assert run.attempts == 0
    finally:
        h2.daemon.stop(h2.now())
        h2.store.close()
        for inbox in h.daemon.inboxes.values():
            inbox.stop()


def test_shutdown_mid_rerun_queues_it_again(inline: Harness) -> None:
    h = inline
    try:
        job = _done_job(h)
        run_id = int(h.daemon.reruns.request(job.id, RerunOptions(language="ko"), h.now()))
        h.daemon.dispatcher._dispatch(h.now())
        assert h.daemon.dispatcher.busy
        h.daemon.dispatcher.shutdown(h.now(), "interrupted by shutdown")
        run = h.store.runs.get(run_id)
        assert run is not None and run.state is RunState.QUEUED and run.attempts == 0
        assert not h.daemon.dispatcher.busy
        h.run_until(lambda: _runs_done(h, job, 2))
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_cli_rerun_is_picked_up_by_the_daemon(inline: Harness, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from asrd.cli import main

    h = inline
    try:
        job = _done_job(h)
        config = tmp_path / "config.toml"
        config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[inbox]]\npath = "{h.inbox}"\n')
        assert main(["rerun", str(job.path), "--language", "yue", "--hotwords", "a, b", "--itn", "off",
                     "--config", str(config)]) == 0
        assert "re-run 2 queued (language yue; ITN off; hotwords a, b)" in capsys.readouterr().out
        assert main(["rerun", str(h.inbox / "nothing.flac"), "--config", str(config)]) == 1
        assert main(["rerun", str(job.path), "--model", "other", "--config", str(config)]) == 1
        h.run_until(lambda: _runs_done(h, job, 2))
        run = h.store.runs.get(2)
        assert run is not None and run.transcript is not None and run.transcript.language == "yue"
    finally:
        h.daemon.stop(h.now())
        h.store.close()


def test_rerun_workers_show_as_slots_and_unload_ends_them(tmp_path: Path) -> None:
    h = Harness(tmp_path, InlineWorker, rerun_models=["other-model"])
    h.daemon.start(h.now())
    controls = Controls(h.store, h.daemon.dispatcher, reruns=h.daemon.reruns)
    try:
        job = _done_job(h)
        assert apply(Action(ActionKind.UNLOAD), controls, h.now()) == "model unloaded"  # the configured model's
        run_id = int(h.daemon.reruns.request(job.id, RerunOptions(model="other-model"), h.now()))
        h.daemon.reruns.step(h.now(), True)  # its own pool: spawned, the run placed, not answered yet
        assert h.store.runs.get(run_id).state is RunState.RUNNING  # type: ignore[union-attr]
        assert h.daemon.dispatcher.worker is None  # only the re-run worker runs
        slots = h.daemon._live().slots
        assert [(s.name, s.model) for s in slots] == [("worker", None), ("other-model", "other-model")]
        assert slots[1].in_flight == 1 and slots[1].phase in ("loading", "busy")
        status = {"running": True, "pid": 1, "state_dir": str(tmp_path), "queue": None,
                  "daemon": asdict(h.daemon._live())}
        assert "worker other-model (re-runs on other-model): " in render(status)
        # unload ends it too; the run in flight is queued again without costing an attempt
        assert apply(Action(ActionKind.UNLOAD), controls, h.now()) == "model unloaded; 1 re-run(s) queued again"
        run = h.store.runs.get(run_id)
        assert run is not None and run.state is RunState.QUEUED and run.attempts == 0
        assert not h.daemon.reruns.pools and not h.daemon.reruns.busy
        with pytest.raises(ActionRefused, match="not loaded"):
            apply(Action(ActionKind.UNLOAD), controls, h.now())
        h.run_until(lambda: _runs_done(h, job, 2))
    finally:
        h.daemon.stop(h.now())
        h.store.close()
