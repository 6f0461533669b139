"""Guards in front of every route: the API key and the upload size limit (pure ASGI, so they cover the
WebSocket and the start of a request body too)."""
from __future__ import annotations

import hmac
import ipaddress
import json
from http.cookies import SimpleCookie
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_KEY_HEADER = "x-api-key"
API_KEY_COOKIE = "fakescope_key"
API_KEY_ENV = "FAKESCOPE_API_KEY"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """The key a request carries: ``X-API-Key``, ``Authorization: Bearer KEY`` or the page's cookie."""
    if API_KEY_HEADER.encode() in headers:
        return headers[API_KEY_HEADER.encode()].decode("latin-1")
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie header carries no key
        return None
    morsel = cookie.get(API_KEY_COOKIE)
    return morsel.value if morsel is not None else None


KEY_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fakescope: API key</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:system-ui,sans-serif;max-width:30em;margin:4em auto">
<h1>fakescope</h1><p>This server needs its API key.</p>
<form id="key"><input id="value" type="password" autocomplete="current-password" placeholder="API key" required>
<button>Continue</button></form>
<script>document.getElementById("key").addEventListener("submit", (event) => {
  event.preventDefault();
  document.cookie = "fakescope_key=" + encodeURIComponent(document.getElementById("value").value)
    + "; path=/; SameSite=Strict";
  location.reload();
});</script></body></html>"""


class RequireApiKey:
    """Refuses any HTTP request or WebSocket without the key: 401 (a page asking for it, for a browser), or a
    WebSocket closed before it opens."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = presented_key(headers)
        if key is not None and hmac.compare_digest(key.encode("utf-8", "replace"), self.api_key):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong API key"})
            return
        wants_page = b"text/html" in headers.get(b"accept", b"") and scope["method"] == "GET"
        if wants_page:
            await _respond(send, 401, KEY_PAGE.encode(), "text/html; charset=utf-8")
        else:
            body = json.dumps({"detail": "missing or wrong API key (send it as X-API-Key)"}).encode()
            await _respond(send, 401, body, "application/json", [(b"www-authenticate", b"Bearer")])


class LimitUploadSize:
    """413 for a request body over ``max_bytes``: at once from its Content-Length, or as soon as that many bytes
    have arrived (a chunked upload)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_bytes:
            await _respond(send, 413, json.dumps({"detail": self.message}).encode(), "application/json")
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def message(self) -> str:
        return f"the upload is larger than this server's limit of {self.max_bytes} bytes"


async def _respond(send: Send, status: int, body: bytes, content_type: str,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers: list[Any] = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
