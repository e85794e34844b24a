"""SignalFlags: real signals to this process, handled in the main thread (where pytest runs tests)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from asrd.control.service import SignalFlags


def test_two_sigterms_count_as_drain_then_stop_now() -> None:
    with SignalFlags() as flags:
        assert flags.terms == 0 and not flags.stop_requested
        os.kill(os.getpid(), signal.SIGTERM)
        flags.wait(1)  # the handler runs at the next bytecode boundary; wait() returns at once
        assert flags.terms == 1 and flags.stop_requested and not flags.stop_now
        os.kill(os.getpid(), signal.SIGTERM)
        flags.wait(1)
        assert flags.terms == 2 and flags.stop_now
        assert flags.last_signal == signal.SIGTERM


def test_sigint_counts_like_sigterm() -> None:
    with SignalFlags() as flags:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in a terminal: drain, not KeyboardInterrupt
        flags.wait(1)
        assert flags.terms == 1


def test_sighup_is_consumed_once() -> None:
    with SignalFlags() as flags:
        assert flags.consume_hup() is False
        os.kill(os.getpid(), signal.SIGHUP)
        flags.wait(1)
        assert flags.terms == 0
        assert flags.consume_hup() is True
        assert flags.consume_hup() is False


def test_previous_handlers_are_restored() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    old = signal.signal(signal.SIGHUP, mine)
    try:
        before = {s: signal.getsignal(s) for s in SignalFlags.SIGNALS}
        wakeup_before = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup_before)
        with SignalFlags() as flags:
            assert signal.getsignal(signal.SIGHUP) == flags._handle
        assert {s: signal.getsignal(s) for s in SignalFlags.SIGNALS} == before
        assert signal.getsignal(signal.SIGHUP) is mine
        assert signal.set_wakeup_fd(wakeup_before) == wakeup_before
    finally:
        signal.signal(signal.SIGHUP, old)


def test_wait_returns_early_on_wake_from_another_thread() -> None:
    with SignalFlags() as flags:
        timer = threading.Timer(0.05, flags.wake)
        timer.start()
        start = time.monotonic()
        flags.wait(10)
        assert time.monotonic() - start < 5
        timer.join()


def test_wait_sleeps_out_its_timeout_when_nothing_happens() -> None:
    with SignalFlags() as flags:
        start = time.monotonic()
        flags.wait(0.05)
        assert time.monotonic() - start >= 0.04


def test_refused_outside_the_main_thread() -> None:
    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with SignalFlags():
                pass
        except RuntimeError as err:
            errors.append(err)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])


@pytest.fixture(autouse=True)
def _main_thread_only() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed from the main thread")


def test_sigusr1_only_wakes_the_loop() -> None:
    # `asrd retry` sends SIGUSR1 so the daemon looks at the job database at once, not on its idle tick.
    with SignalFlags() as flags:
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
        timer.start()
        start = time.monotonic()
        flags.wait(10)
        assert time.monotonic() - start < 5
        timer.join()
        assert flags.terms == 0 and not flags.consume_hup()
