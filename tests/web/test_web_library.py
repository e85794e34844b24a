"""Library, search, viewer, downloads and the zip export, over the in-memory port with real sidecars."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from asrd.config import Settings
from asrd.testing.library import finished

DATA = Path(__file__).resolve().parents[1] / "data" / "audio"


@pytest.fixture
def port(tmp_path: Path) -> Any:
    from asrd.web.twin import MemoryPort

    a, b = tmp_path / "memos", tmp_path / "talks"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    p = MemoryPort(Settings(inbox=[{"path": a}, {"path": b}]))
    shutil.copy(DATA / "vad_example_zh.ogg", a / "park.ogg")
    (a / "sub" / "park.wav").write_bytes(b"RIFF")
    (b / "talk.flac").write_bytes(b"fLaC")
    finished(p.store, a / "park.ogg", str(a.resolve()),
             [(0.5, 2.0, "今天我们去公园散步"), (3.0, 5.0, "语音识别的效果很好")], now=1000.0, tokens=True,
             emotion="HAPPY")
    finished(p.store, a / "sub" / "park.wav", str(a.resolve()), [(1.0, 2.0, "公园里人很多")], now=1500.0,
             formats=("srt",))
    finished(p.store, b / "talk.flac", str(b.resolve()), [(10.0, 12.5, "We walked to the Park today")], now=2000.0,
             language="en", events=("Laughter",))
    return p


def test_search_api_cjk_and_latin(client: Any) -> None:
    doc = client.get("/api/search", params={"q": "公园"}).json()
    assert doc["total"] == 2 and [h["job_id"] for h in doc["hits"]] == [2, 1]  # newest first
    first = doc["hits"][1]
    assert first["start"] == 0.5 and first["cue"] == 0 and first["inbox"] == "memos"
    assert [first["excerpt"][a:b] for a, b in first["marks"]] == ["公园"]
    assert first["viewer"] == "/viewer/1?t=0.5#cue-0"
    hit = client.get("/api/search", params={"q": "语音识别"}).json()["hits"]
    assert [(h["job_id"], h["start"]) for h in hit] == [(1, 3.0)]
    latin = client.get("/api/search", params={"q": "park", "inbox": "talks"}).json()
    assert [(h["job_id"], h["start"], h["excerpt"]) for h in latin["hits"]] == [
        (3, 10.0, "We walked to the Park today")]
    assert client.get("/api/search", params={"q": "公园", "per_page": 1, "page": 2}).json()["hits"][0]["job_id"] == 1


def test_search_refuses_bad_input(client: Any) -> None:
    assert client.get("/api/search").status_code == 400
    bad = client.get("/api/search", params={"q": "x", "since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.json()["error"]
    assert client.get("/api/search", params={"q": "x", "per_page": 100000}).status_code == 400


def test_library_api_filters(client: Any) -> None:
    everything = client.get("/api/library").json()
    assert [t["job_id"] for t in everything["transcripts"]] == [3, 2, 1]
    assert everything["transcripts"][2]["emotions"] == ["HAPPY"]
    assert [t["job_id"] for t in client.get("/api/library", params={"language": "en"}).json()["transcripts"]] == [3]
    assert [t["job_id"] for t in client.get("/api/library", params={"event": "Laughter"}).json()["transcripts"]] == [3]
    assert client.get("/api/library", params={"inbox": "nowhere"}).json()["total"] == 0
    short = client.get("/api/library", params={"max_minutes": "0.04"}).json()["transcripts"]
    assert [t["job_id"] for t in short] == [2]


def test_library_page_marks_hits_and_htmx_gets_the_results_only(client: Any) -> None:
    page = client.get("/library", params={"q": "公园"})
    assert page.status_code == 200 and "<mark>公园</mark>" in page.text and 'href="/viewer/1?t=0.5#cue-0"' in page.text
    part = client.get("/library", params={"q": "<b>"}, headers={"HX-Request": "true"})
    assert part.text.lstrip().startswith('<section id="results">') and "<b>" not in part.text
    listing = client.get("/library")
    assert "park.ogg" in listing.text and "talk.flac" in listing.text


def test_viewer_has_cues_tokens_and_rule_warnings(client: Any) -> None:
    page = client.get("/viewer/1")
    assert page.status_code == 200
    assert 'id="cue-1" data-start="3.0"' in page.text and 'class="tok"' in page.text
    assert '<audio id="media"' in page.text and "/api/jobs/1/sidecars/srt" in page.text
    doc = client.get("/api/jobs/1/transcript").json()
    assert doc["source"] == "json" and [c["text"] for c in doc["cues"]] == ["今天我们去公园散步", "语音识别的效果很好"]
    assert doc["cues"][0]["tokens"][0] == {"text": "今", "start": 0.5, "end": 0.667}
    assert client.get("/api/jobs/99/transcript").status_code == 404
    assert client.get("/viewer/99").status_code == 404


def test_viewer_falls_back_to_the_library_without_a_json_sidecar(client: Any) -> None:
    doc = client.get("/api/jobs/2/transcript").json()
    assert doc["source"] == "library" and doc["cues"][0]["text"] == "公园里人很多" and doc["warnings"] == 0


def test_rule_warnings_come_from_the_checker(client: Any, port: Any) -> None:
    side = port.store.by_id(1).path.with_suffix(".json")
    data = json.loads(side.read_text(encoding="utf-8"))
    data["cues"][0]["end"] = data["cues"][0]["start"] + 0.2  # as a person might edit it: far too fast to read
    side.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    doc = client.get("/api/jobs/1/transcript").json()
    assert {w["rule"] for w in doc["cues"][0]["warnings"]} >= {"reading_speed", "min_duration"}
    assert doc["cues"][1]["warnings"] == []
    assert "⚠ " in client.get("/viewer/1").text


def test_viewer_shows_rule_warnings_as_labels_with_their_detail(client: Any, port: Any) -> None:
    side = port.store.by_id(1).path.with_suffix(".json")
    data = json.loads(side.read_text(encoding="utf-8"))
    data["cues"][0]["end"] = data["cues"][0]["start"] + 0.2  # too short and too fast to read
    side.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    doc = client.get("/api/jobs/1/transcript").json()
    assert {w["label"] for w in doc["cues"][0]["warnings"]} >= {"too short", "too fast to read"}
    page = client.get("/viewer/1").text
    warn = page.split('<span class="warn"', 1)[1].split("</span>", 1)[0]
    assert "too short" in warn and "too fast to read" in warn and "chars/s" in warn and "0.200 s" in warn
    assert "min_duration" not in warn and "reading_speed" not in warn
    zh = client.get("/viewer/1", headers={"accept-language": "zh-CN"}).text
    warn = zh.split('<span class="warn"', 1)[1].split("</span>", 1)[0]
    assert "太短" in warn and "读速过快" in warn and "too short" not in warn


def test_sidecars_by_job_id_and_format(client: Any, port: Any) -> None:
    srt = client.get("/api/jobs/1/sidecars/srt")
    assert srt.status_code == 200 and "今天我们去公园散步" in srt.text
    assert "attachment" in srt.headers["content-disposition"]
    assert client.get("/api/jobs/1/sidecars/json").json()["language"] == "zh"
    original = client.get("/api/jobs/1/sidecars/original")
    assert original.content == (port.store.by_id(1).path).read_bytes()
    assert client.get("/api/jobs/2/sidecars/txt").status_code == 404
    assert client.get("/api/jobs/1/sidecars/exe").status_code == 400
    assert client.get("/api/jobs/1/sidecars/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)
    port.store.by_id(1).path.with_suffix(".txt").unlink()
    assert client.get("/api/jobs/1/sidecars/txt").status_code == 410


def test_export_zip_is_streamed_and_filtered(client: Any) -> None:
    answer = client.get("/api/export.zip", params={"inbox": "memos"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    assert "content-length" not in answer.headers  # streamed, not built whole first
    names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
    assert sorted(names) == ["memos/park.json", "memos/park.srt", "memos/park.txt", "memos/park.vtt",
                             "memos/sub/park.srt"]
    with zipfile.ZipFile(io.BytesIO(client.get("/api/export.zip", params={"originals": "1"}).content)) as zf:
        assert "talks/talk.flac" in zf.namelist() and zf.read("talks/talk.flac") == b"fLaC"
    assert zipfile.ZipFile(io.BytesIO(client.get("/api/export.zip", params={"since": "2999-01-01"}).content)
                           ).namelist() == []


def test_files_with_alerts_filter(client: Any, port: Any, tmp_path: Path) -> None:
    """Keyword alert matches (the file's latest done outcome) filter the library, search, the job list and /files."""
    from asrd.control.jobs import JobState, Outcome
    from asrd.output.alerts import AlertMatch

    park = tmp_path / "memos" / "park.ogg"
    port.store.record_outcome(Outcome(park, str(park.parent.resolve()), JobState.DONE, 1000.0, 5.0,
                                      alerts=(AlertMatch("公园", 8000, 32000, "今天我们去公园散步"),)))
    listed = client.get("/api/library", params={"alerts": "1"}).json()
    assert [t["job_id"] for t in listed["transcripts"]] == [1] and client.get("/api/library").json()["total"] == 3
    assert [h["job_id"] for h in client.get("/api/search", params={"q": "公园", "alerts": "1"}).json()["hits"]] == [1]
    assert [j["id"] for j in client.get("/api/jobs", params={"alerts": "1"}).json()["jobs"]] == [1]
    assert client.get("/api/jobs", params={"alerts": "maybe"}).status_code == 400
    page = client.get("/files", params={"alerts": "on"}).text  # the checkbox's value
    assert "park.ogg" in page and "talk.flac" not in page and 'name="alerts" value="1" checked' in page
    lib = client.get("/library", params={"alerts": "1"}).text
    assert "park.ogg" in lib and "talk.flac" not in lib and "<details open>" in lib
