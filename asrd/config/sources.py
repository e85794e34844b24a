"""Where each effective setting came from: the environment, the config file (or the command line), or the
default. For the dashboard's System page; read-only, like ``asrd check-config``.

Pydantic records which fields a source set (``model_fields_set``); a field also named by an ``ASRD_``
variable came from the environment, which wins over the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from asrd.config import ENV_PREFIX, Settings

SECRET_WORDS = ("token", "password", "secret")  # never shown, whatever the source


@dataclass(frozen=True)
class ConfigValue:
    key: str  # "model.device", "inbox[1].path"
    value: str  # as TOML would write it (JSON is close enough for display)
    source: str  # "environment", "file", "default"


def _text(value: object) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _section(name: str, model: BaseModel, environ: Mapping[str, str]) -> list[ConfigValue]:
    whole = f"{ENV_PREFIX}{name.upper()}" in environ
    out = []
    for field in type(model).model_fields:
        env = f"{ENV_PREFIX}{name.upper()}__{field.upper()}"
        if env in environ or whole:
            source = "environment"
        elif field in model.model_fields_set:
            source = "file"
        else:
            source = "default"
        value = getattr(model, field)
        shown = "(hidden)" if any(w in field for w in SECRET_WORDS) and value else _text(value)
        out.append(ConfigValue(f"{name}.{field}", shown, source))
    return out


def effective(settings: Settings, environ: Mapping[str, str] | None = None) -> list[ConfigValue]:
    """Every setting with its value and source, in the order of the config file."""
    env = os.environ if environ is None else environ
    out: list[ConfigValue] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            out.extend(_section(name, value, env))
        elif name == "inbox":
            source = "environment" if f"{ENV_PREFIX}INBOX" in env else "file"
            for n, inbox in enumerate(value, 1):
                for item in _section(f"inbox[{n}]", inbox, {}):
                    out.append(ConfigValue(item.key, item.value, source if item.source == "file" else item.source))
    return out
