"""sd_notify over a real AF_UNIX datagram socket, as systemd receives it."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.control.service import (
    STATUS_MAX_CHARS,
    MemoryNotifier,
    ServiceState,
    SystemdNotifier,
    one_line,
    parse_message,
    watchdog_interval,
)
from asrd.logs import container_logging, journald_logging, setup_logging


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096)
    return parse_message(data.decode("utf-8"))


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_every_message_arrives_as_one_datagram(notify_socket: socket.socket) -> None:
    notifier = SystemdNotifier()
    service = ServiceState(notifier)
    try:
        service.ready("watching 2 folders")
        assert receive(notify_socket) == {"READY": "1", "STATUS": "watching 2 folders"}

        service.status("transcribing memo.m4a\n(3 queued)")
        assert receive(notify_socket) == {"STATUS": "transcribing memo.m4a (3 queued)"}

        service.watchdog()
        assert receive(notify_socket) == {"WATCHDOG": "1"}

        before = time.monotonic()
        service.reloading()
        after = time.monotonic()
        fields = receive(notify_socket)
        assert fields["RELOADING"] == "1"
        assert fields["STATUS"] == "reloading configuration"
        # MONOTONIC_USEC is CLOCK_MONOTONIC, the clock Python's monotonic() reads on Linux.
        assert before * 1e6 - 1000 <= int(fields["MONOTONIC_USEC"]) <= after * 1e6 + 1000

        service.stopping("stopping: finishing 1 job")
        assert receive(notify_socket) == {"STOPPING": "1", "STATUS": "stopping: finishing 1 job"}

        service.extend_timeout(30)
        assert receive(notify_socket) == {"EXTEND_TIMEOUT_USEC": "30000000"}
    finally:
        notifier.close()


def test_non_latin1_status_arrives_as_utf8(notify_socket: socket.socket) -> None:
    # sdnotify encodes with latin-1 on its own; Chinese file names must still get through.
    notifier = SystemdNotifier()
    try:
        ServiceState(notifier).status("transcribing 会议记录.wav")
        assert receive(notify_socket) == {"STATUS": "transcribing 会议记录.wav"}
    finally:
        notifier.close()


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"asrd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    notifier = SystemdNotifier()
    try:
        notifier.send("READY=1")
        assert receive(sock) == {"READY": "1"}
    finally:
        notifier.close()
        sock.close()


def test_no_socket_is_a_silent_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    ServiceState(notifier).ready("ok")  # nothing to assert but that it returns


def test_vanished_socket_logs_at_debug_and_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notify"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = SystemdNotifier()
    with caplog.at_level(logging.DEBUG, logger="asrd.control.service"):
        notifier.send("WATCHDOG=1")  # no socket yet: dropped, no exception
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]

    # systemd comes back (re-exec): the next message reaches the new socket.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        notifier.send("WATCHDOG=1")
        assert receive(sock) == {"WATCHDOG": "1"}
        sock.close()
        os.unlink(path)
        notifier.send("WATCHDOG=1")  # connected socket whose peer is gone: dropped quietly
    finally:
        notifier.close()
        sock.close()


def test_memory_notifier_records_messages() -> None:
    notifier = MemoryNotifier()
    service = ServiceState(notifier, watchdog_seconds=30)
    service.ready("idle")
    service.status("idle")  # unchanged: not resent
    service.status("transcribing a.wav")
    assert service.watchdog_if_due(100.0) == "WATCHDOG=1"
    assert service.watchdog_if_due(110.0) == ""
    assert service.watchdog_if_due(130.0) == "WATCHDOG=1"
    assert notifier.values("STATUS") == ["idle", "transcribing a.wav"]
    assert notifier.values("WATCHDOG") == ["1", "1"]
    assert notifier.messages[0] == "READY=1\nSTATUS=idle"


def test_no_watchdog_pings_without_an_interval() -> None:
    notifier = MemoryNotifier()
    assert ServiceState(notifier).watchdog_if_due(0.0) == ""
    assert notifier.messages == []


def test_status_is_one_bounded_line() -> None:
    assert one_line("a\r\nb\tc\x00d  e") == "a b c d e"
    assert one_line("bad \udcff name") == "bad \ufffd name"
    long = one_line("x" * 1000)
    assert len(long) == STATUS_MAX_CHARS and long.endswith("…")


def test_watchdog_interval() -> None:
    pid = os.getpid()
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(pid)}) == 30.0
    # Inherited from the daemon by a child (the model worker): not ours to feed.
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(pid + 1)}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, pid=1) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}) is None


# --- logging to the journal ---------------------------------------------------------------------


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def journal_env(stream: object) -> dict[str, str]:
    st = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_journald_detected_only_when_stderr_is_the_journal(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        assert journald_logging(journal_env(a), a)
        # A shell started from a unit inherits JOURNAL_STREAM while its stderr points elsewhere.
        assert not journald_logging(journal_env(a), b)
        assert not journald_logging({}, a)
        assert not journald_logging({"JOURNAL_STREAM": "garbage"}, a)
        assert not journald_logging(journal_env(a), io.StringIO())  # no file descriptor at all


def test_journal_format_has_priorities_and_no_timestamps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        for key, value in journal_env(stream).items():
            monkeypatch.setenv(key, value)
        setup_logging("info", stream)
        setup_logging("info", stream)  # a reload: replaces, never duplicates
        logging.getLogger("asrd.queue").warning("job %d: %s", 7, "quarantined")
        logging.getLogger("asrd.queue").debug("not shown")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("asrd.worker").exception("worker died")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[0] == "<4>WARNING queue: job 7: quarantined"
    assert lines[1] == "<3>ERROR worker: worker died"
    assert all(line.startswith("<3>") for line in lines[2:]) and "ValueError: boom" in lines[-1]


def test_terminal_format_has_timestamps(root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("container", raising=False)  # the suite itself may run in a container
    stream = io.StringIO()
    setup_logging("debug", stream)
    logging.getLogger("asrd").debug("hello")
    line = stream.getvalue().strip()
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} DEBUG asrd: hello$", line), line


def test_container_engine_output_has_no_timestamps_and_no_priorities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    # What `docker logs` reads: a pipe, $container set by the engine or the image.
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.setenv("container", "oci")
    with (tmp_path / "pipe").open("w+") as stream:
        setup_logging("info", stream)
        logging.getLogger("asrd.daemon").info("asrd %s running", "0.1.0")
        stream.seek(0)
        assert stream.read().splitlines() == ["INFO daemon: asrd 0.1.0 running"]


def test_container_detection_needs_the_variable_and_no_terminal(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a:
        assert container_logging({"container": "podman"}, a)
        assert not container_logging({}, a)
        assert not container_logging({"container": ""}, a)
    leader, follower = os.openpty()  # a shell in a toolbox container: a terminal still wants times
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            assert not container_logging({"container": "oci"}, tty)
    finally:
        os.close(leader)
        os.close(follower)
