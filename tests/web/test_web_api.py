"""The JSON API over the in-memory port: status, paged queries, media with Range, actions, events."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from conftest import ORIGIN, media_file
from starlette.testclient import TestClient

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import Failure, JobState
from asrd.control.statedir import DB_NAME
from asrd.control.status import report
from asrd.web.hub import Hub
from asrd.web.twin import MemoryPort

FP = Fingerprint(1, 1, 10, 1, "h")


def add(port: MemoryPort, name: str, now: float = 1.0, inbox: str = "/srv/inbox") -> int:
    job = port.store.offer(Path(inbox) / name, inbox, FP, now)
    assert job is not None
    port.publish()
    return job.id


def test_status_has_the_shape_of_asrd_status_json(client: TestClient, port: MemoryPort, tmp_path: Path) -> None:
    add(port, "a.wav")
    doc = client.get("/api/status").json()
    from asrd.control.jobs_sqlite import SqliteJobStore

    SqliteJobStore(tmp_path / DB_NAME).close()
    assert set(doc) == set(report(tmp_path)) | {"daemon"}
    assert doc["queue"]["queued"] == 1 and doc["daemon"]["pid"] == os.getpid()


def test_jobs_paged_and_filtered(client: TestClient, port: MemoryPort) -> None:
    for i in range(7):
        add(port, f"memo{i}.m4a", now=float(i))
    add(port, "Interview.WAV", now=10.0)
    port.store.fail(1, 11.0, "not an audio file", Failure.PERMANENT)
    page = client.get("/api/jobs?per_page=3&page=2").json()
    assert (page["total"], page["pages"], page["page"]) == (8, 3, 2)
    assert [j["id"] for j in page["jobs"]] == [6, 5, 4]  # most recently changed first
    assert client.get("/api/jobs?q=interview").json()["jobs"][0]["name"] == "Interview.WAV"
    assert client.get("/api/jobs?state=quarantined").json()["total"] == 1
    assert client.get("/api/jobs?state=problem&reason=AUDIO").json()["jobs"][0]["id"] == 1
    assert client.get("/api/jobs?state=queued,running").json()["total"] == 7
    assert client.get("/api/jobs?state=lost").status_code == 400
    assert client.get("/api/jobs?page=0").status_code == 400
    assert client.get("/api/jobs?per_page=100000").status_code == 400


def test_job_by_id_only(client: TestClient, port: MemoryPort) -> None:
    job_id = add(port, "a.wav")
    doc = client.get(f"/api/jobs/{job_id}").json()
    assert doc["state"] == "queued" and doc["inbox"] == "inbox" and doc["sidecars"] == []
    assert client.get("/api/jobs/999").status_code == 404
    for bad in ("/api/jobs/..%2F..%2Fetc%2Fpasswd", "/api/jobs/%2Fetc%2Fpasswd/media", "/api/jobs/1%2F..%2F2",
                "/api/jobs/-1/media", "/api/jobs/1.0/media"):
        assert client.get(bad).status_code == 404, bad


def test_media_range(client: TestClient, port: MemoryPort, tmp_path: Path) -> None:
    path = media_file(tmp_path)
    job = port.store.offer(path, str(path.parent), FP, 1.0)
    assert job is not None
    whole = client.get(f"/api/jobs/{job.id}/media")
    assert whole.status_code == 200 and whole.content == path.read_bytes()
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"].startswith("audio/")
    part = client.get(f"/api/jobs/{job.id}/media", headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == path.read_bytes()[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{path.stat().st_size}"
    tail = client.get(f"/api/jobs/{job.id}/media", headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == path.read_bytes()[-10:]
    assert client.get(f"/api/jobs/{job.id}/media", headers={"range": "bytes=999999-"}).status_code == 416


def test_media_not_served_through_a_symlink_or_when_gone(client: TestClient, port: MemoryPort, tmp_path: Path) -> None:
    path = media_file(tmp_path)
    job = port.store.offer(path, str(path.parent), FP, 1.0)
    assert job is not None
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    path.unlink()
    path.symlink_to(secret)
    assert client.get(f"/api/jobs/{job.id}/media").status_code == 410
    path.unlink()
    assert client.get(f"/api/jobs/{job.id}/media").status_code == 410


def test_actions(client: TestClient, port: MemoryPort, tmp_path: Path) -> None:
    job_id = add(port, "a.wav")
    port.store.fail(job_id, 2.0, "the model worker died", Failure.RETRY)
    answer = client.post(f"/api/jobs/{job_id}/retry")
    assert answer.status_code == 200 and answer.json()["ok"]
    assert port.store.state_of(job_id) is JobState.QUEUED
    assert client.post(f"/api/jobs/{job_id}/retry").status_code == 409  # not a problem any more
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    assert port.store.state_of(job_id) is JobState.QUARANTINED
    assert port.store.by_id(job_id).last_error == "cancelled by the dashboard"  # type: ignore[union-attr]
    refused = client.post(f"/api/jobs/{job_id}/cancel")
    assert refused.status_code == 409 and "nothing to cancel" in refused.json()["error"]
    # forget only what is gone: a file still there would be queued again by the next rescan
    there = media_file(tmp_path)
    kept = port.store.offer(there, str(there.parent), FP, 1.0)
    assert kept is not None
    assert client.post(f"/api/jobs/{kept.id}/forget").status_code == 409
    assert client.post(f"/api/jobs/{job_id}/forget").status_code == 200  # /srv/inbox/a.wav does not exist
    assert port.store.by_id(job_id) is None
    assert client.post("/api/jobs/999/retry").status_code == 409
    assert client.get("/api/jobs/1/retry").status_code == 405


def test_model_and_pause_actions(client: TestClient, port: MemoryPort) -> None:
    assert client.post("/api/model/unload").json()["error"] == "the model is not loaded"
    assert client.post("/api/model/warm-up").json()["ok"]
    port.dispatcher.jobs[1] = object()
    assert "in flight" in client.post("/api/model/unload").json()["error"]
    port.dispatcher.jobs.clear()
    assert client.post("/api/model/unload").json()["message"] == "model unloaded"
    assert client.post("/api/pause").status_code == 200
    assert port.snapshot().paused and not port.dispatcher.accepting
    assert client.post("/api/resume").status_code == 200
    assert not port.snapshot().paused and port.dispatcher.accepting


def test_htmx_actions_answer_a_fragment_and_trigger_a_refresh(client: TestClient, port: MemoryPort) -> None:
    answer = client.post("/api/model/unload", headers={"hx-request": "true"})
    assert answer.status_code == 200 and 'class="flash err"' in answer.text  # refusals shown too
    assert answer.headers["hx-trigger"] == "asrd-changed"


def test_events_stream_state_now_and_on_change(port: MemoryPort) -> None:
    hub = Hub(port.snapshot())
    port.listen(hub.publish)

    async def read() -> list[object]:
        got: list[object] = []
        stream = hub.stream(heartbeat=0.05)
        got.append(await anext(stream))
        assert hub.clients == 1
        add(port, "a.wav")  # published from "the daemon"
        got.append(await anext(stream))
        got.append(await anext(stream))  # nothing new: a heartbeat
        await stream.aclose()
        return got

    first, second, beat = asyncio.run(read())
    assert isinstance(first, tuple) and isinstance(second, tuple)
    assert first[1].count(JobState.QUEUED) == 0 and second[1].count(JobState.QUEUED) == 1
    assert second[0] > first[0] and beat is None
    assert hub.clients == 0


def test_events_route(client: TestClient, port: MemoryPort) -> None:
    add(port, "a.wav")
    with client.stream("GET", "/api/events") as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert answer.headers["cache-control"] == "no-cache"
        lines = []
        for line in answer.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[0].startswith("id: ") and lines[1] == "event: status"
    assert json.loads(lines[2][5:])["queue"]["queued"] == 1
    client.app.state.hub.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["/", "/files", "/files?q=a&state=problem", "/problems", "/model", "/system"])
def test_pages_render(client: TestClient, port: MemoryPort, url: str) -> None:
    job_id = add(port, "näme 中文.wav")
    port.store.fail(job_id, 2.0, "not an audio file", Failure.PERMANENT)
    page = client.get(url)
    assert page.status_code == 200 and "<nav>" in page.text
    assert 'name="viewport"' in page.text and "/static/htmx.min.js" in page.text
    assert client.get(f"/files/{job_id}").status_code == 200


def test_pages_escape_names(client: TestClient, port: MemoryPort) -> None:
    add(port, "<script>alert(1)</script>.wav")
    assert "<script>alert(1)" not in client.get("/files").text


def test_problems_grouped_by_reason(client: TestClient, port: MemoryPort) -> None:
    for i in range(3):
        port.store.fail(add(port, f"bad{i}.wav"), 2.0, "not an audio file", Failure.PERMANENT)
    port.store.fail(add(port, "crash.wav"), 3.0, "the model worker died", Failure.RETRY)
    text = client.get("/problems").text
    assert text.index("not an audio file") < text.index("the model worker died")
    assert "crash.wav" not in client.get("/problems?reason=audio").text



def test_model_page_with_automatic_idle_unload() -> None:
    from asrd.config import load_settings
    from asrd.web.app import build_app
    from asrd.web.security import Policy

    port = MemoryPort(load_settings(None, {"model": {"idle_unload_seconds": "auto"}}))
    client = TestClient(build_app(port, Hub(port.snapshot()), Policy("auto", frozenset())), base_url=ORIGIN)
    answer = client.get("/model")
    assert answer.status_code == 200 and 'idle_unload_seconds = "auto"' in answer.text


def test_model_page_lists_each_worker_slot(client: TestClient, port: MemoryPort) -> None:
    from asrd.control.status import SlotState

    assert "<h2>Workers</h2>" not in client.get("/model").text  # one worker: the page as it was
    port.set_live(slots=(SlotState("gpu 0", "busy", 4242, "cuda", 3, 0), SlotState("gpu 1", "off", None, None, 0, 2)))
    page = client.get("/model").text
    assert page.count('<tr class="slot">') == 2
    assert "<td>gpu 0</td><td>busy</td><td>cuda</td><td>3</td><td>4242</td>" in page
    assert "<td>gpu 1</td><td>off</td><td></td><td>0</td><td></td><td>2</td>" in page


def test_model_page_shows_rerun_workers_with_their_model(client: TestClient, port: MemoryPort) -> None:
    from asrd.control.status import SlotState

    port.set_live(slots=(SlotState("worker", "off", None, None, 0, 0),
                         SlotState("rerun paraformer-zh", "busy", 4343, "cpu", 1, 0, model="/models/paraformer-zh")))
    page = client.get("/model").text
    assert page.count('<tr class="slot') == 2 and page.count('<tr class="slot rerun">') == 1
    assert "re-runs on /models/paraformer-zh" in page
