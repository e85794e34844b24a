"""The energy ledger: each file's share of what was measured, and nothing lost or made up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asrd.energy.records import FileEnergy, add, total_uj
from asrd.testing.fake_meters import FakeMeter
from asrd.worker.ledger import Ledger, split


def test_files_sharing_a_batch_pay_by_their_padded_share() -> None:
    meter = FakeMeter()
    ledger = Ledger(meter.read(), meter.method)
    meter.add(gpu=300)
    ledger.loaded(meter.read())  # the cold start: 300 uJ, charged to the next files
    # One batch: file 1 had two spans, file 2 one, all padded to the batch's longest (units are padded samples).
    ledger.work({1: 2 * 16_000, 2: 16_000})
    meter.add(gpu=900, package=90)
    ledger.tick(meter.read(), {1, 2})
    one, two = ledger.settle(1), ledger.settle(2)
    assert one.direct == (("gpu", 600), ("package", 60)) and one.overhead == (("gpu", 200),)
    assert two.direct == (("gpu", 300), ("package", 30)) and two.overhead == (("gpu", 100),)
    assert not one.estimated


def test_an_interval_without_a_batch_is_shared_by_the_files_in_flight() -> None:
    meter = FakeMeter(method="estimated:model")
    ledger = Ledger(meter.read(), meter.method)
    ledger.loaded(meter.read())
    meter.add(cpu=10)  # decoding and VAD only
    ledger.tick(meter.read(), {4, 5})
    assert ledger.settle(4).direct == (("cpu", 5),)
    assert ledger.settle(5).estimated  # the estimate is labelled as one


def test_the_idle_tail_and_failed_files_stay_unattributed() -> None:
    meter = FakeMeter()
    ledger = Ledger(meter.read(), meter.method)
    ledger.loaded(meter.read())
    ledger.work({1: 5, 2: 5})
    meter.add(gpu=100)
    ledger.tick(meter.read(), {1, 2})
    ledger.drop(2)
    done = ledger.settle(1)
    meter.add(gpu=1_000)  # idle until the daemon ends the worker
    session = ledger.close(meter.read())
    assert done.total_uj == 50
    assert session.unattributed == (("gpu", 1_050),)
    assert session.idle == (("gpu", 1_000),) and session.direct == (("gpu", 100),)


def test_split_is_proportional_and_exact() -> None:
    assert split(10, {1: 1, 2: 1, 3: 1}) == {1: 4, 2: 3, 3: 3}
    assert split(0, {1: 7}) == {1: 0}


DOMAINS = st.sampled_from(["gpu", "package", "dram"])
STEP = st.one_of(
    st.tuples(st.just("energy"), DOMAINS, st.integers(0, 10**9)),
    st.tuples(st.just("submit"), st.integers(1, 6)),
    st.tuples(st.just("work"), st.integers(1, 6), st.integers(1, 10**7)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("done"), st.integers(1, 6)),
    st.tuples(st.just("fail"), st.integers(1, 6)),
    st.tuples(st.just("loaded")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=60), st.dictionaries(DOMAINS, st.integers(0, 10**6)))
def test_any_interleaving_adds_up_to_exactly_what_was_measured(steps: list[tuple], start: dict[str, int]) -> None:
    meter = FakeMeter(used=dict(start))
    ledger = Ledger(meter.read(), meter.method)
    in_flight: set[int] = set()
    settled: list[FileEnergy] = []
    for step in steps:
        kind = step[0]
        if kind == "energy":
            meter.add(**{step[1]: step[2]})
        elif kind == "submit":
            in_flight.add(step[1])
        elif kind == "work" and step[1] in in_flight:
            ledger.work({step[1]: step[2]})
        elif kind == "tick":
            ledger.tick(meter.read(), in_flight)
        elif kind == "loaded":
            ledger.loaded(meter.read())
        elif kind in ("done", "fail") and step[1] in in_flight:
            ledger.tick(meter.read(), in_flight)
            in_flight.discard(step[1])
            if kind == "done":
                settled.append(ledger.settle(step[1]))
            else:
                ledger.drop(step[1])
    session = ledger.close(meter.read())
    measured = total_uj(meter.read()) - sum(start.values())
    assert sum(f.total_uj for f in settled) + session.unattributed_uj == measured
    assert session.total_uj == measured  # load + idle + direct partition it too
    by_domain = add(*(add(f.direct, f.overhead) for f in settled), session.unattributed)
    assert by_domain == add(meter.read(), tuple((k, -v) for k, v in start.items()))
