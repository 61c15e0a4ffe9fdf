"""Requests from other sites, and pages other sites might frame.

L1 trusts whoever can reach it (or holds a token), and a browser can reach it on
behalf of any page it has open: a form or ``fetch`` on another site may send a
"simple" POST (``text/plain``, a form, no body at all) that needs no preflight, and a
name an attacker controls may be pointed at 127.0.0.1 (DNS rebinding) so that the
attacker's page reads L1 as its own. Browsers say where a request comes from
(``Origin``, ``Sec-Fetch-Site``) and which host they think they talk to (``Host``);
:class:`CrossSiteGuard` holds them to L1's own:

- a ``Host`` that is not one of L1's allowed hosts is 400, whatever the method;
- a POST, PUT, PATCH or DELETE a browser sends from another site is 403:
  ``Sec-Fetch-Site: cross-site``, ``same-site`` from an origin that is not L1's, or,
  where a browser sends no ``Sec-Fetch-Site``, an ``Origin`` that is not L1's;
- an endpoint that reads a JSON body refuses another ``Content-Type`` with 415.

A request with neither ``Origin`` nor ``Sec-Fetch-Site`` comes from no browser (the
CLI, curl, other services) and passes. The dashboard's pages get a
``Content-Security-Policy`` and the headers that keep them out of other sites' frames;
a download of a cached item is sandboxed, so that it never runs as a page of L1's.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from litestar.enums import RequestEncodingType
from litestar.middleware.base import DefineMiddleware

from l1.errors import Forbidden, InvalidInput, UnsupportedMediaType

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

    from l1.settings import Settings

__all__ = [
    "DOWNLOAD_HEADERS",
    "FRAMED_HEADERS",
    "PAGE_HEADERS",
    "CrossSiteGuard",
    "SitePolicy",
    "allowed_hosts",
    "cross_site_guard",
]

_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What an error message quotes of a header a client chose.
_QUOTED = 100
_SEEN_AT_MOST = 256

# The dashboard loads only its own stylesheet, script, pictures and videos. Its
# templates carry a few inline ``onerror`` handlers and ``style`` attributes (progress
# bars): attributes only, never an inline <script>.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; script-src-attr 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_NOT_FRAMED = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
PAGE_HEADERS = ((b"content-security-policy", PAGE_CSP.encode()), *_NOT_FRAMED)
# The API docs and the static files: Swagger UI runs inline script, so only framing
# is ruled out there.
FRAMED_HEADERS = ((b"content-security-policy", b"frame-ancestors 'none'"), *_NOT_FRAMED)
# A cached item is whatever someone uploaded: opened on its own, an HTML or SVG file
# must not run script as L1's origin.
DOWNLOAD_HEADERS = (
    (b"content-security-policy", b"sandbox"),
    (b"x-content-type-options", b"nosniff"),
)
_DOWNLOAD_ROUTE = "/cache/{content_hash}"  # as Litestar writes a route's path template


def allowed_hosts(settings: Settings, *, hostname: str | None = None) -> tuple[str, ...]:
    """The hosts L1 answers to: ``L1_ALLOWED_HOSTS``, or else where it listens (and the
    loopback names when that is loopback or every address, and this machine's name when
    it is every address), always with the host of ``L1_PUBLIC_URL``."""
    names = list(settings.allowed_hosts)
    if not names:
        names.append(_bracketed(settings.host))
        address = _address(settings.host)
        everywhere = settings.host == "" or (address is not None and address.is_unspecified)
        loopback = settings.host == "localhost" or (address is not None and address.is_loopback)
        if everywhere or loopback:
            names.extend(_LOOPBACK_NAMES)
        if everywhere:
            names.append(hostname if hostname is not None else socket.gethostname())
    public = urlsplit(settings.public_url).hostname
    if public:
        names.append(_bracketed(public))
    return tuple(dict.fromkeys(name.lower() for name in names if name))


@dataclass(frozen=True, slots=True)
class SitePolicy:
    """What counts as L1's own host and origin."""

    # ``*`` among the allowed hosts: any Host header will do.
    any_host: bool
    # Names allowed on any port, and ``name:port`` entries allowed on that port only.
    hosts: frozenset[bytes]
    # Origins that are L1's beside the one a request's own Host names: the public URL's.
    origins: frozenset[bytes]
    # Host headers found allowed, as sent: a server sees few, so most requests take one
    # look here. Bounded, since any port of an allowed name is allowed.
    _seen: set[bytes] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, hostname: str | None = None) -> SitePolicy:
        """The policy ``settings`` describe."""
        hosts = allowed_hosts(settings, hostname=hostname)
        return cls(
            any_host="*" in hosts,
            hosts=frozenset(_encoded(host) for host in hosts if host != "*"),
            origins=frozenset({_origin(settings.public_url).encode()}),
        )

    def host_allowed(self, host: bytes) -> bool:
        """Whether a request's ``Host`` header names this server."""
        if host in self._seen or self.any_host:
            return True
        if not self._names_this_server(host.lower()):
            return False
        if len(self._seen) < _SEEN_AT_MOST:
            self._seen.add(host)
        return True

    def _names_this_server(self, host: bytes) -> bool:
        if host in self.hosts:
            return True
        name, colon, port = host.rpartition(b":")
        return bool(colon) and port.isdigit() and name in self.hosts

    def origin_is_own(self, origin: bytes, host: bytes | None) -> bool:
        """Whether ``origin`` is this server's: the one the request's Host names (the
        browser's page came from here), or the public URL's."""
        if origin in self.origins:
            return True
        _, separator, authority = origin.lower().partition(b"://")
        return bool(separator) and host is not None and authority == host.lower()


def cross_site_guard(settings: Settings) -> DefineMiddleware:
    """The middleware, with the policy ``settings`` describe."""
    return DefineMiddleware(CrossSiteGuard, policy=SitePolicy.from_settings(settings))


@dataclass(frozen=True, slots=True)
class _Route:
    """What one route needs of the guard."""

    takes_json: bool
    headers: tuple[tuple[bytes, bytes], ...]


class CrossSiteGuard:
    """ASGI middleware: refuses requests from other sites and names, and adds the
    frame and content-type headers to the dashboard's pages and to downloads.

    Litestar builds one middleware stack per route and method, once a request matched
    it, so what a route needs (does it read JSON, which headers do its answers get) is
    worked out on its first request and kept; a request costs a look at four headers.
    """

    def __init__(self, app: ASGIApp, policy: SitePolicy) -> None:
        self.app = app
        self.policy = policy
        self._route: _Route | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = cast("HTTPScope", scope)
        route = self._route or self._learn(request)
        headers = dict(request["headers"])
        host = headers.get(b"host")
        if host is not None and not self.policy.host_allowed(host):
            raise InvalidInput(
                f"this server does not answer to the host {_quote(host)}: "
                "add it to L1_ALLOWED_HOSTS if it is one of its names"
            )
        if request["method"] in _MUTATING:
            self._check_site(headers, host)
            if route.takes_json:
                _check_json(headers.get(b"content-type"))
        if route.headers:
            send = _adding(send, route.headers)
        await self.app(scope, receive, send)

    def _check_site(self, headers: dict[bytes, bytes], host: bytes | None) -> None:
        """Forbidden unless the request comes from no browser or from L1's own pages."""
        site = headers.get(b"sec-fetch-site")
        origin = headers.get(b"origin")
        if site in (b"same-origin", b"none"):
            return
        if site == b"cross-site":
            raise Forbidden("refused a request from another site (Sec-Fetch-Site: cross-site)")
        if origin is None:
            if site is None:  # no browser: the CLI, curl, another service
                return
            raise Forbidden(f"refused a request from another site (Sec-Fetch-Site: {_quote(site)})")
        if not self.policy.origin_is_own(origin, host):
            raise Forbidden(f"refused a request from another site (Origin: {_quote(origin)})")

    def _learn(self, scope: HTTPScope) -> _Route:
        template = scope.get("path_template") or scope["path"]
        route = _Route(
            takes_json=_takes_json(scope.get("route_handler")),
            headers=_headers_for(template, scope["method"]),
        )
        self._route = route
        return route


def _check_json(content_type: bytes | None) -> None:
    """415 for a body declared as anything but JSON; a body with no declared type is
    read as JSON, as clients that are not browsers send it."""
    if content_type is None or content_type == b"application/json":
        return
    media_type = content_type.partition(b";")[0].strip().lower()
    if media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    ):
        return
    raise UnsupportedMediaType(
        f"this endpoint takes JSON, not {_quote(media_type)}: "
        "send the body with Content-Type: application/json"
    )


def _takes_json(handler: Any) -> bool:
    """Whether a route handler decodes a JSON ``data`` body."""
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    if data is None:
        return False
    media_type = getattr(data.kwarg_definition, "media_type", RequestEncodingType.JSON)
    return bool(media_type == RequestEncodingType.JSON)


def _headers_for(template: str, method: str) -> tuple[tuple[bytes, bytes], ...]:
    if template == "/ui" or template.startswith("/ui/"):
        return PAGE_HEADERS
    if template == _DOWNLOAD_ROUTE and method in ("GET", "HEAD"):
        return DOWNLOAD_HEADERS
    if template.startswith(("/docs", "/static/")):
        return FRAMED_HEADERS
    return ()


def _adding(send: Send, extra: Iterable[tuple[bytes, bytes]]) -> Send:
    """``send``, adding to a response's head each of ``extra`` it does not set itself."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            present = {name.lower() for name, _ in headers}
            headers.extend(header for header in extra if header[0] not in present)
            message["headers"] = headers
        await send(message)

    return send_with_headers


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as a browser writes an Origin header."""
    parts = urlsplit(url)
    scheme, host, port = parts.scheme.lower(), _bracketed(parts.hostname or ""), parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):  # browsers leave it out
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _bracketed(host: str) -> str:
    """An IPv6 address as a Host header carries it: in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _encoded(host: str) -> bytes:
    """``host`` as a browser sends it: an international name in its ASCII form."""
    return host.encode() if host.isascii() else host.encode("idna")


def _quote(value: bytes) -> str:
    return repr(value[:_QUOTED].decode("latin-1"))
