"""Find, fetch and check FunASR model directories, without importing torch or funasr.

FunASR trusts whatever it finds: with ``model.pt`` missing it runs RANDOM weights, with
``am.mvn`` missing it skips feature normalisation, both without an error. And a hub name
with no network ends in a misleading "model is not registered" after up to minutes. So
asrd resolves every model to a checked local directory itself before FunASR sees it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from asrd.recognizer import ModelError

log = logging.getLogger(__name__)

# Short names people use in FunASR's README, mapped to hub ids.
ALIASES_MS = {
    "SenseVoiceSmall": "iic/SenseVoiceSmall",
    "sensevoice": "iic/SenseVoiceSmall",
    "paraformer": "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "paraformer-zh": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "paraformer-en": "iic/speech_paraformer-large-vad-punc_asr_nat-en-16k-common-vocab10020",
    "fsmn-vad": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    "Fun-ASR-Nano": "FunAudioLLM/Fun-ASR-Nano-2512",
}
ALIASES_HF = {
    "SenseVoiceSmall": "FunAudioLLM/SenseVoiceSmall",
    "sensevoice": "FunAudioLLM/SenseVoiceSmall",
    "iic/SenseVoiceSmall": "FunAudioLLM/SenseVoiceSmall",
    "paraformer": "funasr/paraformer-zh",
    "paraformer-zh": "funasr/paraformer-zh",
    "paraformer-en": "funasr/paraformer-en",
    "fsmn-vad": "funasr/fsmn-vad",
    "Fun-ASR-Nano": "FunAudioLLM/Fun-ASR-Nano-2512",
}
_FRONTENDS_WITH_CMVN = {"WavFrontend", "WavFrontendOnline"}
REACH_TIMEOUT = 5.0  # seconds to decide a hub is unreachable, instead of FunASR's minutes


def is_local(name: str) -> bool:
    return Path(name).expanduser().exists() or name.startswith(("/", ".", "~"))


def hub_id(name: str, hub: str) -> str:
    aliases = ALIASES_HF if hub == "hf" else ALIASES_MS
    return aliases.get(name, name)


def check_model_dir(path: Path) -> None:
    """Refuse a directory FunASR would load silently wrong. Raises ModelError naming what is missing."""
    if not path.is_dir():
        raise ModelError(f"{path}: model directory not found")
    config = path / "config.yaml"
    weights = path / "model.pt"
    meta = path / "configuration.json"
    missing: list[str] = []
    if meta.is_file():
        try:
            metas = json.loads(meta.read_text(encoding="utf-8")).get("file_path_metas", {})
        except (ValueError, OSError) as err:
            raise ModelError(f"{meta}: unreadable ({err})") from None
        for name in _file_names(metas):
            if not (path / name).is_file():
                missing.append(name)
        if isinstance(metas, dict) and isinstance(metas.get("config"), str):
            config = path / metas["config"]
        if isinstance(metas, dict) and isinstance(metas.get("init_param"), str):
            weights = path / metas["init_param"]
    for required in (config, weights):
        if not required.is_file() and required.name not in missing:
            missing.append(required.name)
    if config.is_file() and _frontend(config) in _FRONTENDS_WITH_CMVN and not (path / "am.mvn").is_file():
        missing.append("am.mvn")
    if missing:
        what = ", ".join(sorted(set(missing)))
        raise ModelError(
            f"{path}: incomplete model directory, missing {what}. FunASR would run it with random weights or "
            "unnormalised features without saying so; download the model again (asrd model fetch)."
        )


def _file_names(metas: object) -> list[str]:
    if isinstance(metas, str):
        return [metas]
    if isinstance(metas, dict):
        return [name for value in metas.values() for name in _file_names(value)]
    return []


def _frontend(config: Path) -> str | None:
    # A line-level read is enough for the top-level "frontend:" key and avoids a YAML dependency here.
    for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("frontend:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


class DownloadMeter:
    """Bytes downloaded and expected so far, summed over a model's files as the hub library reports them.

    The libraries learn a file's size when they start it, so ``total`` grows while files start (the
    weights file, nearly all of a model, starts among the first). Hook threads write, one reader reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._total = 0
        self._bars: list[Any] = []
        self.active = False  # a download has begun (the hub answered)

    def expect(self, size: int) -> None:
        with self._lock:
            self._total += max(0, int(size))

    def add(self, size: int) -> None:
        with self._lock:
            self._done += max(0, int(size))

    def watch(self, bar: Any) -> None:
        """A progress bar whose ``n``/``total`` are bytes (Hugging Face updates them in place)."""
        with self._lock:
            self._bars.append(bar)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            done = self._done + sum(int(getattr(b, "n", 0) or 0) for b in self._bars)
            total = self._total + sum(int(getattr(b, "total", 0) or 0) for b in self._bars)
        return done, max(done, total)


class Hub(Protocol):
    """Where hub ids come from: a real hub (ModelScope, Hugging Face) or a test's stand-in."""

    key: str  # "ms" or "hf": which alias table applies

    def cached(self, model_id: str) -> Path | None: ...

    def check_reachable(self, model_id: str) -> None: ...

    def download(self, model_id: str, meter: DownloadMeter | None) -> Path: ...


class RealHub:
    """ModelScope or Hugging Face through their client libraries, imported only when used (never by
    the daemon process: the model worker and `asrd model` do the downloading)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def cached(self, model_id: str) -> Path | None:
        try:
            if self.key == "hf":
                from huggingface_hub import snapshot_download as hf_download

                return Path(hf_download(model_id, local_files_only=True))
            from modelscope.hub.snapshot_download import snapshot_download as ms_download

            return Path(ms_download(model_id, local_files_only=True))
        except Exception:  # every "not cached" flavour of both libraries
            return None

    def check_reachable(self, model_id: str) -> None:
        check_reachable(model_id, self.key)

    def download(self, model_id: str, meter: DownloadMeter | None) -> Path:
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")  # per read, so a stalled server cannot hang us
        if self.key == "hf":
            from huggingface_hub import snapshot_download as hf_download

            if meter is None:
                return Path(hf_download(model_id))
            return Path(hf_download(model_id, tqdm_class=_hf_bar_class(meter)))
        from modelscope.hub.snapshot_download import snapshot_download as ms_download

        if meter is None:
            return Path(ms_download(model_id))
        return Path(ms_download(model_id, progress_callbacks=[_ms_callback_class(meter)]))


def _ms_callback_class(meter: DownloadMeter) -> type:
    """ModelScope's per-file progress hook (``progress_callbacks``, verified on modelscope 1.40 /
    modelscope_hub 0.5): instantiated as ``cls(filename, file_size)``, then ``update(bytes)``."""
    from modelscope.hub.callback import ProgressCallback

    class _Callback(ProgressCallback):
        def __init__(self, filename: str, file_size: int) -> None:
            super().__init__(filename, file_size)
            meter.expect(file_size)

        def update(self, size: int) -> None:
            meter.add(size)

    return _Callback


def _hf_bar_class(meter: DownloadMeter) -> type:
    """Hugging Face's hook (``snapshot_download(tqdm_class=)``, verified on huggingface_hub 2.4): every
    file's bytes are summed into one bar described "Reconstructing ..." (bytes written to disk), whose
    total grows as files start. The bars draw nowhere: the worker reports progress to the daemon."""
    from tqdm.auto import tqdm

    class _Silent:
        def write(self, _text: str) -> None:
            pass

        def flush(self) -> None:
            pass

    class _Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = _Silent()
            super().__init__(*args, **kwargs)
            if kwargs.get("unit") == "B" and str(kwargs.get("desc", "")).startswith("Reconstructing"):
                meter.watch(self)

    return _Bar


def _as_hub(hub: str | Hub) -> Hub:
    return RealHub(hub) if isinstance(hub, str) else hub


def _probe_url(model_id: str, hub: str) -> str:
    if hub == "hf":
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"{endpoint}/api/models/{model_id}"
    domain = os.environ.get("MODELSCOPE_DOMAIN", "www.modelscope.cn")
    return f"https://{domain}/api/v1/models/{model_id}"


def check_reachable(model_id: str, hub: str, timeout: float = REACH_TIMEOUT) -> None:
    """Ask the hub about the model with a short timeout; ModelError saying what to do if it does not answer."""
    url = _probe_url(model_id, hub)
    try:
        # A fresh opener reads the proxy settings of now; urlopen() would build the process-wide one
        # from whatever the environment said at its first call, and keep it.
        with urllib.request.build_opener().open(url, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        if err.code in (401, 403, 404):
            raise ModelError(f"model {model_id!r} was not found on the {_hub_name(hub)} hub ({err.code})") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise ModelError(
            f"cannot download model {model_id!r}: the {_hub_name(hub)} hub could not be reached "
            f"({reason}; gave up after at most {timeout:g} s). Set [model] name to a local model directory, or run "
            "`asrd model fetch` on this machine while it is online."
        ) from None


def _hub_name(hub: str) -> str:
    return "Hugging Face" if hub == "hf" else "ModelScope"


def resolve(name: str, hub: str | Hub, *, download: bool = True, meter: DownloadMeter | None = None) -> Path:
    """A checked local directory for ``name``: a local path, a cached download, or a fresh download."""
    if is_local(name):
        return check_local(name)
    source = _as_hub(hub)
    model_id = hub_id(name, source.key)
    cached = source.cached(model_id)
    if cached is not None:
        check_model_dir(cached)
        return cached
    if not download:
        raise ModelError(f"model {model_id!r} is not downloaded yet; run `asrd model fetch` while online")
    return fetch(name, source, meter=meter)


def check_local(name: str) -> Path:
    """A local model directory, checked without touching any hub (what the daemon does before READY)."""
    path = Path(name).expanduser()
    check_model_dir(path)
    return path


def fetch(name: str, hub: str | Hub, *, meter: DownloadMeter | None = None) -> Path:
    """Download a hub model into the cache (or find it there) and check it. ``meter``, when given,
    receives the download's progress (the libraries draw their own bars otherwise)."""
    if is_local(name):
        return resolve(name, hub, download=False)
    source = _as_hub(hub)
    model_id = hub_id(name, source.key)
    source.check_reachable(model_id)
    log.info("downloading %s from %s", model_id, _hub_name(source.key))
    if meter is not None:
        meter.active = True
    try:
        path = source.download(model_id, meter)
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(f"downloading {model_id!r} from {_hub_name(source.key)} failed: {err}") from None
    check_model_dir(path)
    return path
