"""The shipped service definitions: systemd units checked by systemd-analyze, the launchd plist by plistlib."""

from __future__ import annotations

import os
import plistlib
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_UNIT = REPO / "systemd" / "asrd.service"
RAY_NODE_UNIT = REPO / "systemd" / "asrd-ray-node.service"  # a cluster node (README, "Cluster mode")
USER_UNIT = REPO / "systemd" / "asrd-user.service"
PLIST = REPO / "launchd" / "io.github.asrd.plist"

# Sandboxing directives: each must be explained by the comment line right above it.
HARDENING = re.compile(
    r"^(Protect\w+|Private\w+|Restrict\w+|Device\w+|NoNewPrivileges|LockPersonality|SystemCall\w+"
    r"|CapabilityBoundingSet|AmbientCapabilities|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths"
    r"|MemoryDenyWriteExecute|ProcSubset|RemoveIPC|UMask|KeyringMode|IPAddress\w+)="
)


def directives(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) for every active line; keys may repeat (DeviceAllow=)."""
    section, out = "", []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(path: Path, key: str) -> list[str]:
    return [v for _, k, v in directives(path) if k == key]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _stand_in_copy(unit: Path, tmp_path: Path) -> Path:
    """A copy of the unit, under the name it is installed as, whose ExecStart binary exists."""
    stand_in = tmp_path / "asrd"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    copy = tmp_path / "asrd.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={stand_in}", unit.read_text(), flags=re.M))
    return copy


def exposure(unit: Path, tmp_path: Path, *, user: bool) -> float:
    """The overall exposure `systemd-analyze security --offline=yes` gives the unit file (0 best, 10 worst)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    copy = _stand_in_copy(unit, tmp_path)
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning", "SYSTEMD_PAGER": "", "LC_ALL": "C", "SYSTEMD_COLORS": "0"}
    command = ["systemd-analyze", "security", "--offline=yes", str(copy)]
    if user:
        command.insert(1, "--user")
        runtime = tmp_path / "runtime-security"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    output = result.stdout + result.stderr
    if "--offline" in output and "unrecognized option" in output:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    found = re.search(r"Overall exposure level for asrd\.service: (\d+\.\d)", output)
    assert found, output
    return float(found.group(1))


def analyze(unit: Path, tmp_path: Path, *, user: bool) -> str:
    """Run `systemd-analyze verify` on a copy whose ExecStart binary exists; return its output."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify insists the ExecStart binary exists and is executable: point it at a stand-in.
    copy = _stand_in_copy(unit, tmp_path)
    text = copy.read_text()
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "warning", "SYSTEMD_PAGER": "", "LC_ALL": "C"}
    command = ["systemd-analyze", "verify", str(copy)]
    if user:
        command.insert(1, "--user")
        runtime = tmp_path / "runtime"  # a user manager needs $XDG_RUNTIME_DIR, absent outside a login
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
    for attempt in range(2):
        copy.write_text(text)
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        output = (result.stdout + result.stderr).strip()
        # systemd 252 does not look users up; should a later one complain that User=asrd does not
        # exist on this machine, check the rest of the unit as root instead.
        messages = [line.split(": ", 1)[-1] for line in output.splitlines()]  # without the file path
        about_user = any(re.search(r"\b(user|group)\b.*\basrd\b", m, re.I) for m in messages)
        if attempt == 0 and about_user and not _user_exists("asrd"):
            text = re.sub(r"^(User|Group)=asrd$", r"\1=root", text, flags=re.M)
            continue
        break
    assert result.returncode == 0, output
    return output


@pytest.mark.parametrize(("unit", "user"), [(SYSTEM_UNIT, False), (USER_UNIT, True), (RAY_NODE_UNIT, False)],
                         ids=["system", "user", "ray-node"])
def test_systemd_analyze_verify_is_silent(unit: Path, user: bool, tmp_path: Path) -> None:
    output = analyze(unit, tmp_path, user=user)
    # verify exits 0 even for unknown keys and bad values: only its warnings tell.
    about_unit = [line for line in output.splitlines() if "asrd" in line]
    assert about_unit == [], "\n".join(about_unit)


def test_system_unit_exposure_at_most_2_5(tmp_path: Path) -> None:
    assert exposure(SYSTEM_UNIT, tmp_path, user=False) <= 2.5


def test_user_unit_exposure(tmp_path: Path) -> None:
    # 8.1 before the seccomp-based lines; what is left needs namespaces a user manager may not get.
    assert exposure(USER_UNIT, tmp_path, user=True) <= 6.5


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_syscall_filter_and_umask(unit: Path) -> None:
    assert values(unit, "SystemCallFilter") == ["@system-service", "~@privileged"]
    assert values(unit, "SystemCallErrorNumber") == ["EPERM"]  # a diagnosable error, not SIGSYS
    # Sidecars must be readable by media servers and SMB users, who are other users.
    assert values(unit, "UMask") == ["0022"]
    # READY comes before any model I/O; what precedes it is bounded by listing the inboxes.
    assert values(unit, "TimeoutStartSec") == ["300"]
    families = values(unit, "RestrictAddressFamilies")[0].split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_every_hardening_line_has_a_comment(unit: Path) -> None:
    lines = unit.read_text().splitlines()
    bare = [
        f"{unit.name}:{n + 1}: {line}"
        for n, line in enumerate(lines)
        if HARDENING.match(line) and not (n > 0 and re.match(r"# \S", lines[n - 1]))
    ]
    assert bare == []


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_service_basics(unit: Path) -> None:
    assert values(unit, "Type") == ["notify"]
    assert values(unit, "NotifyAccess") == ["main"]
    assert values(unit, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert values(unit, "Restart") == ["on-failure"]
    assert values(unit, "RestartPreventExitStatus") == ["78"]
    assert values(unit, "KillMode") == ["mixed"]
    assert values(unit, "WatchdogSec") == ["120"]
    # PyTorch's JIT and the CUDA driver need writable+executable memory.
    assert values(unit, "MemoryDenyWriteExecute") == []


def test_system_unit_specifics() -> None:
    assert values(SYSTEM_UNIT, "ExecStart") == ["/usr/local/bin/asrd run --config /etc/asrd/config.toml"]
    assert values(SYSTEM_UNIT, "User") == ["asrd"] and values(SYSTEM_UNIT, "Group") == ["asrd"]
    assert values(SYSTEM_UNIT, "DynamicUser") == []
    assert values(SYSTEM_UNIT, "StateDirectory") == ["asrd"]
    assert values(SYSTEM_UNIT, "PrivateDevices") == ["false"]
    assert values(SYSTEM_UNIT, "DevicePolicy") == ["closed"]
    allowed = {v.split()[0] for v in values(SYSTEM_UNIT, "DeviceAllow")}
    assert {"char-nvidiactl", "char-nvidia-caps", "char-nvidia-frontend", "char-nvidia-uvm"} <= allowed
    assert values(SYSTEM_UNIT, "WantedBy") == ["multi-user.target"]


def test_user_unit_specifics() -> None:
    assert values(USER_UNIT, "ExecStart") == ["%h/.local/bin/asrd run"]
    assert values(USER_UNIT, "User") == []
    assert values(USER_UNIT, "WantedBy") == ["default.target"]
    # Mount-namespace sandboxing needs privileges (or user namespaces) a user manager may not have.
    assert not [k for _, k, _ in directives(USER_UNIT) if k.startswith(("ProtectSystem", "ProtectHome", "Private"))]
    assert "loginctl enable-linger" in USER_UNIT.read_text()


def test_launchd_plist() -> None:
    with PLIST.open("rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "io.github.asrd"
    args = plist["ProgramArguments"]
    assert args[0].startswith("/") and args[1] == "run"
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["RunAtLoad"] is True
    assert plist["ProcessType"] == "Background"
    assert plist["LowPriorityIO"] is True
    assert plist["ThrottleInterval"] == 10
    assert plist["ExitTimeOut"] == 60
    assert "/usr/bin" in plist["EnvironmentVariables"]["PATH"]
    assert plist["StandardOutPath"].endswith("/Library/Logs/asrd.log")
    assert plist["StandardErrorPath"].endswith("/Library/Logs/asrd.log")
    # launchd expands neither ~ nor $HOME: every path must be absolute.
    strings = [*args, plist["StandardOutPath"], plist["StandardErrorPath"]]
    assert all(not s.startswith(("~", "$")) and "$HOME" not in s for s in strings)


@pytest.mark.skipif(shutil.which("plutil") is None, reason="plutil only exists on macOS")
def test_launchd_plist_lints() -> None:
    subprocess.run(["plutil", "-lint", str(PLIST)], check=True)
