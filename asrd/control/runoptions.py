"""Options for one file (language, ITN, hotwords, formats), kept next to it as ``NAME.asrd-options.json``.

An upload or a recording may ask for other settings than its inbox's. They are stored in a small file
beside the media, written before the media gets its name, so they are there whenever the file is
transcribed: at once, after a daemon restart, or again later. The watcher never takes the file for
media (``.json`` is a sidecar extension). A file that cannot be read is logged, naming it, and the
inbox's own settings are used.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from asrd.config import Language, OutputSettings
from asrd.media import SidecarFormat
from asrd.recognizer import RecognizeOptions

log = logging.getLogger("asrd.daemon")

SUFFIX = ".asrd-options.json"
# Model names of the families whose FunASR classes use hotwords (asrd.recognizer.funasr._HOTWORD_MODELS):
# a guess from the name, for a hint in the page; the worker logs the certain answer once it has loaded.
_HOTWORD_NAMES = re.compile(r"seaco|contextual|nano", re.IGNORECASE)


class RunOptions(BaseModel):
    """What to do differently for one file; ``None`` = the inbox's setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: Language | None = None
    itn: bool | None = None
    hotwords: tuple[str, ...] | None = None
    formats: tuple[SidecarFormat, ...] | None = None

    def empty(self) -> bool:
        return all(v is None for v in self.model_dump().values())

    def recognize(self, base: RecognizeOptions) -> RecognizeOptions:
        return replace(
            base,
            language=self.language if self.language is not None else base.language,
            itn=self.itn if self.itn is not None else base.itn,
            hotwords=self.hotwords if self.hotwords is not None else base.hotwords,
        )

    def output(self, base: OutputSettings) -> OutputSettings:
        return base if not self.formats else base.model_copy(update={"formats": self.formats})


def options_path(media: Path) -> Path:
    return media.with_name(media.name + SUFFIX)


def read_options(media: Path) -> RunOptions | None:
    """The options stored for ``media``, or None (none stored, or unreadable: logged)."""
    path = options_path(media)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        log.warning("cannot read %s (%s): using the inbox's settings", path, err.strerror or err)
        return None
    try:
        return RunOptions.model_validate(json.loads(text))
    except (ValueError, ValidationError) as err:
        log.warning("%s is not valid (%s): using the inbox's settings", path, str(err).splitlines()[0])
        return None


def create_options(media: Path, options: RunOptions) -> Path:
    """Write the options for ``media`` (a name not yet taken); FileExistsError when that options file exists."""
    path = options_path(media)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(options.model_dump_json(exclude_none=True, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def takes_hotwords(model_name: str) -> bool:
    return bool(_HOTWORD_NAMES.search(Path(model_name).name))
