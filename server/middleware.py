"""Pure-ASGI middleware of the operator service: request-size limit, security headers, and
which peer is the client when a reverse proxy is in front.

Pure ASGI (not Starlette's BaseHTTPMiddleware) so the size limit sees each body chunk as it
arrives, before anything buffers the body, and WebSocket handshakes pass through untouched.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _json_response(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            # The unread rest of the body must not be parsed as a request.
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for a request body over `max_bytes`.

    A declared Content-Length over the limit is refused before a byte is read. Otherwise
    (chunked bodies, or a Content-Length that lies) the bytes are counted as the app reads
    them; past the limit the app is told the client left, whatever it started to answer is
    dropped, and the 413 is sent instead.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return (f"request body larger than {self.max_bytes} bytes (server.max_body_bytes); "
                "send less, or ask the admin to raise the limit")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _json_response(send, 413, self._detail())
                return
        received = 0
        exceeded = False
        replied = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replied
            if exceeded:
                if not replied:
                    replied = True
                    await _json_response(send, 413, self._detail())
                return  # the app's own answer to a body it never fully got
            if message["type"] == "http.response.start":
                replied = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
            log.debug("request body over %d bytes: the app gave up reading it", self.max_bytes)
        if exceeded and not replied:
            await _json_response(send, 413, self._detail())


# The built UI (server/ui) loads its script and CSS from /assets, shows live frames
# from blob: URLs, calibration previews from data: URLs and episode videos from the API,
# talks to /api and /ws/live (same origin: 'self' covers ws:/wss: in CSP Level 3), and
# Svelte writes style="" attributes (bar widths, colours), hence 'unsafe-inline' for styles
# only. Scripts: 'self' only, so injected markup cannot run code.
APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
           "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
           "frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN with an inline script.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net "
            "https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: "
            "https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src 'self' blob:; "
            "object-src 'none'; base-uri 'self'; frame-ancestors 'none'")
_DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds CSP, X-Frame-Options, X-Content-Type-Options and Referrer-Policy to every HTTP
    response (errors and 413s included) unless the response set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(_DOCS_PATHS) else APP_CSP
        extra = [(b"content-security-policy", csp.encode()),
                 (b"x-frame-options", b"DENY"),
                 (b"x-content-type-options", b"nosniff"),
                 (b"referrer-policy", b"same-origin"),
                 (b"cross-origin-opener-policy", b"same-origin")]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in extra if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedProxyHeaders:
    """Believe X-Forwarded-For only from the configured proxies.

    With no trusted proxies (the default) the header is ignored: the TCP peer is the client
    for the login rate limit and the audit log, so rotating the header buys nothing. From a
    trusted proxy, the client is the right-most address in the header that is not itself a
    trusted proxy (the left part is whatever the client claimed).
    """

    def __init__(self, app: ASGIApp, trusted: tuple[str, ...]) -> None:
        self.app = app
        self.networks = tuple(ipaddress.ip_network(t, strict=False) for t in trusted)

    def trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (scope["type"] in ("http", "websocket") and self.networks and client
                and self.trusted(client[0])):
            hops = [hop.strip() for name, value in scope.get("headers", ())
                    if name == b"x-forwarded-for"
                    for hop in value.decode("latin-1").split(",") if hop.strip()]
            real = client[0]
            for hop in reversed(hops):
                real = hop
                if not self.trusted(hop):
                    break
            if real != client[0]:
                scope = {**scope, "client": (real, 0)}
        await self.app(scope, receive, send)
