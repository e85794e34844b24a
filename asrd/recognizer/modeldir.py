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
import urllib.error
import urllib.request
from pathlib import Path

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


def _cached(model_id: str, hub: str) -> Path | None:
    try:
        if hub == "hf":
            from huggingface_hub import snapshot_download as hf_download

            return Path(hf_download(model_id, local_files_only=True))
        from modelscope.hub.snapshot_download import snapshot_download as ms_download

        return Path(ms_download(model_id, local_files_only=True))
    except Exception:  # every "not cached" flavour of both libraries
        return None


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
        with urllib.request.urlopen(url, timeout=timeout):
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


def resolve(name: str, hub: str, *, download: bool = True) -> Path:
    """A checked local directory for ``name``: a local path, a cached download, or a fresh download."""
    if is_local(name):
        path = Path(name).expanduser()
        check_model_dir(path)
        return path
    model_id = hub_id(name, hub)
    cached = _cached(model_id, hub)
    if cached is not None:
        check_model_dir(cached)
        return cached
    if not download:
        raise ModelError(f"model {model_id!r} is not downloaded yet; run `asrd model fetch` while online")
    return fetch(name, hub)


def fetch(name: str, hub: str) -> Path:
    """Download a hub model into the cache (or find it there) and check it."""
    if is_local(name):
        return resolve(name, hub, download=False)
    model_id = hub_id(name, hub)
    check_reachable(model_id, hub)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")  # per read, so a stalled server cannot hang us
    log.info("downloading %s from %s", model_id, _hub_name(hub))
    try:
        if hub == "hf":
            from huggingface_hub import snapshot_download as hf_download

            path = Path(hf_download(model_id))
        else:
            from modelscope.hub.snapshot_download import snapshot_download as ms_download

            path = Path(ms_download(model_id))
    except Exception as err:
        raise ModelError(f"downloading {model_id!r} from {_hub_name(hub)} failed: {err}") from None
    check_model_dir(path)
    return path
