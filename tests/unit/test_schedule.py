from __future__ import annotations

import threading
import time

from asrd.control.timers import ManualTimers, SchedulerTimers


def test_manual_timers_on_a_fake_clock() -> None:
    t = ManualTimers()
    t.every("rescan", 300, now=0)
    t.at("idle_unload", 5)
    assert t.due(4) == set()
    assert t.due(5) == {"idle_unload"}
    assert t.due(6) == set()  # one-shot: gone after firing
    assert t.due(300) == {"rescan"}
    assert t.due(1000) == {"rescan"}  # missed periods coalesce into one firing; the next is at 1300
    t.at("retry", 2000)
    t.at("retry", 1500)  # rescheduling replaces
    assert t.due(1250) == set()
    assert t.due(1550) == {"rescan", "retry"}
    assert t.due(1650) == {"rescan"} and t.due(2100) == {"rescan"}
    t.cancel("rescan")
    assert t.due(10_000) == set()


def test_scheduler_timers_fire_in_real_time_and_wake_the_loop() -> None:
    woke = threading.Event()
    t = SchedulerTimers(woke.set, time.time)
    try:
        t.at("idle_unload", time.time() + 0.2)
        t.at("cancelled", time.time() + 0.2)
        t.cancel("cancelled")
        assert woke.wait(5), "apscheduler never fired"
        time.sleep(0.3)
        assert t.due(time.time()) == {"idle_unload"}
        assert t.due(time.time()) == set()
    finally:
        t.shutdown()
