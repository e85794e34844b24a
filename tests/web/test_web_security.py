"""Host allowlist (DNS rebinding), the cross-site guard on changes (CSRF), and the login modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from asrd.config import ConfigError, load_settings
from asrd.web.security import COOKIE, TOKEN_NAME, Policy, load_token

LOOPBACK = Policy("auto", frozenset())


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "192.168.1.20:8765", "nas.lan"])
def test_host_allowed(make_client: Callable[..., TestClient], host: str) -> None:
    client = make_client(Policy("auto", frozenset({"nas.lan"})))
    assert client.get("/api/status", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8765", "attacker.test", "127.0.0.1.evil.example"])
def test_rebinding_names_refused_and_the_setting_named(client: TestClient, host: str) -> None:
    answer = client.get("/api/status", headers={"host": host})
    assert answer.status_code == 421
    assert "allowed_hosts" in answer.json()["error"]
    assert client.get("/", headers={"host": host}).status_code == 421  # pages too


def test_cross_site_changes_refused(client: TestClient) -> None:
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:8765"},
                    {"origin": "http://127.0.0.1:9999"}):
        answer = client.post("/api/pause", headers=headers)
        assert answer.status_code == 403, headers
    # nothing was paused by the refused requests
    assert not client.app.state.port.controls.paused


def test_same_origin_and_non_browser_changes_pass(client: TestClient) -> None:
    for headers in ({"origin": "http://127.0.0.1:8765", "sec-fetch-site": "same-origin"}, {}):
        assert client.post("/api/pause", headers=headers).status_code == 200, headers


def test_proxied_origin_allowed_by_name(make_client: Callable[..., TestClient]) -> None:
    client = make_client(Policy("auto", frozenset({"nas.example.org"})))
    answer = client.post("/api/pause", headers={"origin": "https://nas.example.org"})
    assert answer.status_code == 200


def test_reads_need_no_origin_check(client: TestClient) -> None:
    assert client.get("/api/status", headers={"origin": "http://evil.example"}).status_code == 200


@pytest.fixture
def token_client(make_client: Callable[..., TestClient], tmp_path: Path) -> tuple[TestClient, str]:
    token = load_token(tmp_path)
    return make_client(Policy("token", frozenset(), token)), token


def test_token_file_private_and_stable(tmp_path: Path) -> None:
    token = load_token(tmp_path)
    assert len(token) >= 40
    assert stat.S_IMODE(os.stat(tmp_path / TOKEN_NAME).st_mode) == 0o600
    assert load_token(tmp_path) == token


def test_token_required(token_client: tuple[TestClient, str]) -> None:
    client, token = token_client
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/status", headers={"authorization": f"Bearer {token}"}).status_code == 200
    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert client.get("/login").status_code == 200  # the login page itself is open
    assert client.get("/static/app.css").status_code == 200


def test_login_sets_a_strict_httponly_cookie(token_client: tuple[TestClient, str]) -> None:
    client, token = token_client
    bad = client.post("/login", data={"token": "nope"})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    good = client.post("/login", data={"token": token})
    assert good.status_code == 303
    cookie = good.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={token}") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    client.cookies.set(COOKIE, token)
    assert client.get("/api/status").status_code == 200
    assert client.post("/api/pause", headers={"origin": "http://evil.example"}).status_code == 403  # still CSRF-checked


def test_login_is_csrf_checked(token_client: tuple[TestClient, str]) -> None:
    client, token = token_client
    assert client.post("/login", data={"token": token}, headers={"origin": "http://evil.example"}).status_code == 403


def test_proxy_mode(make_client: Callable[..., TestClient]) -> None:
    # TestClient connects from "testclient"; trust it as the proxy in one client and not in the other.
    trusted = make_client(Policy("proxy", frozenset(), trusted_proxies=frozenset({"testclient"})))
    assert trusted.get("/api/status").status_code == 401  # no user named
    assert trusted.get("/api/status", headers={"remote-user": "ann"}).status_code == 200
    untrusted = make_client(Policy("proxy", frozenset(), trusted_proxies=frozenset({"127.0.0.1"})))
    answer = untrusted.get("/api/status", headers={"remote-user": "ann"})
    assert answer.status_code == 403 and "trusted_proxies" in answer.json()["error"]


def test_non_loopback_needs_a_login_setting() -> None:
    with pytest.raises(ConfigError, match="auth"):
        load_settings(None, {"web": {"enabled": True, "listen": "0.0.0.0:8765"}})
    with pytest.raises(ConfigError, match="auth"):
        load_settings(None, {"web": {"enabled": True, "listen": "nas.lan:8765"}})
    for auth in ("token", "proxy", "none"):
        assert load_settings(None, {"web": {"enabled": True, "listen": "0.0.0.0:8765", "auth": auth}}).web.auth == auth
    assert load_settings(None, {"web": {"enabled": True, "listen": "[::1]:8765"}}).web.loopback
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_settings(None, {"web": {"listen": "8765"}})


def test_auth_none_off_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    web = load_settings(None, {"web": {"enabled": True, "listen": "0.0.0.0:8765", "auth": "none"}}).web
    Policy.from_settings(web, None)
    assert "no login" in caplog.text
