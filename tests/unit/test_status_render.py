"""``asrd status``'s text: what a person reads, from the same document ``--json`` prints."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs import Failure
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.statedir import DB_NAME, StateLock
from asrd.control.status import (
    CurrentFile,
    InboxState,
    LiveState,
    SlotState,
    exit_code,
    read_live,
    render,
    report,
    write_live,
)

QUEUE = {"queued": 2, "running": 1, "done": 7, "failed": 0, "quarantined": 1}


def live(**changes: Any) -> dict[str, Any]:
    base = LiveState(pid=42, version="0.1.0", started=0.0, phase="running", model_loaded=False, updated=0.0)
    return asdict(LiveState(**{**asdict(base), **changes}))


def doc(daemon: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"running": True, "pid": 42, "state_dir": "/var/lib/asrd", "queue": QUEUE, **extra}
    if daemon is not None:
        out["daemon"] = daemon
    return out


def test_not_running_before_the_first_start() -> None:
    assert render({"running": False, "pid": None, "state_dir": "/s", "queue": None}) == (
        "asrd daemon: not running (state directory /s)\nqueue: no job database yet"
    )


def test_loaded_model_file_in_flight_and_inboxes() -> None:
    daemon = live(
        model_loaded=True, worker_pid=43, device="cpu", last_load_seconds=12.34,
        current=(CurrentFile("/in/talk.ogg", 45.4, 100.0),),
        inboxes=(InboxState("/in", "native", "inotify", True), InboxState("/nas", "poll", "nfs mount", False)),
    )
    assert render(doc(daemon)).splitlines() == [
        "asrd daemon: running, pid 42",
        "model: loaded on cpu (worker pid 43, loaded in 12.3 s)",
        "now: /in/talk.ogg 45% (45 of 100 s)",
        "inbox: /in [native: inotify]",
        "inbox: /nas [poll: nfs mount] (WATCHER DOWN: rescans only)",
        "queue: 2 queued, 1 running, 7 done, 0 failed, 1 quarantined",
    ]


def test_model_loading_unloaded_and_broken() -> None:
    assert "model: loading (worker pid 43)" in render(doc(live(worker_pid=43))).splitlines()
    assert "model: not loaded (starts with the next file)" in render(doc(live())).splitlines()
    lines = render(doc(live(last_load_seconds=9.0, model_error="no model at /m"))).splitlines()
    assert lines[1:3] == ["model: not loaded (starts with the next file; the last load took 9.0 s)",
                          "model error: no model at /m"]


def test_unknown_length_shows_zero_percent() -> None:
    lines = render(doc(live(current=(CurrentFile("/in/stream.webm", 3.0, 0.0),)))).splitlines()
    assert "now: /in/stream.webm 0% (3 of 0 s)" in lines


def test_problems_say_what_happens_next() -> None:
    problems = [
        {"path": "/in/a.mp3", "state": "failed", "attempts": 1, "reason": "decode error", "updated": 5.0,
         "retry_at": 65.0},
        {"path": "/in/b.wav", "state": "quarantined", "attempts": 3, "reason": "not audio", "updated": 4.0,
         "retry_at": None},
    ]
    lines = render(doc(problems=problems)).splitlines()
    assert lines[-4:] == [
        "problems (most recent first):",
        "  failed      /in/a.mp3: decode error (attempts 1) - will retry",
        "  quarantined /in/b.wav: not audio (attempts 3)",
        "  (asrd retry FILE or asrd retry --failed queues them again)",
    ]
    assert "asrd retry" not in render(doc(problems=problems[:1]))  # nothing quarantined: no hint


def test_report_of_a_real_state_directory_renders(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with SqliteJobStore(state / DB_NAME) as store:
        for name in ("a.wav", "b.wav"):
            store.offer(tmp_path / name, "in", Fingerprint(1, len(name), 3, 1, name), 1.0)
        (claimed,) = store.claim(2.0)
        store.fail(claimed.id, 3.0, "not audio", Failure.PERMANENT)
    assert render(report(state)).splitlines() == [
        f"asrd daemon: not running (state directory {state})",
        "queue: 1 queued, 0 running, 0 done, 0 failed, 1 quarantined",
        "problems (most recent first):",
        f"  quarantined {tmp_path / 'a.wav'}: not audio (attempts 1)",
        "  (asrd retry FILE or asrd retry --failed queues them again)",
    ]
    lock = StateLock(state)
    lock.acquire()  # a daemon holds the directory: its live state is shown
    try:
        write_live(state, LiveState(pid=os.getpid(), version="x", started=0.0, phase="running", model_loaded=False))
        lines = render(report(state)).splitlines()
    finally:
        lock.release()
    assert lines[:2] == [f"asrd daemon: running, pid {os.getpid()}", "model: not loaded (starts with the next file)"]


def test_status_shows_the_dashboard_and_where_its_token_is_never_the_token(tmp_path: Path) -> None:
    from asrd.config import WebSettings
    from asrd.control.statedir import WEB_TOKEN_NAME

    (tmp_path / WEB_TOKEN_NAME).write_text("s3cret-token-value\n")
    web = WebSettings(enabled=True, listen="0.0.0.0:8765", auth="token")
    doc = report(tmp_path, web)
    assert doc["dashboard"] == {"url": "http://<this machine's address>:8765/", "auth": "token",
                                "token_file": str(tmp_path / WEB_TOKEN_NAME)}
    text = render(doc)
    assert f"dashboard: http://<this machine's address>:8765/ (log in with the token in {tmp_path}" in text
    assert "s3cret" not in text and "s3cret" not in str(doc)
    assert "dashboard" not in report(tmp_path, WebSettings())  # off: nothing to show
    assert "http://127.0.0.1:8765/ (no login (loopback))" in render(report(tmp_path, WebSettings(enabled=True)))


def test_each_worker_slot_is_listed_when_there_are_several(tmp_path: Path) -> None:
    slots = (SlotState("gpu 0", "busy", 43, "cuda", 5, 0), SlotState("gpu 1", "off", None, None, 0, 1))
    text = render(doc(live(model_loaded=True, worker_pid=43, device="cuda", last_load_seconds=3.0, slots=slots)))
    assert "worker gpu 0: busy on cuda, 5 in flight, pid 43" in text.splitlines()
    assert "worker gpu 1: off, 0 in flight, 1 crash(es)" in text.splitlines()
    one = render(doc(live(slots=slots[:1])))
    assert "worker gpu 0" not in one  # one worker: the model line says it all
    write_live(tmp_path, LiveState(pid=1, version="x", started=0.0, phase="running", model_loaded=True, slots=slots))
    back = read_live(tmp_path)
    assert back is not None and back.slots == slots


def test_cluster_mode_lists_each_actor_by_node_and_gpu_and_the_lost_nodes(tmp_path: Path) -> None:
    slot = SlotState("cluster", "busy", 77, "cluster: 2 actor(s) on 2 node(s)", 3, 0,
                     ("10.0.0.7 3f2a1b gpu 0 (pid 901): busy, 2 in flight",
                      "10.0.0.8 77c0de gpu 1 (pid 455): idle, 0 in flight"),
                     ("10.0.0.9: no word about its 1 file(s) for 300 s (a hung host or a stale mount?)",))
    lines = render(doc(live(model_loaded=True, worker_pid=77, device="cluster", last_load_seconds=3.0,
                            slots=(slot,)))).splitlines()
    assert "  actor 10.0.0.7 3f2a1b gpu 0 (pid 901): busy, 2 in flight" in lines  # one slot, still listed
    assert "  actor 10.0.0.8 77c0de gpu 1 (pid 455): idle, 0 in flight" in lines
    assert "  lost node 10.0.0.9: no word about its 1 file(s) for 300 s (a hung host or a stale mount?)" in lines
    write_live(tmp_path, LiveState(pid=1, version="x", started=0.0, phase="running", model_loaded=True, slots=(slot,)))
    back = read_live(tmp_path)
    assert back is not None and back.slots[0].actors == slot.actors and back.slots[0].lost == slot.lost


def test_exit_code_is_the_health_a_container_check_reads() -> None:
    healthy = InboxState("/in", "native", "inotify", True)
    down = InboxState("/nas", "poll", "network mount", False)
    assert exit_code({"running": False, "pid": None, "state_dir": "/s", "queue": None}) == 3
    assert exit_code(doc(live(inboxes=(healthy,)))) == 0
    assert exit_code(doc()) == 0  # running, the live state not written yet
    assert exit_code(doc(live(inboxes=(healthy, down)))) == 1
