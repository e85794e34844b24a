"""The notification helper process: ``python -m asrd.control.notify_send`` reads deliveries (JSON) on stdin,
sends them, and writes one result per delivery (JSON) on stdout.

A separate short-lived process, so Apprise (~40 MB, 0.5 s to import) never enters the long-running daemon.
http(s):// targets are plain webhooks: the payload POSTed as is, signed with HMAC-SHA256 of the raw body in
``X-Asrd-Signature: sha256=<hex>``. Anything else is an Apprise URL. Messages to one target go in order; after
one fails, the rest for that target are not tried in this run (the daemon retries them together, later).
Errors name the host only: URLs and secrets may hold credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from asrd import __version__
from asrd.config import redact_url
from asrd.control.notify import Delivery, Result

WEBHOOK_TIMEOUT = 10.0
SIGNATURE_HEADER = "X-Asrd-Signature"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, secret: str, event: str, body: bytes) -> None:
    """POST ``body`` (JSON); raises OSError (urllib's errors are OSErrors) unless the answer is 2xx."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": f"asrd/{__version__}",
               "X-Asrd-Event": event}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    # A fresh opener: urlopen()'s process-wide one keeps the proxy settings of its first call.
    with urllib.request.build_opener().open(request, timeout=WEBHOOK_TIMEOUT) as answer:
        answer.read()


def message(doc: dict[str, Any]) -> tuple[str, str]:
    """Title and body of a human-readable message (Apprise targets: phones, chats, mail)."""
    event = doc.get("event", "")
    if event == "summary":
        title = f"asrd: {doc['files']} file(s), {doc['hours']:.2f} h, {len(doc['alerts'])} alert(s) today"
        lines = [f"{a['alert']}: {a['file']} at {_clock(a['start'])}: {a['excerpt']}" for a in doc["alerts"][:20]]
        if doc.get("failed"):
            lines.append(f"{doc['failed']} file(s) failed")
        return title, "\n".join(lines) or "nothing alarming"
    if event == "test":
        return "asrd: test", str(doc.get("excerpt", ""))
    name = doc.get("name", "")
    if event == "alert":
        words = ", ".join(dict.fromkeys(a["alert"] for a in doc["alerts"]))
        lines = [f"[{_clock(a['start'])}] {a['excerpt']}" for a in doc["alerts"][:10]]
        return f"asrd alert ({words}): {name}", "\n".join(lines)
    if event == "done":
        return f"asrd: transcribed {name} ({_clock(doc.get('duration', 0))})", str(doc.get("excerpt", ""))
    return f"asrd: {event} {name}", str(doc.get("reason") or "")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _apprise(url: str, doc: dict[str, Any]) -> None:
    try:
        import apprise  # here only: this process exists so the daemon never imports it
    except ImportError:
        raise OSError("Apprise URLs need apprise: pip install 'asrd[notify]'") from None

    box = apprise.Apprise()
    if not box.add(url):
        raise ValueError("not a URL Apprise knows")
    title, body = message(doc)
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = box.notify(title=title, body=body)
    if not ok:
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        raise OSError(lines[-1] if lines else "not delivered")


def _scrub(text: str, delivery: Delivery) -> str:
    for secret in (delivery.url, delivery.secret):
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


def deliver(deliveries: Sequence[Delivery]) -> list[Result]:
    """Send each delivery; one result each, in the same order."""
    results: list[Result] = []
    failed: dict[str, str] = {}  # url -> why, for this run
    for d in deliveries:
        if d.url in failed:
            results.append(Result(d.id, False, False, failed[d.url]))
            continue
        try:
            if d.url.lower().startswith(("http://", "https://")):
                post_webhook(d.url, d.secret, d.event, d.payload.encode("utf-8"))
            else:
                _apprise(d.url, json.loads(d.payload))
        except Exception as err:  # any failure of one target must leave the others and the results intact
            why = f"{redact_url(d.url)}: {_scrub(str(err) or type(err).__name__, d)}"
            failed[d.url] = why
            results.append(Result(d.id, False, True, why))
        else:
            results.append(Result(d.id, True, True))
    return results


def main() -> int:
    deliveries = [Delivery(**d) for d in json.loads(sys.stdin.read() or "[]")]
    json.dump([asdict(r) for r in deliver(deliveries)], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
