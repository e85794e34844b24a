from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asrd.config import EX_CONFIG, ConfigError, available_cpus, find_config, load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("ASRD_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.model.name == "iic/SenseVoiceSmall"
    assert s.output.formats == ("txt", "srt")
    assert s.vad.max_segment_seconds == 30
    assert s.model.resolved_threads() == available_cpus()


def test_file_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[model]\ndevice = "cpu"\nthreads = 1\n[transcribe]\nlanguage = "zh"\n')
    monkeypatch.setenv("ASRD_MODEL__THREADS", "2")
    monkeypatch.setenv("ASRD_OUTPUT__FORMATS", "txt,vtt")
    s = load_settings(path, {"transcribe": {"language": "en"}})
    assert s.model.device == "cpu"  # file
    assert s.model.threads == 2  # env beats file
    assert s.output.formats == ("txt", "vtt")  # env, comma list
    assert s.transcribe.language == "en"  # explicit override beats both


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[model]\nthreads = -1\n", "model.threads"),
        ('[model]\ndevice = "gpu"\n', "model.device"),
        ("[vad]\nagressiveness = 2\n", "vad.agressiveness: unknown key"),
        ("[vad]\naggressiveness = 7\n", "vad.aggressiveness"),
        ('[output]\nformats = ["txt", "doc"]\n', "output.formats"),
        ('[output]\nnaming = "{stem}.txt"\n', "output.naming: must contain {ext}"),
        ('[output]\nnaming = "{stem}.{foo}.{ext}"\n', "unknown placeholder {foo}"),
        ('[transcribe]\nlanguage = "klingon"\n', "transcribe.language"),
        ("[nonsense]\nx = 1\n", "nonsense: unknown key"),
        ('[[inbox]]\npath = "/a"\n[[inbox]]\npath = "/b"\nwatch = "inotify"\n', "inbox[2].watch"),
        ("[[inbox]]\nrecursive = true\n", "inbox[1].path: Field required"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_env_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASRD_MODEL__THREADS", "many")
    with pytest.raises(ConfigError, match=r"model\.threads.*\$ASRD_MODEL__THREADS"):
        load_settings()


def test_toml_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[model\n"))


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_config(None) is None or find_config(None) == Path("/etc/asrd/config.toml")
    user = tmp_path / ".config" / "asrd" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config(None) == user
    other = write(tmp_path, "")
    monkeypatch.setenv("ASRD_CONFIG", str(other))
    assert find_config(None) == other
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("")
    assert find_config(explicit) == explicit
    with pytest.raises(ConfigError, match="not found"):
        find_config(tmp_path / "missing.toml")


def test_example_config_is_valid_and_complete() -> None:
    """config.example.toml must load, and must document every key there is."""
    from asrd.config import Settings

    example = REPO / "config.example.toml"
    settings = load_settings(example)
    text = example.read_text()
    from typing import get_args

    for section, model in Settings.model_fields.items():
        kind = model.annotation
        if get_args(kind):  # a list of tables ([[inbox]], [[mediaserver]]): tuple[Model, ...]
            kind = get_args(kind)[0]
        fields = kind.model_fields  # type: ignore[union-attr]
        assert f"[{section}]" in text or f"[[{section}]]" in text, section
        for key in fields:
            assert f"{key} =" in text, f"{section}.{key} is not documented in config.example.toml"
    assert settings == load_settings()  # the example shows the defaults


def test_check_config_cli(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "asrd", "check-config", str(REPO / "config.example.toml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "[model]" in ok.stdout and 'name = "iic/SenseVoiceSmall"' in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "asrd", "check-config", str(write(tmp_path, "[vad]\nengine='x'\n"))],
                         capture_output=True, text=True)
    assert bad.returncode == EX_CONFIG
    assert "vad.engine" in bad.stderr


def test_daemon_process_stays_light() -> None:
    """The daemon never imports torch or funasr (the model lives in the worker), nor the decoders, nor the
    dashboard's web stack while [web] is off."""
    heavy = ("torch", "funasr", "av", "soundfile", "soxr", "starlette", "uvicorn", "jinja2", "asrd.web")
    code = (
        "import sys, asrd.cli, asrd.control.daemon, asrd.control.driver, asrd.control.status; "
        f"sys.exit(','.join(m for m in {heavy!r} if m in sys.modules) or None)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, f"imported in the daemon process: {run.stderr.strip()}"
