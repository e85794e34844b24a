"""The FunASR patch registry's rules, on stand-in patches (the real ones: tests/integration/test_patches.py)."""

from __future__ import annotations

import logging

import pytest

from asrd.control.status import render
from asrd.recognizer import PATCH_ACTIVE, PATCH_UNUSED, describe_patches
from asrd.recognizer.patches import BY_NAME, PATCHES, VERIFIED, Applied, Patcher, replace_attribute


class Target:
    def run(self) -> int:
        return 1


def _install(target: Target, value: int) -> Applied:
    undo = replace_attribute(target, "run", lambda: value)
    return Applied(lambda: abs(target.run() - Target.run(target)), undo)


def test_every_patch_is_described_and_verified() -> None:
    assert len(PATCHES) == len(BY_NAME) == 11
    for patch in PATCHES:
        assert patch.replaces and patch.why and patch.verified == VERIFIED and patch.tolerance >= 0


def test_a_patch_within_tolerance_stays_and_one_outside_is_undone(caplog: pytest.LogCaptureFixture) -> None:
    patcher = Patcher(version=VERIFIED[0])
    good, bad = Target(), Target()
    assert patcher.apply("lean_layers", lambda: _install(good, 1)) is not None  # tolerance 0: equal output
    with caplog.at_level(logging.WARNING, logger="asrd.recognizer.patches"):
        assert patcher.apply("fsmn_memory", lambda: _install(bad, 2)) is None
    assert good.run() == 1 and "run" in vars(good)
    assert "run" not in vars(bad)  # undone: FunASR's (the class's) code again
    assert patcher.state("lean_layers") == PATCH_ACTIVE
    assert patcher.state("fsmn_memory").startswith("self-check failed")
    assert [r.message for r in caplog.records if "fsmn_memory" in r.message]


def test_a_self_check_that_raises_undoes_the_patch() -> None:
    target = Target()

    def broken() -> float:
        raise AttributeError("a renamed attribute")

    patcher = Patcher(version=VERIFIED[0])
    assert patcher.apply("lean_layers", lambda: Applied(broken, replace_attribute(target, "run", lambda: 1))) is None
    assert "run" not in vars(target) and patcher.state("lean_layers") == "self-check failed: AttributeError"


def test_another_funasr_version_skips_every_patch_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asrd.recognizer.patches"):
        patcher = Patcher(version="9.9.9")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "9.9.9" in warnings[0].message
    assert all(p.name in warnings[0].message for p in PATCHES)
    ran = []
    assert patcher.apply("lean_layers", lambda: ran.append(1)) is None and not ran  # type: ignore[func-returns-value]
    assert all(state == "not verified on funasr 9.9.9" for _, state in patcher.states())


def test_switched_off_nothing_is_applied_and_nothing_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        patcher = Patcher(False, version="9.9.9")
    assert not caplog.records
    assert {state for _, state in patcher.states()} == {"funasr_patches = false"}
    assert not any(patcher.allowed(p.name) for p in PATCHES)


def test_the_summary_line_and_status_show_active_and_off_patches() -> None:
    states = [("a", PATCH_ACTIVE), ("b", PATCH_ACTIVE), ("c", "self-check failed: difference 0.1 > 0"),
              ("d", PATCH_UNUSED)]
    line = describe_patches(states)
    assert line == ("2 of 3 active; off: c (self-check failed: difference 0.1 > 0); "
                    "1 not used by this model/device/precision")
    doc = {"running": True, "pid": 1, "state_dir": "/x", "queue": None,
           "daemon": {"model_loaded": True, "device": "cpu", "worker_pid": 2, "last_load_seconds": 1.0,
                      "current": [], "inboxes": [], "patches": [list(s) for s in states]}}  # as JSON gives it back
    assert f"FunASR patches: {line}" in render(doc).splitlines()
