"""Energy meters on a fake powercap tree and a fake NVML (the test machines have neither)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from asrd.testing.fake_meters import FakeNvml, FakeZone, make_powercap, make_root_only, set_energy
from asrd.worker.meters import (
    CombinedMeter,
    MeterUnavailable,
    ModelMeter,
    NvmlMeter,
    RaplMeter,
    ScaledMeter,
    open_meter,
)

REPO = Path(__file__).resolve().parents[2]


def server(root: Path) -> Path:
    """Two packages with DRAM, a psys zone, a core subzone, and the MMIO mirror of package 0."""
    return make_powercap(root, [
        FakeZone("intel-rapl:0", "package-0", 1_000),
        FakeZone("intel-rapl:0:0", "core", 500),
        FakeZone("intel-rapl:0:1", "dram", 100),
        FakeZone("intel-rapl:1", "package-1", 2_000),
        FakeZone("intel-rapl:1:0", "dram", 200),
        FakeZone("intel-rapl:2", "psys", 9_000),
        FakeZone("intel-rapl-mmio:0", "package-0", 1_000),
    ])


def test_rapl_counts_packages_and_dram_never_psys_core_or_the_mmio_mirror(tmp_path: Path) -> None:
    root = server(tmp_path / "powercap")
    meter = RaplMeter(root)
    assert meter.read() == ()
    for node, add in [("intel-rapl:0", 10), ("intel-rapl:0:0", 7), ("intel-rapl:0:1", 3), ("intel-rapl:1", 20),
                      ("intel-rapl:1:0", 4), ("intel-rapl:2", 1_000), ("intel-rapl-mmio:0", 10)]:
        set_energy(root, node, int((root / node / "energy_uj").read_text()) + add)
    assert meter.read() == (("dram", 7), ("package", 30))
    assert meter.method == "measured:rapl"


def test_rapl_counts_a_mirrored_package_counter_once(tmp_path: Path) -> None:
    # Some AMD multi-die parts expose the same package counter twice (codecarbon #1274).
    root = make_powercap(tmp_path / "p", [FakeZone("intel-rapl:0", "package-0", 0),
                                          FakeZone("intel-rapl:1", "package-0", 0)])
    meter = RaplMeter(root)
    set_energy(root, "intel-rapl:0", 10)
    set_energy(root, "intel-rapl:1", 10)
    assert meter.read() == (("package", 10),)


def test_rapl_psys_alone_when_there_is_no_package(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "p", [FakeZone("intel-rapl:0", "psys", 5)])
    meter = RaplMeter(root)
    set_energy(root, "intel-rapl:0", 45)
    assert meter.read() == (("psys", 40),)


def test_rapl_counter_wraps_at_its_range(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "p", [FakeZone("intel-rapl:0", "package-0", 990, max_energy_range_uj=999)])
    meter = RaplMeter(root)
    set_energy(root, "intel-rapl:0", 10)  # 990 -> 999 -> 0 -> 10: 20 uJ
    assert meter.read() == (("package", 20),)
    set_energy(root, "intel-rapl:0", 500)
    assert meter.read() == (("package", 510),)  # cumulative since opened


def test_no_powercap_is_unavailable_and_auto_falls_back_to_a_labelled_estimate(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no powercap"):
        RaplMeter(tmp_path / "absent")
    meter = open_meter("auto", gpu_index=None, watts_per_core=10, powercap=tmp_path / "absent")
    assert meter.method == "estimated:model"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    # Readable by an unprivileged user (pytest's tmp_path is 0700 for root).
    path = Path(tempfile.mkdtemp(prefix="asrd-powercap-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_root_only_counter_says_why_and_how_to_fix_it(shared_dir: Path) -> None:
    root = make_powercap(shared_dir / "powercap", [FakeZone("intel-rapl:0", "package-0", 1)])
    for folder in (shared_dir / "powercap", shared_dir / "powercap" / "intel-rapl:0"):
        folder.chmod(0o755)
    make_root_only(root, "intel-rapl:0")
    code = (
        "import sys; from pathlib import Path; from asrd.worker.meters import RaplMeter, MeterUnavailable\n"
        f"try:\n    RaplMeter(Path({str(root)!r}))\nexcept MeterUnavailable as e:\n    print(e); sys.exit(3)\n"
    )
    if os.geteuid() == 0:  # root reads anything: run the reader as nobody, as the daemon's user would
        python = shutil.which("python3", path="/usr/bin")
        if python is None:
            pytest.skip("no system python3 to run as an unprivileged user")
        run = subprocess.run([python, "-c", code], env={"PYTHONPATH": str(REPO)}, capture_output=True,
                             text=True, user=65534, group=65534, cwd="/", check=False)
    else:
        run = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(REPO)}, capture_output=True,
                             text=True, check=False)
    assert run.returncode == 3, run.stderr
    assert "energy_uj: not readable" in run.stdout and "group asrd" in run.stdout


def test_nvml_counts_millijoules_since_it_was_opened_and_shuts_down() -> None:
    nvml = FakeNvml(energy_mj=[5_000, 100])
    meter = NvmlMeter(0, nvml)
    nvml.energy_mj[0] = 5_250
    assert meter.read() == (("gpu", 250_000),)
    assert nvml.initialised == 1
    meter.close()
    assert nvml.initialised == 0


def test_nvml_without_an_energy_counter_or_a_driver_is_unavailable() -> None:
    nvml = FakeNvml(energy_mj=[None])
    with pytest.raises(MeterUnavailable, match="no energy counter"):
        NvmlMeter(0, nvml)
    assert nvml.initialised == 0  # shut down again
    with pytest.raises(MeterUnavailable, match="Library Not Found"):
        NvmlMeter(0, FakeNvml(driver=False))


def test_auto_combines_nvml_and_rapl_and_opens_nvml_only_for_a_gpu(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "p", [FakeZone("intel-rapl:0", "package-0", 0)])
    nvml = FakeNvml(energy_mj=[0])
    meter = open_meter("auto", gpu_index=0, watts_per_core=10, powercap=root, nvml=nvml)
    assert isinstance(meter, CombinedMeter) and meter.method == "measured:nvml+rapl"
    nvml.energy_mj[0] = 3
    set_energy(root, "intel-rapl:0", 7)
    assert meter.read() == (("gpu", 3_000), ("package", 7))
    meter.close()
    cpu_only = FakeNvml()
    assert open_meter("auto", gpu_index=None, watts_per_core=10, powercap=root, nvml=cpu_only).method == "measured:rapl"
    assert cpu_only.init_calls == 0  # never even tried: NVML wakes an idle GPU


def test_the_estimate_is_cpu_seconds_times_watts_per_core_and_labelled() -> None:
    cpu = [1.0]
    meter = ModelMeter(12.0, lambda: cpu[0])
    cpu[0] = 3.5
    assert meter.read() == (("cpu", 30_000_000),)  # 2.5 s x 12 W = 30 J
    assert meter.method == "estimated:model"


def test_plug_calibration_scales_what_auto_gives(tmp_path: Path) -> None:
    root = make_powercap(tmp_path / "p", [FakeZone("intel-rapl:0", "package-0", 0)])
    meter = open_meter("plug", gpu_index=None, watts_per_core=10, plug_factor=1.5, powercap=root)
    assert isinstance(meter, ScaledMeter) and meter.method == "calibrated:plug"
    set_energy(root, "intel-rapl:0", 1_000)
    assert meter.read() == (("package", 1_500),)
