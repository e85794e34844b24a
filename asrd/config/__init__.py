"""Configuration: one typed tree, read from TOML with ``ASRD_...`` environment overrides.

Precedence, highest first: explicit overrides (command-line flags), environment variables
(``ASRD_MODEL__DEVICE=cpu``; nested keys joined by ``__``), the TOML file, the defaults here.
Every field is documented in ``config.example.toml``; keep the two in step.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from asrd.config.cluster import ClusterSettings
from asrd.config.schedule import ScheduleSettings
from asrd.config.sections import (
    LANGUAGES,
    DaemonSettings,
    InboxSettings,
    Language,
    ModelSettings,
    OutputSettings,
    SubtitleSettings,
    TranscribeSettings,
    VadSettings,
    available_cpus,
)
from asrd.config.services import (
    NOTIFY_EVENTS,
    ApiSettings,
    EnergySettings,
    MediaServerSettings,
    MetricsSettings,
    NotifyEvent,
    NotifySettings,
    WebSettings,
    redact_url,
)

__all__ = [
    "ENV_PREFIX",
    "EX_CONFIG",
    "LANGUAGES",
    "NOTIFY_EVENTS",
    "ApiSettings",
    "ClusterSettings",
    "ConfigError",
    "DaemonSettings",
    "EnergySettings",
    "InboxSettings",
    "Language",
    "MediaServerSettings",
    "MetricsSettings",
    "ModelSettings",
    "NotifyEvent",
    "NotifySettings",
    "OutputSettings",
    "ScheduleSettings",
    "Settings",
    "SubtitleSettings",
    "TranscribeSettings",
    "VadSettings",
    "WebSettings",
    "available_cpus",
    "default_config_paths",
    "dump_settings",
    "find_config",
    "load_settings",
    "with_folders",
]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EX_CONFIG = 78  # sysexits.h: configuration error; systemd's RestartPreventExitStatus uses it

ENV_PREFIX = "ASRD_"


class ConfigError(Exception):
    """An invalid configuration; the message names the file or key and says what is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    model: ModelSettings = ModelSettings()
    vad: VadSettings = VadSettings()
    output: OutputSettings = OutputSettings()
    transcribe: TranscribeSettings = TranscribeSettings()
    subtitles: SubtitleSettings = SubtitleSettings()
    daemon: DaemonSettings = DaemonSettings()
    web: WebSettings = WebSettings()
    energy: EnergySettings = EnergySettings()
    api: ApiSettings = ApiSettings()
    metrics: MetricsSettings = MetricsSettings()
    cluster: ClusterSettings = ClusterSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    inbox: tuple[InboxSettings, ...] = ()
    mediaserver: tuple[MediaServerSettings, ...] = ()
    notify: tuple[NotifySettings, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = init_settings.init_kwargs.pop("_toml", {})  # type: ignore[attr-defined]
        return (init_settings, env_settings, _DictSource(settings_cls, toml))


class _DictSource(PydanticBaseSettingsSource):
    """The already-parsed TOML file as the lowest-priority source."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data


def default_config_paths() -> list[Path]:
    return [Path.home() / ".config" / "asrd" / "config.toml", Path("/etc/asrd/config.toml")]


def find_config(explicit: Path | None) -> Path | None:
    """``--config``, then ``$ASRD_CONFIG``, then the user's and the system's file; None if none exists."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: config file not found")
        return explicit
    env = os.environ.get("ASRD_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (from $ASRD_CONFIG)")
        return path
    return next((p for p in default_config_paths() if p.is_file()), None)


def load_settings(path: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Read the config file (if any), apply environment and explicit overrides, validate.

    Raises ConfigError with one message per problem, each naming the key.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
    kwargs: dict[str, Any] = {"_toml": data}
    for section, values in (overrides or {}).items():
        kwargs[section] = values
    try:
        return Settings(**kwargs)
    except ValidationError as err:
        raise ConfigError(_explain(err, path)) from None
    except (SettingsError, ValueError) as err:  # an environment value that cannot be parsed
        raise ConfigError(f"environment: {err}") from None


def _explain(err: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "configuration"
    lines = []
    for problem in err.errors():
        loc = [str(part) for part in problem["loc"] if not isinstance(part, int)]
        key = ""
        for part in problem["loc"]:
            key += f"[{part + 1}]" if isinstance(part, int) else f".{part}" if key else str(part)
        key = key or "(top level)"
        if problem["type"] == "extra_forbidden":
            text = "unknown key"
        else:
            text = problem["msg"].removeprefix("Value error, ")
            if "input" in problem and not isinstance(problem["input"], dict):
                text += f" (got {problem['input']!r})"
        env = ENV_PREFIX + "__".join(part.upper() for part in loc)
        origin = f" [from ${env}]" if env in os.environ else ""
        lines.append(f"{where}: {key}: {text}{origin}")
    return "\n".join(lines)


def with_folders(settings: Settings, folders: list[Path]) -> Settings:
    """Add folders given on the command line as inboxes with default settings."""
    known = {i.path.resolve() for i in settings.inbox}
    extra = tuple(InboxSettings(path=f) for f in folders if f.expanduser().resolve() not in known)
    return settings.model_copy(update={"inbox": settings.inbox + extra})


def dump_settings(settings: Settings) -> str:
    """The effective configuration as TOML (what ``asrd check-config`` prints)."""
    import tomli_w

    data = settings.model_dump(mode="json", exclude_none=True)
    for target in data.get("notify", []):  # credentials stay out of what is printed (and pasted into issues)
        target["url"] = redact_url(target["url"]) + ("/***" if target["url"] != redact_url(target["url"]) else "")
        if target["secret"]:
            target["secret"] = "***"
    return tomli_w.dumps(data)
