"""The sections of the configuration tree, one frozen model each, with a docstring per field."""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode

from asrd.media import SidecarFormat

#: What ``language`` may say: auto, or one of the languages SenseVoiceSmall tags its output with.
Language = Literal["auto", "zh", "en", "yue", "ja", "ko"]


LANGUAGES: tuple[Language, ...] = get_args(Language)


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_SLOT_RE = re.compile(r"^(cpu|\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")  # a worker slot: the CPU, a GPU index or UUID


_NAMING_FIELDS = {"stem", "ext", "lang", "name"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _split_list(value: Any) -> Any:
    # Environment variables arrive as strings; accept "txt,srt" as well as JSON lists.
    if isinstance(value, str):
        if value.startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ModelSettings(_Section):
    name: str = Field("iic/SenseVoiceSmall", min_length=1)
    """Hub id (``iic/SenseVoiceSmall``) or a local FunASR model directory."""
    hub: Literal["ms", "hf"] = "ms"
    """Where hub ids are downloaded from: ModelScope or Hugging Face."""
    device: str = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps. An explicit device that is absent is an error."""
    threads: int = Field(0, ge=0)
    """CPU threads for the model; 0 = chosen from the CPUs this process may use (model + front end <= CPUs)."""
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = "auto"
    """auto = bf16 on a CUDA GPU with native bfloat16 (Ampere+), else fp32. fp16/bf16 are GPU only
    (autocast), int8 CPU only (dynamic int8 Linear layers). See FunASRRecognizer / README "Precision"."""
    funasr_patches: bool = True
    """Use asrd's faster or safer replacements for pieces of FunASR (asrd/recognizer/patches.py lists
    them; each runs only on the FunASR versions it was verified on and checks itself at load). false =
    FunASR's own code everywhere (slower; precision int8, fp16 and bf16 then fall back to fp32)."""
    batch_seconds: float = Field(0, ge=0)
    """Most padded audio seconds in one model call (spans of several files together); 0 = per device
    (60 on the CPU, 600 on a GPU). Out of GPU memory halves it for the rest of the worker's life."""
    files_in_flight: int = Field(0, ge=0)
    """Files the worker works on at once, to batch their speech; 0 = per device (8 CPU, 64 GPU).
    Decoded audio held ahead of the model: max(2 x batch_seconds, 120 s), shared by these files."""
    idle_unload_seconds: float | Literal["auto"] = 300.0
    """The model's worker process exits after this long with nothing to do (GPU memory back to 0);
    -1 never, 0 as soon as the queue is empty. "auto": as long as a cold start costs in idle energy,
    measured on this machine (10-600 s; 300 s until measured, and on the CPU-time estimate)."""

    @field_validator("idle_unload_seconds")
    @classmethod
    def _idle_unload(cls, value: float | str) -> float | str:
        if value == "auto":
            return value
        if float(value) < -1:
            raise ValueError('must be -1 (never), 0 or more seconds, or "auto"')
        return float(value)  # an int would not serialise as the declared float
    devices: Annotated[tuple[str, ...], NoDecode] = ()
    """One worker process per entry, each pinned to its device before CUDA starts: "auto" (every
    visible GPU; none: one worker as with []), or a list of GPU indices, GPU/MIG UUIDs and "cpu"
    entries (CPU workers split ``threads``). [] = one worker on ``device``."""

    rerun_models: Annotated[tuple[str, ...], NoDecode] = ()
    """Other models a file may be re-run with from the dashboard or ``asrd rerun`` (hub ids or local
    directories, as ``name``); each gets its own worker on demand, ended after idle_unload_seconds."""

    @field_validator("rerun_models", mode="before")
    @classmethod
    def _rerun_models_in(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE_RE.match(value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("devices", mode="before")
    @classmethod
    def _devices_in(cls, value: Any) -> Any:
        return ("auto",) if value == "auto" else _split_list(value)

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "auto" in value:
            if len(value) > 1:
                raise ValueError('"auto" stands alone: every visible GPU')
            return value
        for entry in value:
            if not _SLOT_RE.match(entry):
                raise ValueError(f"{entry!r}: each entry is a GPU index, a GPU or MIG UUID, or \"cpu\"")
        gpus = [e for e in value if e != "cpu"]
        if len(set(gpus)) != len(gpus):
            raise ValueError("a GPU is listed twice (one worker per GPU)")
        return value

    @model_validator(mode="after")
    def _gpu_slots_need_cuda(self) -> ModelSettings:
        if self.device in ("cpu", "mps") and any(entry != "cpu" for entry in self.devices):
            raise ValueError(f'devices lists GPUs but device = "{self.device}": use "auto" or "cuda"')
        return self

    def resolved_threads(self) -> int:
        return self.threads or available_cpus()


class VadSettings(_Section):
    engine: Literal["webrtc", "fsmn"] = "webrtc"
    """webrtc (fast, no model) or fsmn (FunASR's FSMN-VAD model, see fsmn_model)."""
    fsmn_model: str = "fsmn-vad"
    """FSMN-VAD model: a local directory or a hub id; used when engine = "fsmn"."""
    aggressiveness: int = Field(2, ge=0, le=3)
    """webrtc: 0 (keeps most audio) to 3 (drops most non-speech)."""
    max_segment_seconds: float = Field(30.0, ge=2.0, le=60.0)
    """Longer speech is split at its quietest point."""
    min_silence_ms: int = Field(600, ge=30, le=5000)
    """webrtc: silence needed to end a segment."""
    padding_ms: int = Field(300, ge=0, le=2000)
    """webrtc: audio kept before and after each segment so no word is clipped."""
    min_speech_ms: int = Field(150, ge=0, le=5000)
    """webrtc: shorter bursts are dropped as noise."""

    @model_validator(mode="after")
    def _padding_fits(self) -> VadSettings:
        if self.padding_ms * 4 > self.max_segment_seconds * 1000:
            raise ValueError("padding_ms must be at most a quarter of max_segment_seconds")
        return self


class OutputSettings(_Section):
    formats: Annotated[tuple[SidecarFormat, ...], NoDecode] = ("txt", "srt")
    """Sidecar formats to write."""
    naming: str = "{stem}.{ext}"
    """Sidecar file name template: {stem}, {name} (file name with extension), {lang}, {ext}."""
    output_dir: Path | None = None
    """Write sidecars here instead of next to the original (for read-only shares)."""
    file_mode: str = ""
    """Permissions of the sidecars asrd writes, in octal ("0644", "0664"); "" = what any new file gets
    (0666 minus the umask; a setgid folder's group either way)."""
    redo_missing: bool = True
    """A finished file whose sidecars were all deleted is transcribed again at the next scan."""

    _split = field_validator("formats", mode="before")(_split_list)

    @field_validator("file_mode")
    @classmethod
    def _file_mode(cls, value: str) -> str:
        if value and not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError('must be "" (the umask decides) or octal permissions such as "0644" or "0664"')
        return value

    def mode_bits(self) -> int | None:
        """``file_mode`` as permission bits, or None for the umask default."""
        return int(self.file_mode, 8) if self.file_mode else None

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one format is needed")
        return tuple(dict.fromkeys(value))

    @field_validator("naming")
    @classmethod
    def _naming(cls, value: str) -> str:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as err:
            raise ValueError(f"bad template: {err}") from None
        unknown = fields - _NAMING_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{stem}} {{name}} {{lang}} {{ext}}")
        if "ext" not in fields:
            raise ValueError("must contain {ext}, or every format would get the same file name")
        if "/" in value or "\\" in value:
            raise ValueError("must be a file name, not a path (use output_dir)")
        return value


def _check_alerts(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    for word in value:
        if not word.strip() or word.strip() == "re:":
            raise ValueError("an alert must not be empty")
        if word.startswith("re:"):
            try:
                re.compile(word[3:])
            except re.error as err:
                raise ValueError(f"bad regular expression {word!r}: {err}") from None
    return tuple(dict.fromkeys(value))


class TranscribeSettings(_Section):
    language: Language = "auto"
    """Spoken language, or auto to detect it per segment."""
    itn: bool = True
    """Inverse text normalisation: punctuation, numbers as digits."""
    hotwords: Annotated[tuple[str, ...], NoDecode] = ()
    """Words to favour; only models that support them use them (a warning says when they are ignored)."""
    alerts: Annotated[tuple[str, ...], NoDecode] = ()
    """Keyword alerts: words or phrases (case- and width-insensitive) or "re:REGEX"; matches go into the .json
    sidecar, notifications and ``asrd report``. Inboxes may set their own."""

    _split = field_validator("hotwords", "alerts", mode="before")(_split_list)
    _alerts = field_validator("alerts")(_check_alerts)


class SubtitleSettings(_Section):
    """Rules for .srt and .vtt cues; the defaults follow the Netflix timed-text style guides."""

    max_lines: int = Field(2, ge=1, le=4)
    """Lines per cue."""
    max_line_chars: int = Field(42, ge=10, le=200)
    """Characters per line in Latin (and other spaced) scripts."""
    max_line_chars_cjk: int = Field(16, ge=4, le=100)
    """Characters per line in Chinese and Japanese; mixed lines are weighted between the two."""
    min_duration_ms: int = Field(833, ge=0, le=5000)
    """Shortest time a cue is shown, unless the next cue starts sooner."""
    max_duration_ms: int = Field(7000, ge=1000, le=60000)
    """Longest time a cue is shown; longer speech is split into more cues."""
    max_cps: float = Field(20.0, gt=0)
    """Reading speed, characters per second (Latin): a cue stays up long enough, room permitting."""
    max_cps_cjk: float = Field(9.0, gt=0)
    """Reading speed, characters per second (CJK)."""
    min_gap_ms: int = Field(83, ge=0, le=2000)
    """Blank time between consecutive cues (two frames at 24 fps)."""
    max_hangover_ms: int = Field(500, ge=0, le=5000)
    """How long a cue may stay after its speech ends, beyond what the minimum duration or reading speed need."""

    @model_validator(mode="after")
    def _durations(self) -> SubtitleSettings:
        if self.min_duration_ms > self.max_duration_ms:
            raise ValueError("min_duration_ms must not exceed max_duration_ms")
        return self


def _default_state_dir() -> Path:
    # systemd's StateDirectory= sets $STATE_DIRECTORY; otherwise the XDG state home.
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "asrd"


class DaemonSettings(_Section):
    state_dir: Path = Field(default_factory=_default_state_dir)
    """Job database and status; must be on a local disk (SQLite WAL does not work on network shares)."""
    rescan_seconds: float = Field(300, ge=0)
    """Full rescan of every inbox this often, for what watchers miss; 0 = only at start."""
    max_attempts: int = Field(3, ge=1, le=100)
    """Failed attempts before a file is quarantined (environmental failures do not count)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class InboxSettings(_Section):
    path: Path
    """The folder to watch."""
    recursive: bool = True
    include: Annotated[tuple[str, ...], NoDecode] = ()
    """Glob patterns of files to transcribe (matched against the name); empty = common audio and video types."""
    exclude: Annotated[tuple[str, ...], NoDecode] = ()
    """Glob patterns to skip (matched against the name and the path relative to the inbox)."""
    language: Language | None = None
    hotwords: Annotated[tuple[str, ...] | None, NoDecode] = None
    alerts: Annotated[tuple[str, ...] | None, NoDecode] = None
    """Keyword alerts for this inbox (replaces [transcribe] alerts; [] = none here)."""
    formats: Annotated[tuple[SidecarFormat, ...] | None, NoDecode] = None
    naming: str | None = None
    output_dir: Path | None = None
    settle_seconds: float | None = Field(None, gt=0)
    """Quiet time before a file counts as complete; default 5 s, 30 s on polled (network) folders."""
    watch: Literal["auto", "native", "poll"] = "auto"
    """auto = native events on local disks, polling on network and FUSE mounts."""
    poll_interval_seconds: float = Field(10, ge=0.1)

    _split = field_validator("include", "exclude", "hotwords", "alerts", "formats", mode="before")(_split_list)
    _alerts = field_validator("alerts")(_check_alerts)

    @field_validator("naming")
    @classmethod
    def _naming(cls, value: str | None) -> str | None:
        return None if value is None else OutputSettings._naming(value)

    @field_validator("path", "output_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup cpusets), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1
