"""The server's guards: loopback by default, a token otherwise, Host checks, body caps, headers.

One pure-ASGI middleware (it also wraps media streaming, so it must not buffer) does, in order:

1. Host header check (DNS rebinding): only the names the server is bound to are accepted.
2. Origin check (cross-site request forgery): a browser's request that another site started
   (``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` that is not this
   server's) is refused on every endpoint, reading or writing alike: a search is work and an
   answer, and loopback without a token is the default.
3. Token check when a token is set: ``Authorization: Bearer <token>`` or the cookie set from a
   one-time ``?token=`` link (a ``<video src>`` cannot send headers); the link answers with a
   redirect to the same URL without the token, so it leaves the address bar and history (only
   ever to a path of this server: ``//host/x`` would leave it).
4. Request body caps: ``Content-Length`` over the cap is refused before reading, and a body sent
   without one is counted as it streams (413 either way).
5. Security headers on every response (no CORS headers: browsers keep other origins out).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from vidsearch.errors import InputError

__all__ = ["COOKIE", "Guard", "BodyTooLarge", "is_loopback", "new_token", "allowed_host_names", "check_bind"]

COOKIE = "vidsearch_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The page loads only its own files; media and images come from this origin.
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    # another site may not embed the videos and stills (<img>, <video>), even in browsers that
    # send no Sec-Fetch-Site, nor keep a handle on this page's window
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def new_token() -> str:
    """A random token (what ``--token auto`` prints)."""
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only reaches this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a bind other machines can reach unless a token guards it.

    Raises:
        InputError: ``host`` is not loopback and ``token`` is None.
    """
    if not is_loopback(host) and not token:
        raise InputError(
            f"--host {host} lets other machines reach your videos; add --token TOKEN "
            "(or --token auto to generate one), or bind 127.0.0.1"
        )


def allowed_host_names(host: str, extra: tuple[str, ...] = ()) -> frozenset[str] | None:
    """Host header names to accept for a bind address; None accepts any (a wildcard bind).

    A wildcard bind (``0.0.0.0``, ``::``) answers on every address of the machine, whose names the
    server cannot know; the token guards it, and ``--allow-host`` narrows it.
    """
    names = {h.lower().strip("[]") for h in extra}
    h = host.lower().strip("[]")
    if h in ("0.0.0.0", "::", "") and not names:
        return None
    if h not in ("0.0.0.0", "::", ""):
        names.add(h)
    if is_loopback(h):
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8700
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware applying the rules of the module docstring."""

    def __init__(
        self,
        app: Any,
        *,
        hosts: frozenset[str] | None,
        token: str | None,
        max_body: int,
        max_upload: int,
        upload_paths: tuple[str, ...] = ("/api/v1/search",),
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.token = token
        self.max_body = max_body
        self.max_upload = max_upload
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.hosts is not None and _host_name(headers.get("host", "")) not in self.hosts:
            await _error(
                send,
                400,
                "this server does not answer for that Host name (DNS-rebinding guard); use the address it printed",
            )
            return
        refused = _cross_site(headers)
        if refused:
            await _error(send, 403, refused)
            return
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in query and scope["method"] == "GET":
                if not hmac.compare_digest(query["token"].encode(), self.token.encode()):
                    await _error(send, 401, "wrong token; use the link vidsearch serve printed")
                    return
                await self._redirect_with_cookie(scope, send, query)
                return
            if not self._authorized(headers):
                await _error(
                    send,
                    401,
                    "a token is required: open the link vidsearch serve printed, or send Authorization: Bearer TOKEN",
                )
                return
        limit = (
            self.max_upload
            if (scope["path"] in self.upload_paths and headers.get("content-type", "").startswith("multipart/"))
            else self.max_body
        )
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await _error(send, 413, f"request body too large (limit {limit // 1024} KiB)")
            return
        # the interactive /docs page loads its script from a CDN: it keeps FastAPI's own headers
        extra = _HEADERS if not scope["path"].startswith("/docs") else _HEADERS[:-1]
        await self.app(scope, _capped(receive, limit), _with_headers(send, extra))

    def _authorized(self, headers: dict[str, str]) -> bool:
        token = self.token.encode()  # type: ignore[union-attr]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 -- a malformed cookie header is just no token
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), token)

    async def _redirect_with_cookie(self, scope: Scope, send: Send, query: dict[str, str]) -> None:
        rest = {k: v for k, v in query.items() if k != "token"}
        location = _same_origin_path(scope["path"]) + (("?" + urlencode(rest)) if rest else "")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                    *_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _same_origin_path(path: str) -> str:
    """``path`` as a redirect target that stays on this server.

    ``//evil.example/x`` (and ``/\\evil.example``, which browsers read alike) is a URL of another
    host: its slashes and backslashes at the start collapse to one.
    """
    return "/" + path.lstrip("/\\")


def _cross_site(headers: dict[str, str]) -> str | None:
    """Why a request that another web site made a browser send is refused (None: it is not one).

    Browsers send ``Sec-Fetch-Site`` (``none`` for a typed address or bookmark) and ``Origin`` on
    cross-origin requests; clients like curl send neither and are let through (the token, when
    set, guards them).
    """
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site and site not in ("same-origin", "none"):
        return f"refused a {site} request: open vidsearch at its own address, other sites may not use it"
    origin = headers.get("origin")
    if origin is None:
        return None
    origin = origin.strip().lower()
    host = headers.get("host", "").strip().lower()
    if origin.split("://", 1)[-1] != host or not origin.startswith(("http://", "https://")):
        return "refused a request from another origin: open vidsearch at its own address, other sites may not use it"
    return None


class BodyTooLarge(Exception):
    """A request body that went past its cap while streaming in (answered with 413)."""


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
