"""The review app's outer layer: security headers, the ``Host`` allow-list and the token.

:class:`Guard` wraps the Starlette application (plain ASGI, before any route runs):

* every answer carries :data:`SECURITY_HEADERS`: a Content-Security-Policy that lets the
  page load script, style and pictures only from the server itself (no inline script,
  no ``eval``, no plug-ins, ``frame-ancestors 'none'``), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``;
* a request whose ``Host`` is not in the allow-list gets 400 (DNS rebinding: a web page
  elsewhere cannot make the browser talk to the app under another name);
* with ``require_token`` (a server bound to a non-loopback address), every request,
  reads included, needs the session token: in the URL printed at start
  (``/?token=...``, answered with a redirect that drops it from the address bar and sets
  an HttpOnly, SameSite=Strict cookie), then the cookie or the ``X-Review-Token``
  header. Without it: 401, and nothing about the batch is said.

Requests that change anything also need the ``X-Review-Token`` header on every server
(checked by the routes): a cookie alone never authorises a change.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LOOPBACK_HOSTS", "SECURITY_HEADERS", "Guard", "cookie_name", "host_of"]

#: Sent with every answer of the review app.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
#: Host names of this machine's loopback interface, always allowed.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_NO_TOKEN = (
    "this review server needs its token: open the address it printed when it started "
    "(with ?token=...)"
)


def cookie_name(port: int) -> str:
    """The token cookie of the server on ``port`` (cookies do not tell ports apart)."""
    return f"instacolor_review_{int(port)}"


def host_of(value: str) -> str:
    """The host name of a ``Host`` header, without its port, lower case."""
    value = value.strip().lower()
    if value.startswith("["):  # [v6]:port
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    return value.split(":", 1)[0]


class Guard:
    """ASGI middleware: security headers, ``Host`` allow-list, token on every request.

    Args:
        app: the application to guard.
        token: the session token.
        allowed_hosts: ``Host`` names accepted (``"*"``: any; :data:`LOOPBACK_HOSTS`
            are always added).
        require_token: ask for the token on every request, reads included.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        allowed_hosts: Iterable[str] = ("*",),
        require_token: bool = False,
    ) -> None:
        self.app = app
        self.token = token.encode()
        hosts = {host_of(h) for h in allowed_hosts}
        self.any_host = "*" in hosts
        self.hosts = hosts | set(LOOPBACK_HOSTS)
        self.require_token = require_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        headers = Headers(scope=scope)
        if not self.any_host and host_of(headers.get("host", "")) not in self.hosts:
            await _answer(send_secured, 400, "this server does not answer to this Host name "
                          "(pass --allowed-host NAME when starting it)")  # fmt: skip
            return
        if self.require_token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            port = (scope.get("server") or ("", 0))[1] or 0
            if self._valid(query.get("token")):
                if scope["method"] in ("GET", "HEAD"):  # drop it from the address bar
                    await self._redirect(scope, query, port, send_secured)
                    return
            elif not (
                self._valid(_cookie(headers, cookie_name(port)))
                or self._valid(headers.get("x-review-token"))
            ):
                await _answer(send_secured, 401, _NO_TOKEN)
                return
        await self.app(scope, receive, send_secured)

    def _valid(self, given: str | None) -> bool:
        return bool(given) and secrets.compare_digest(given.encode(), self.token)

    async def _redirect(self, scope: Scope, query: dict, port: int, send: Send) -> None:
        rest = urlencode({k: v for k, v in query.items() if k != "token"})
        target = scope.get("root_path", "") + scope["path"] + (f"?{rest}" if rest else "")
        cookie = f"{cookie_name(port)}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", target.encode("latin-1", "replace")),
            (b"set-cookie", cookie.encode()), (b"cache-control", b"no-store"),
            (b"content-length", b"0")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
