"""The idle-unload simulation behind the "auto" numbers: the ski-rental bound holds for any arrivals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.energy.unload import break_even
from asrd.testing.energy_sim import DeviceModel, memo_workload, simulate


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 3600), st.floats(1, 60)), min_size=1, max_size=40),
    st.floats(100, 5000),
    st.floats(1, 100),
)
def test_auto_never_costs_more_than_twice_the_oracle(gaps: list[tuple[float, float]], cold: float, idle: float) -> None:
    device = DeviceModel("test", cold, 0.0, idle, 200.0, 0.001)
    t = 0.0
    memos = []
    for gap, seconds in gaps:
        t += gap
        memos.append((t, seconds))
    auto_after = break_even(cold, idle)
    if not 10 < cold / idle < 600:  # outside the clamp the bound is not claimed
        return
    auto, oracle = simulate(memos, device, auto_after), simulate(memos, device, None)
    overhead = auto.load_joules + auto.idle_joules
    # Per gap at most twice the oracle; the idle tail after the last memo costs at most one cold start more.
    assert overhead <= 2 * (oracle.load_joules + oracle.idle_joules) + cold + 1e-6
    assert auto.compute_joules == oracle.compute_joules


def test_the_workload_is_200_memos_of_5_to_60_seconds_in_the_daytime() -> None:
    memos = memo_workload()
    assert len(memos) == 200 and all(5 <= s <= 60 for _, s in memos)
    assert all(8 * 3600 <= t % 86400 <= 23 * 3600 for t, _ in memos)
    assert memos == sorted(memos)


def test_fixed_300_s_pays_more_idle_than_auto_on_a_gpu_that_idles_at_50_w() -> None:
    device = DeviceModel("gpu", 720.0, 5.0, 50.0, 300.0, 1 / 1800)
    memos = memo_workload()
    fixed, auto = simulate(memos, device, 300.0), simulate(memos, device, break_even(720.0, 50.0))
    assert auto.wh < fixed.wh / 3 and auto.cold_starts > fixed.cold_starts
