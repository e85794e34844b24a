"""What each inbox and the model worker get from the settings: an inbox's effective keys (its own, else the
global sections) and the worker's EngineSpec, both computed once per (re)load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asrd.config import EnergySettings, InboxSettings, ModelSettings, OutputSettings, Settings, VadSettings
from asrd.control import apiinbox
from asrd.output.cuerules import DEFAULT_RULES, CueRules
from asrd.recognizer import RecognizeOptions
from asrd.worker.protocol import EngineSpec


@dataclass(frozen=True)
class InboxView:
    """An inbox's effective settings: its own keys, else the global sections."""

    key: str
    settings: InboxSettings
    options: RecognizeOptions
    output: OutputSettings
    rules: CueRules = DEFAULT_RULES
    # Options per file instead of per inbox (the API inbox: each upload says its language).
    options_for: Callable[[RecognizeOptions, Path], RecognizeOptions] | None = None
    private: bool = False  # an internal inbox (the API's): its sidecars are nobody's library
    alerts: tuple[str, ...] = ()  # keyword alerts: the inbox's own, else [transcribe] alerts

    def file_options(self, path: Path) -> RecognizeOptions:
        return self.options if self.options_for is None else self.options_for(self.options, path)


def inbox_views(settings: Settings) -> dict[str, InboxView]:
    views = {}
    internal = (apiinbox.api_inbox(settings),) if apiinbox.enabled(settings) else ()
    for configured in (*settings.inbox, *internal):
        # Resolved once, so job paths and `asrd retry FILE` agree however the folder was named.
        inbox = configured.model_copy(update={"path": configured.path.resolve()})
        t, o = settings.transcribe, settings.output
        options = RecognizeOptions(
            language=inbox.language or t.language,
            itn=t.itn,
            hotwords=inbox.hotwords if inbox.hotwords is not None else t.hotwords,
        )
        output = OutputSettings(
            formats=inbox.formats or o.formats,
            naming=inbox.naming or o.naming,
            output_dir=inbox.output_dir or o.output_dir,
            file_mode=o.file_mode,
            redo_missing=o.redo_missing,
        )
        key = str(inbox.path)
        private = configured in internal
        alerts = inbox.alerts if inbox.alerts is not None else t.alerts
        views[key] = InboxView(key, inbox, options, output, CueRules.from_settings(settings.subtitles),
                               apiinbox.options_for if private else None, private, alerts=alerts)
    return views


def engine_spec(settings: Settings, model_dir: str | None) -> EngineSpec:
    """What the worker loads, from the validated settings. Keys the worker does not use are pinned to
    their defaults, so changing one on reload does not restart a worker that would load the same."""
    model = settings.model.model_copy(update={"idle_unload_seconds": _MODEL_DEFAULTS.idle_unload_seconds})
    vad = settings.vad
    if vad.engine != "fsmn":
        vad = vad.model_copy(update={"fsmn_model": _VAD_DEFAULTS.fsmn_model})
    # The worker uses only the meter's keys; intensity, price and the sidecar block are the daemon's.
    energy = _ENERGY_DEFAULTS.model_copy(update={
        k: getattr(settings.energy, k) for k in ("meter", "watts_per_core", "plug_factor")
    })
    cluster = settings.cluster if settings.cluster.enabled else None
    return EngineSpec(model_dir=model_dir, model=model, vad=vad, energy=energy, log_level=settings.daemon.log_level,
                      cluster=cluster)


_MODEL_DEFAULTS = ModelSettings()
_VAD_DEFAULTS = VadSettings()
_ENERGY_DEFAULTS = EnergySettings()
