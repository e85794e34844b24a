"""The sections for what asrd talks to and reports: the dashboard and its APIs, notifications, media
servers, metrics, and energy accounting. The transcription sections are in ``sections.py``."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from asrd.config.sections import _Section, _split_list


class EnergySettings(_Section):
    """What each transcript cost in energy (README, "Energy"). Measured in the model worker only."""

    meter: Literal["auto", "rapl", "nvml", "estimated", "plug"] = "auto"
    """auto: the GPU's NVML counter when a GPU is used (needs ``asrd[gpu-energy]``) and the CPU's RAPL
    counters where readable, else an estimate; rapl / nvml: only that counter (else the estimate);
    estimated: always the estimate; plug: auto's numbers x ``plug_factor``."""
    watts_per_core: float = Field(10.0, gt=0, le=1000)
    """The estimate: watts one fully busy core adds (CPU seconds x this). 10 W is a middle value for
    desktop and server cores (laptop cores use 3-5 W, a busy server core up to ~15 W); measure with a
    wall-plug meter and set ``plug_factor`` for better."""
    plug_factor: float = Field(1.0, gt=0, le=100)
    """meter = "plug": a wall-plug meter's reading divided by asrd's for the same work (whole machine)."""
    grid_g_per_kwh: float = Field(0, ge=0)
    """Grid carbon intensity for CO2e, g per kWh; 0 = from ``zone`` (no CO2e when both are unset)."""
    zone: str = ""
    """Country code for a yearly average intensity from the bundled table (asrd/energy/grid.py, e.g.
    "DE", "FR", "GB", "US"); asrd never looks up where it is over the network."""
    price_per_kwh: float = Field(0, ge=0)
    """Electricity price for the cost column; 0 = no cost shown."""
    currency: str = "EUR"
    """The price's currency, as shown in reports."""
    in_sidecar: bool = True
    """Add a ``processing`` block (device, seconds, energy with its method, CO2e) to .json sidecars;
    false keeps re-runs byte for byte identical."""

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from asrd.energy.grid import ZONES_2023

        if value and value.strip().upper() not in ZONES_2023:
            raise ValueError(f"no bundled intensity for zone {value!r} (known: {', '.join(ZONES_2023)}); "
                             "set grid_g_per_kwh instead")
        return value.strip().upper()


class WebSettings(_Section):
    """The dashboard (``asrd[web]``): a thread in the daemon, imported only when enabled."""

    enabled: bool = False
    """Serve the web dashboard and JSON API from the daemon (needs the ``asrd[web]`` extra)."""
    listen: str = "127.0.0.1:8765"
    """HOST:PORT to listen on. Anything but a loopback address needs ``auth``."""
    auth: Literal["auto", "token", "proxy", "none"] = "auto"
    """auto = no login on loopback, refuse to start elsewhere; token = a random token kept in the state dir
    (``web-token``), sent once and kept in a cookie, or as ``Authorization: Bearer``; proxy = a trusted reverse
    proxy names the user in ``proxy_user_header``; none = no login even off loopback (warns at every start)."""
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    """Host names the dashboard answers to besides IP addresses and localhost (DNS-rebinding guard),
    e.g. ["nas.lan"]."""
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ("127.0.0.1", "::1")
    """auth = "proxy": addresses of the reverse proxies allowed to name the user."""
    proxy_user_header: str = Field("Remote-User", min_length=1)
    """auth = "proxy": the header in which the proxy names the logged-in user."""
    upload_max_mb: int = Field(4096, ge=0)
    """Largest upload (one request: the page sends each file on its own) in MiB; 0 = no uploads. Uploads are
    streamed to a temporary name in the inbox, never held in memory."""

    _split = field_validator("allowed_hosts", "trusted_proxies", mode="before")(_split_list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be HOST:PORT, e.g. "127.0.0.1:8765" or "[::1]:8765"')
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def loopback(self) -> bool:
        """Whether ``listen`` is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    @model_validator(mode="after")
    def _login_off_loopback(self) -> WebSettings:
        if self.enabled and self.auth == "auto" and not self.loopback:
            raise ValueError(
                f"listening on {self.listen} (not loopback) needs a login: set auth = \"token\" (or \"proxy\" behind a "
                "reverse proxy, or \"none\" to let anyone on the network in)"
            )
        return self


class ApiSettings(_Section):
    """Transcription endpoints other tools already speak, served by the dashboard's server (``[web]``)."""

    asr: bool = False
    """``POST /asr`` and ``/detect-language``, the API of whisper-asr-webservice (Bazarr's Whisper provider)."""
    openai: bool = False
    """``POST /v1/audio/transcriptions``, OpenAI's API (the ``openai`` SDK with ``base_url``)."""
    wait_seconds: float = Field(3600, gt=0)
    """How long a request waits for its job; after that it gets 202 and the job's URL (the job goes on)."""
    max_upload_mb: int = Field(4096, ge=1)
    """Largest upload accepted, in MiB (a refused one leaves nothing behind)."""
    keep_hours: float = Field(24, ge=0)
    """Uploads and their transcripts are deleted this long after they were sent; 0 = kept."""


class MediaServerSettings(_Section):
    """A Jellyfin, Emby or Plex server told to look at a folder once asrd has written subtitles into it."""

    kind: Literal["jellyfin", "emby", "plex"]
    """Which server this is."""
    url: str = Field(min_length=1)
    """Its base URL, e.g. "http://127.0.0.1:8096" (Jellyfin), "http://127.0.0.1:32400" (Plex)."""
    token: SecretStr = Field(SecretStr(""), repr=False)
    """Jellyfin/Emby: an API key (Dashboard > API Keys); Plex: an X-Plex-Token. Never logged."""
    section: int = Field(0, ge=0)
    """Plex only: the library section id to refresh; 0 = found from the folder (GET /library/sections)."""
    path_map: dict[str, str] = Field(default_factory=dict)
    """Folder prefixes as asrd sees them -> as the server sees them, e.g. {"/srv/media" = "/data/media"}."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/]+", value):
            raise ValueError('must be an http:// or https:// URL, e.g. "http://127.0.0.1:8096"')
        return value.rstrip("/")


NotifyEvent = Literal["done", "failed", "quarantined", "alert", "summary"]


NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)


class NotifySettings(_Section):
    """One notification target (a ``[[notify]]`` table); delivery is queued in the job database and retried."""

    url: str = Field(min_length=1)
    """An Apprise URL (ntfys://ntfy.sh/TOPIC, gotify://, tgram://, mailto://, discord://, json:// ...), or an
    http(s):// URL for a plain webhook: a JSON POST signed with ``secret``. Never logged (it may hold tokens)."""
    secret: str = ""
    """Plain webhooks: key of the ``X-Asrd-Signature: sha256=<hex>`` header (HMAC-SHA256 of the raw body);
    "" = unsigned. Never logged."""
    events: Annotated[tuple[NotifyEvent, ...], NoDecode] = ("done", "failed", "quarantined", "alert")
    """What to send: done, failed (a retry is due), quarantined, alert (a done file with keyword matches;
    replaces its done message), summary (one per day at ``summary_at``)."""
    inboxes: Annotated[tuple[Path, ...], NoDecode] = ()
    """Only files from these inbox folders; empty = every inbox."""
    summary_at: str = "08:00"
    """Local time (HH:MM) of the daily summary, when ``events`` has summary."""
    api: bool = False
    """Also files sent to the HTTP transcription endpoints (``[api]``: Bazarr's /asr, OpenAI's
    /v1/audio/transcriptions), in messages and summaries. Off: the caller gets its transcript in the answer,
    and a subtitle manager working through a library would send one message per episode."""

    _split = field_validator("events", "inboxes", mode="before")(_split_list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be an Apprise URL (SCHEME://...) or an http(s):// webhook URL")
        return value

    @field_validator("summary_at")
    @classmethod
    def _time(cls, value: str) -> str:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
        if not m or int(m[1]) > 23 or int(m[2]) > 59:
            raise ValueError('must be a local time HH:MM, e.g. "08:00"')
        return value

    @field_validator("inboxes")
    @classmethod
    def _expand(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(p.expanduser() for p in value)

    @property
    def webhook(self) -> bool:
        """A plain signed webhook (http/https), not an Apprise URL."""
        return self.url.lower().startswith(("http://", "https://"))

    def __repr__(self) -> str:  # the URL and secret may hold credentials: never in logs or tracebacks
        return f"NotifySettings(url={redact_url(self.url)!r}, events={self.events!r})"

    __str__ = __repr__


def redact_url(url: str) -> str:
    """SCHEME://HOST of a target URL, for logs: no user, password, token, path or query."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


class MetricsSettings(_Section):
    """Prometheus metrics (``asrd[notify]`` extra: prometheus-client)."""

    textfile_dir: Path | None = None
    """Write ``asrd.prom`` here for node_exporter's textfile collector (written atomically when a value
    changes); none = not written. With [web] enabled, the dashboard also serves them at /metrics."""
