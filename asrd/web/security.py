"""Who may use the dashboard: a Host allowlist, a cross-site guard on changes, and the login modes.

- Host: an IP address, ``localhost`` or a name in ``[web] allowed_hosts``. A page that reached us through
  any other name is a DNS-rebinding attempt (a hostile site whose name now points at this machine).
- Changes (any method but GET/HEAD/OPTIONS): refused when the browser says the request comes from another
  site (``Sec-Fetch-Site``) or its ``Origin`` is neither this host nor an allowed one (CSRF). Clients that
  send neither header (curl, scripts) are not browsers and cannot be made to send requests by a web page.
- Login: ``token`` (cookie set by /login, or ``Authorization: Bearer``), ``proxy`` (a trusted proxy names
  the user), ``none``/``auto`` (no login; ``auto`` is loopback only, enforced by the config).
Every refusal says which setting to change.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from asrd.config import WebSettings
from asrd.control.statedir import WEB_TOKEN_NAME

log = logging.getLogger("asrd.web")

TOKEN_NAME = WEB_TOKEN_NAME
COOKIE = "asrd_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = ("/login", "/static/")  # reachable before logging in (still behind the Host check)


@dataclass(frozen=True)
class Policy:
    auth: str  # "auto", "token", "proxy", "none"
    allowed_hosts: frozenset[str]
    token: str | None = None
    trusted_proxies: frozenset[str] = frozenset()
    user_header: str = "remote-user"

    @classmethod
    def from_settings(cls, web: WebSettings, state_dir: Path | None) -> Policy:
        token = None
        if web.auth == "token":
            if state_dir is None:
                raise ValueError('[web] auth = "token" needs a state directory to keep the token in')
            token = load_token(state_dir)
        if web.auth == "none" and not web.loopback:
            log.warning("the dashboard on %s has no login ([web] auth = \"none\"): anyone who can reach it can "
                        "see every file and stop or retry work", web.listen)
        return cls(
            web.auth, frozenset(h.lower() for h in web.allowed_hosts), token,
            frozenset(web.trusted_proxies), web.proxy_user_header.lower(),
        )


def load_token(state_dir: Path) -> str:
    """The dashboard token: created once (random, mode 0600) and kept in the state directory."""
    path = state_dir / TOKEN_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # created meanwhile by another process: use that one
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    log.info("created the dashboard token in %s", path)
    return token


def _hostname(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0].lower()
    return netloc.rpartition(":")[0].lower() if netloc.count(":") == 1 else netloc.lower()


def _host_ok(name: str, policy: Policy) -> bool:
    if name in ("localhost", *policy.allowed_hosts):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True  # DNS rebinding needs a name: a literal address cannot be rebound


def _same_origin(origin: str, host: str, policy: Policy) -> bool:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (sandboxed frames, file://) and anything odd
    return parts.netloc.lower() == host.lower() or (parts.hostname or "") in policy.allowed_hosts


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    login: bool = False  # a page request without a login: send the browser to /login


def check(policy: Policy, method: str, path: str, headers: dict[str, str], client: str | None) -> Refusal | None:
    """None when the request may go on; else why not. ``headers`` have lower-case names."""
    host = headers.get("host", "")
    name = _hostname(host)
    if not _host_ok(name, policy):
        return Refusal(421, f"the dashboard does not answer to the name {name!r}: add it to [web] allowed_hosts")
    if method not in SAFE_METHODS:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return Refusal(403, f"refused a change sent from another site (Sec-Fetch-Site: {site})")
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host, policy):
            return Refusal(403, f"refused a change sent from {origin}: if that is this dashboard behind a proxy, "
                                "add its host name to [web] allowed_hosts")
    if path.startswith(OPEN_PATHS):
        return None
    if policy.auth == "token":
        assert policy.token is not None
        given = _bearer(headers.get("authorization", "")) or _cookie(headers.get("cookie", ""), COOKIE)
        if not given or not hmac.compare_digest(given.encode(), policy.token.encode()):
            return Refusal(401, "log in with the token from the state directory (file web-token)", login=True)
    elif policy.auth == "proxy":
        if client not in policy.trusted_proxies:
            return Refusal(403, f"only a trusted proxy may connect ([web] trusted_proxies); {client} is not one")
        if not headers.get(policy.user_header):
            return Refusal(401, f"the proxy named no user ([web] proxy_user_header = {policy.user_header!r})")
    return None


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def token_matches(policy: Policy, given: str) -> bool:
    return policy.token is not None and hmac.compare_digest(given.encode(), policy.token.encode())


def cookie_header(token: str, secure: bool) -> str:
    return f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")


class Guard:
    """ASGI middleware applying ``check`` to every HTTP request before the app sees it."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        refusal = check(self.policy, scope["method"], scope["path"], headers, client[0] if client else None)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        wants_page = not scope["path"].startswith("/api/") and "text/html" in headers.get("accept", "")
        if refusal.login and wants_page:
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/login"), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        body = json.dumps({"error": refusal.message}).encode()
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
