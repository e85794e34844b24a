"""Re-run and compare over the in-memory port: the API (queue, list, choose), the guard on its POSTs, the
refusal over edited sidecars, and the cue alignment with its marked differences."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from asrd.config import OutputSettings, Settings
from asrd.control.fingerprint import fingerprint
from asrd.control.jobs import Job
from asrd.control.library import index_transcript
from asrd.control.runs import RerunOptions, content_key
from asrd.output.cuerules import DEFAULT_RULES
from asrd.output.ownership import for_store
from asrd.output.sidecars import write_outputs
from asrd.testing.library import transcript

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"
FIRST = [(0.5, 2.0, "we walked to the park today"), (3.0, 5.0, "the weather was fine")]
SECOND = [(0.5, 2.0, "we walked to the bark today"), (3.0, 5.0, "the weather was fine")]


@pytest.fixture
def port(tmp_path: Path) -> Any:
    from asrd.web.twin import MemoryPort

    inbox = tmp_path / "memos"
    inbox.mkdir()
    return MemoryPort(Settings(inbox=[{"path": inbox}], model={"rerun_models": ["iic/paraformer-zh"]}))


def done_job(port: Any, tmp_path: Path) -> Job:
    """A file the daemon transcribed: sidecars written by asrd (marked), its result kept as the auto run."""
    source = (tmp_path / "memos" / "walk.flac").resolve()
    shutil.copy(DATA / "jfk.flac", source)
    t = transcript(source, FIRST, language="en")
    store = port.store
    written = write_outputs(t, OutputSettings(formats=("txt", "srt", "json")), ownership=for_store(store))
    job = store.offer(source, str(source.parent), fingerprint(source), 100.0)
    store.claim(1e9, 10)
    job = store.complete(job.id, 100.0, [s.path for s in written])
    index_transcript(store, job.id, job.inbox, source, 100.0, t, DEFAULT_RULES)
    store.runs.record_auto(job.id, RerunOptions(language="auto"), t, content_key(job.fingerprint), 100.0)
    return job


def finish_rerun(port: Any, run_id: int, source: Path) -> None:
    run = port.store.runs.claim(1e12, port.store.runs.get(run_id).model)
    assert run is not None and run.id == run_id
    port.store.runs.finish(run_id, transcript(source, SECOND, language="en"), 200.0)


def test_rerun_compare_choose(client: Any, port: Any, tmp_path: Path) -> None:
    job = done_job(port, tmp_path)
    before = {p.name: p.read_bytes() for p in job.sidecars}
    answer = client.post(f"/api/jobs/{job.id}/rerun", json={"language": "en", "hotwords": "bark, park", "itn": False})
    assert answer.status_code == 200, answer.text
    run_id = int(answer.json()["message"])
    doc = client.get(f"/api/jobs/{job.id}/runs").json()
    assert [(r["origin"], r["state"], r["chosen"]) for r in doc["runs"]] == [("auto", "done", True),
                                                                              ("rerun", "queued", False)]
    assert doc["runs"][1]["options"]["hotwords"] == ["bark", "park"] and doc["edited"] == []
    finish_rerun(port, run_id, job.path)
    assert {p.name: p.read_bytes() for p in job.sidecars} == before  # a finished re-run writes nothing
    doc = client.get(f"/api/jobs/{job.id}/runs").json()
    assert doc["compared"] == [doc["runs"][0]["id"], run_id]
    assert [r["differs"] for r in doc["rows"]] == [True, False]
    changed = [text for text, mark in doc["rows"][0]["cells"][1] if mark]
    assert changed == ["bark"]
    page = client.get(f"/compare/{job.id}")
    assert page.status_code == 200 and "<mark>bark</mark>" in page.text and f'data-run="{run_id}"' in page.text
    chosen = client.post(f"/api/jobs/{job.id}/runs/{run_id}/choose", json={})
    assert chosen.status_code == 200, chosen.text
    assert "bark" in job.path.with_suffix(".srt").read_text() and "bark" in job.path.with_suffix(".txt").read_text()
    assert [r["chosen"] for r in client.get(f"/api/jobs/{job.id}/runs").json()["runs"]] == [False, True]
    # The library follows the sidecars: the chosen words are what search finds.
    assert client.get("/api/search?q=bark").json()["hits"]


def test_choose_refused_over_edits_unless_discarded(client: Any, port: Any, tmp_path: Path) -> None:
    job = done_job(port, tmp_path)
    run_id = int(client.post(f"/api/jobs/{job.id}/rerun", json={"model": "iic/paraformer-zh"}).json()["message"])
    assert port.store.runs.get(run_id).model == "iic/paraformer-zh"
    finish_rerun(port, run_id, job.path)
    srt = job.path.with_suffix(".srt")
    srt.write_text(srt.read_text().replace("park", "PARK (checked)"))  # corrected in the editor
    edited = srt.read_bytes()
    doc = client.get(f"/api/jobs/{job.id}/runs").json()
    assert doc["edited"] == ["walk.srt"]
    assert 'data-edited="walk.srt"' in client.get(f"/compare/{job.id}").text
    refused = client.post(f"/api/jobs/{job.id}/runs/{run_id}/choose", json={})
    assert refused.status_code == 409 and "discard" in refused.json()["error"]
    assert srt.read_bytes() == edited and "park" in job.path.with_suffix(".txt").read_text()
    assert client.post(f"/api/jobs/{job.id}/runs/{run_id}/choose", json={"discard": True}).status_code == 200
    assert "bark" in srt.read_text() and "(checked)" not in srt.read_text()


def test_rerun_refusals(client: Any, make_client: Any, port: Any, tmp_path: Path) -> None:
    job = done_job(port, tmp_path)
    url = f"/api/jobs/{job.id}/rerun"
    assert client.post(url, json={"model": "/etc/some-model"}).status_code == 409  # only offered models
    assert client.post(url, json={"language": "xx"}).status_code == 400
    assert client.post(url, json={"path": "/etc/passwd"}).status_code == 400  # ids and options only
    assert client.post(url, content=b"[1]").status_code == 400
    assert client.post(url, content=b"x" * 20_000).status_code == 400
    assert client.post("/api/jobs/999/rerun", json={}).status_code == 409
    assert client.get("/api/jobs/999/runs").status_code == 404
    assert client.post(f"/api/jobs/{job.id}/runs/1/choose", json={}).status_code == 200  # the auto run: fine
    queued = int(client.post(url, json={}).json()["message"])
    assert client.post(f"/api/jobs/{job.id}/runs/{queued}/choose", json={}).status_code == 409  # not done
    # The guard: a POST from another site is refused before it reaches the daemon.
    foreign = client.post(url, json={}, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert len(port.store.runs.of_job(job.id)) == 2


def test_align_joins_overlapping_cues_and_marks_cjk_by_character() -> None:
    from asrd.web.compare import Span, align, marked

    rows = align([[Span(0, 10, "a b"), Span(10, 20, "c")], [Span(0, 20, "a b c")], [Span(30, 40, "d")]])
    assert [(r.start, r.end, r.texts) for r in rows] == [(0, 20, ("a b c", "a b c", "")), (30, 40, ("", "", "d"))]
    assert [r.differs for r in align([[Span(0, 10, "a b"), Span(10, 20, "c")], [Span(0, 20, "a  b c")]])] == [False]
    assert [t for t, m in marked("今天去公园", "今天去花园") if m] == ["花"]


def _first_runs_event(client: Any, job_id: int) -> Any:
    import json

    with client.stream("GET", f"/compare/{job_id}/events") as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = []
        for line in answer.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[1] == "event: runs"
    return json.loads(lines[2][5:])


def test_the_compare_page_is_pushed_its_waiting_runs(client: Any, port: Any, tmp_path: Path) -> None:
    job = done_job(port, tmp_path)
    run_id = int(client.post(f"/api/jobs/{job.id}/rerun", json={"language": "en"}).json()["message"])
    port.publish()  # what the daemon loop does after every turn
    assert port.snapshot().runs == ((job.id, run_id, "queued"),)
    assert _first_runs_event(client, job.id) == [[run_id, "queued"]]
    assert _first_runs_event(client, job.id + 1) == []  # another job's page: nothing of this one's
    finish_rerun(port, run_id, job.path)
    port.publish()
    assert port.snapshot().runs == ()
    assert _first_runs_event(client, job.id) == []
    client.app.state.hub.close()
