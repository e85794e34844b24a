"""Correcting a transcript over the API (in-memory port, real sidecars on disk): save rewrites every format and
makes the files the person's; discard gives them back to asrd; refusals for bad cues, foreign origins, a
missing token, files changed outside asrd; the rule check as you type."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from asrd.control.jobs import Job
from asrd.output.ownership import for_store
from asrd.output.sidecars import is_ours
from asrd.testing.edits import finished_owned
from asrd.web.security import Policy, load_token
from asrd.web.twin import MemoryPort

SPANS = [(0.5, 2.0, "Hello there, this is a test."), (3.0, 5.0, "The second sentence."),
         (6.0, 8.5, "And a third one at the end.")]
FORMATS = ("txt", "srt", "vtt", "json")


@pytest.fixture
def job(port: MemoryPort, tmp_path: Path) -> Job:
    source = tmp_path / "inbox" / "memo.wav"
    source.parent.mkdir()
    source.write_bytes(b"\0" * 64)
    return finished_owned(port.store, source, SPANS, language="en", duration=9.0)


def machine_cues(client: TestClient, job: Job) -> list[dict[str, Any]]:
    doc = client.get(f"/api/jobs/{job.id}/edits").json()
    assert doc["edited"] is False
    return list(doc["cues"])


def test_save_rewrites_every_format_and_makes_them_the_users(client: TestClient, port: MemoryPort, job: Job) -> None:
    before = {p.suffix: p.read_bytes() for p in job.sidecars}
    assert {p.suffix for p in job.sidecars} == {"." + f for f in FORMATS}
    assert all(is_ours(p, job.path, for_store(port.store)) for p in job.sidecars)
    cues = machine_cues(client, job)
    cues[1]["text"] = "The corrected second sentence."
    cues[0]["start_ms"] += 100
    answer = client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] and ".srt" in answer.json()["message"]
    for path in job.sidecars:
        text = path.read_text(encoding="utf-8")
        assert text.encode() != before[path.suffix], path
        assert "The corrected second sentence." in text, path
        assert not is_ours(path, job.path, for_store(port.store)), path  # the person's now
    doc = json.loads(job.path.with_suffix(".json").read_text(encoding="utf-8"))
    assert doc["cues"][1]["text"] == "The corrected second sentence." and doc["edited"]["saved"]
    assert doc["segments"][1]["text"] == "The second sentence."  # what the machine heard stays
    assert "00:00:00,600 -->" in job.path.with_suffix(".srt").read_text(encoding="utf-8")
    record = port.store.edited(job.id)
    assert record is not None and record.newer is None
    assert {m.fmt: m.content for m in record.machine}[".srt"[1:]] == before[".srt"]
    state = client.get(f"/api/jobs/{job.id}/edits").json()
    assert state["edited"] and state["changed"] == 2
    changed = [r for r in state["diff"] if r["op"] != "equal" or r["retimed"]]
    assert changed[0]["retimed"] and changed[1]["op"] == "changed"
    assert changed[1]["machine"][0]["text"] == "The second sentence."
    page = client.get(f"/viewer/{job.id}").text
    assert "Corrected by you" in page and "Discard my edits" in page and "The corrected second sentence." in page
    # a second save writes over the first (the files are still what asrd saved for the person)
    cues[2]["text"] = "A third, corrected too."
    assert client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues}).status_code == 200
    assert "A third, corrected too." in job.path.with_suffix(".vtt").read_text(encoding="utf-8")


def test_discard_puts_back_the_machine_result_as_asrds(client: TestClient, port: MemoryPort, job: Job) -> None:
    before = {p: p.read_bytes() for p in job.sidecars}
    assert client.post(f"/api/jobs/{job.id}/edits/discard").status_code == 409  # nothing to discard yet
    cues = machine_cues(client, job)
    cues[0]["text"] = "Changed."
    assert client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues}).status_code == 200
    answer = client.post(f"/api/jobs/{job.id}/edits/discard")
    assert answer.status_code == 200 and answer.json()["ok"], answer.text
    for path, content in before.items():
        assert path.read_bytes() == content
        assert is_ours(path, job.path, for_store(port.store))
    assert port.store.edited(job.id) is None


def test_files_changed_outside_asrd_are_never_written_over(client: TestClient, port: MemoryPort, job: Job) -> None:
    cues = machine_cues(client, job)
    srt = job.path.with_suffix(".srt")
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nmy own hand edit\n", encoding="utf-8")
    refused = client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues})
    assert refused.status_code == 409 and "memo.srt was changed outside asrd" in refused.json()["error"]
    assert "my own hand edit" in srt.read_text(encoding="utf-8")
    assert port.store.edited(job.id) is None
    srt.unlink()  # gone: written again from the edit, the others rewritten too
    assert client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues}).status_code == 200
    assert srt.exists()
    txt = job.path.with_suffix(".txt")
    txt.write_text("edited by hand after the save\n", encoding="utf-8")
    for url, method in ((f"/api/jobs/{job.id}/edits/discard", "POST"), (f"/api/jobs/{job.id}/transcript", "PUT")):
        answer = client.request(method, url, json={"cues": cues} if method == "PUT" else None)
        assert answer.status_code == 409 and "memo.txt was changed outside asrd" in answer.json()["error"], url
    assert txt.read_text(encoding="utf-8") == "edited by hand after the save\n"


def cue(a: int, b: int, text: str = "x") -> dict[str, Any]:
    return {"start_ms": a, "end_ms": b, "text": text}


@pytest.mark.parametrize(("cues", "error"), [
    ([cue(0, 1000), cue(900, 2000)], "cue 2: starts at 0:00.900, before cue 1 ends"),
    ([cue(-5, 1000)], "cue 1: starts before 0"),
    ([cue(0, 1000), cue(2000, 1500)], "cue 2: ends at 0:01.500, not after its start"),
    ([cue(0, 1000), cue(1000, 1000)], "cue 2: ends at 0:01.000, not after its start"),
    ([cue(0, 1000, "  \n ")], "cue 1: no text"),
    ([cue(0, 1000) | {"start_ms": 1.5}], "cue 1: start_ms must be a whole number"),
    ([cue(0, 1000) | {"path": "/etc/passwd"}], "cue 1: unknown field(s) path"),
    ([cue(0, 60_000)], "cue 1: ends at 1:00.000, after the end of the audio"),
    ([], "no cues"),
    ([cue(i * 10, i * 10 + 5) for i in range(20_001)], "20001 cues: at most 20000"),
])
def test_bad_cues_refused_with_the_cue_and_the_reason(client: TestClient, job: Job, cues: list[Any],
                                                      error: str) -> None:
    before = {p: p.read_bytes() for p in job.sidecars}
    answer = client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues})
    assert answer.status_code == 400 and error in answer.json()["error"], answer.json()
    assert all(p.read_bytes() == c for p, c in before.items())


def test_malformed_requests(client: TestClient, job: Job) -> None:
    url = f"/api/jobs/{job.id}/transcript"
    assert client.put(url, content=b"{not json").status_code == 400
    assert client.put(url, json=[1, 2]).status_code == 400
    assert client.put(url, content=b" " * (8 * 1024 * 1024 + 1)).status_code == 413
    assert client.put("/api/jobs/999/transcript", json={"cues": [cue(0, 1000)]}).status_code == 404
    assert client.put("/api/jobs/../etc/transcript", json={"cues": [cue(0, 1000)]}).status_code == 404


def test_foreign_origin_and_missing_token_refused(make_client: Callable[..., TestClient], client: TestClient,
                                                  job: Job, tmp_path: Path) -> None:
    cues = {"cues": machine_cues(client, job)}
    before = {p: p.read_bytes() for p in job.sidecars}
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        assert client.put(f"/api/jobs/{job.id}/transcript", json=cues, headers=headers).status_code == 403
        assert client.post(f"/api/jobs/{job.id}/edits/discard", headers=headers).status_code == 403
        assert client.post("/api/cuecheck", json=cues, headers=headers).status_code == 403
    token = load_token(tmp_path)
    guarded = make_client(Policy("token", frozenset(), token))
    assert guarded.put(f"/api/jobs/{job.id}/transcript", json=cues).status_code == 401
    assert all(p.read_bytes() == c for p, c in before.items())
    ok = guarded.put(f"/api/jobs/{job.id}/transcript", json=cues, headers={"authorization": f"Bearer {token}"})
    assert ok.status_code == 200, ok.text


def test_cuecheck_uses_asrds_rules(client: TestClient) -> None:
    fine = client.post("/api/cuecheck", json={"cues": [cue(0, 2000, "Hello there."), cue(2500, 4000, "Fine.")]})
    assert fine.json() == {"ok": True, "warnings": {}, "count": 0}
    fast = client.post("/api/cuecheck", json={"cues": [cue(0, 300, "Far too much text for a third of a second.")]})
    rules = {w["rule"] for w in fast.json()["warnings"]["0"]}
    assert {"min_duration", "reading_speed"} <= rules
    labels = {w["rule"]: w["label"] for w in fast.json()["warnings"]["0"]}
    assert labels["min_duration"] == "too short" and labels["reading_speed"] == "too fast to read"
    bad = client.post("/api/cuecheck", json={"cues": [cue(0, 1000), cue(500, 2000)]}).json()
    assert not bad["ok"] and bad["cue"] == 1 and "before cue 1 ends" in bad["error"]


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffmpeg not installed (apt-get install ffmpeg)")
def test_edited_subtitles_parse_with_ffmpeg(client: TestClient, job: Job) -> None:
    cues = machine_cues(client, job)
    first = cues[0]
    middle = (first["start_ms"] + first["end_ms"]) // 2
    cues[0:1] = [cue(first["start_ms"], middle, "Hello there,"), cue(middle, first["end_ms"], "this is a test.")]
    assert client.put(f"/api/jobs/{job.id}/transcript", json={"cues": cues}).status_code == 200
    for fmt in ("srt", "vtt"):
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0",
             str(job.path.with_suffix("." + fmt))], capture_output=True, text=True, check=True, timeout=60)
        times = [float(line) for line in probe.stdout.split()]
        assert times == pytest.approx([c["start_ms"] / 1000 for c in cues], abs=0.002), fmt
    doc = json.loads(job.path.with_suffix(".json").read_text(encoding="utf-8"))
    assert [c["text"] for c in doc["cues"]][:2] == ["Hello there,", "this is a test."]
    assert job.path.with_suffix(".txt").read_text(encoding="utf-8").startswith("Hello there, this is a test.")
