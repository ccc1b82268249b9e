"""The opening handshake: a WSGI environ in, a 101 to write or an HTTP error out.

The WSGI server has parsed the request; its method, HTTP version and headers
reach us in the environ. Our checks come first: a request without ``Upgrade:
websocket`` gets 426 (it is a browser or a plain HTTP client at a
WebSocket-only URL), then the origin policy below, then method (405), version
(505) and body (400). The websockets ``ServerProtocol`` checks the rest
(``Connection``, key, version, extensions, subprotocols) and builds the 101.

Origin policy, against cross-site WebSocket hijacking: a request without
``Origin`` is accepted (non-browser clients send none); an ``Origin`` naming
the host the request was sent to is accepted; any other is rejected with 403
unless it is listed in the ``origins`` option (``"*"`` accepts all).
"""

from __future__ import annotations

import dataclasses
import http
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.http11 import Request
from websockets.server import ServerProtocol as WebSocketsServerProtocol
from websockets.typing import Subprotocol

from .options import Options
from .wire import ServerProtocol

__all__ = ["Accepted", "Rejected", "negotiate"]


@dataclasses.dataclass
class Accepted:
    """The handshake succeeded: write ``response`` to the socket, then speak WebSocket."""

    protocol: ServerProtocol
    response: bytes


@dataclasses.dataclass
class Rejected:
    """The handshake failed: answer with this ordinary HTTP response."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def negotiate(
    environ: Mapping[str, Any], options: Options, http_version: str = "HTTP/1.1"
) -> Accepted | Rejected:
    """Check the upgrade request in ``environ`` and prepare the server's answer.

    ``http_version`` is the version on the client's request line, as the server
    adapter knows it.
    """
    if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        return _reject(
            http.HTTPStatus.UPGRADE_REQUIRED,
            "This URL speaks WebSocket only: connect with a WebSocket client.",
            [("Upgrade", "websocket")],
        )
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None and not origin_allowed(origin, environ, options.origins):
        return _reject(
            http.HTTPStatus.FORBIDDEN,
            f"Origin {origin!r} is not allowed; list it in the 'origins' option to accept it.",
        )

    if environ.get("REQUEST_METHOD", "GET") != "GET":
        return _reject(
            http.HTTPStatus.METHOD_NOT_ALLOWED,
            "A WebSocket handshake uses GET.",
            [("Allow", "GET")],
        )
    if http_version != "HTTP/1.1":
        return _reject(
            http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
            f"A WebSocket handshake uses HTTP/1.1, not {http_version}.",
        )
    if environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ:
        return _reject(http.HTTPStatus.BAD_REQUEST, "A WebSocket handshake has no body.")

    protocol = ServerProtocol(
        extensions=enable_server_permessage_deflate(None) if options.compression else None,
        subprotocols=[Subprotocol(name) for name in options.subprotocols] or None,
        select_subprotocol=_first_shared_subprotocol,
        max_size=options.max_message_size,
    )
    # The protocol checks the headers the WSGI server parsed (Upgrade,
    # Connection, key, version, extensions) and builds the 101.
    response = protocol.accept(Request(_request_target(environ), _request_headers(environ)))
    if response.status_code != 101:
        body = response.body or b""
        extra = [(k, v) for k, v in response.headers.raw_items() if k.lower() in _KEPT_HEADERS]
        return Rejected(response.status_code, extra, bytes(body))
    protocol.send_response(response)
    return Accepted(protocol, b"".join(protocol.data_to_send()))


def origin_allowed(origin: str, environ: Mapping[str, Any], allowed: Sequence[str]) -> bool:
    """Tell whether a browser page at ``origin`` may open this connection.

    The request's own host matches whatever the request scheme, as long as the
    origin is ``http`` or ``https``: behind a TLS-terminating proxy the app sees
    ``http`` while the page is ``https``.
    """
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin.lower())
    host = str(environ.get("HTTP_HOST", "")).lower()
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return False
    own_scheme = environ.get("wsgi.url_scheme", "http")
    own_host = host.removesuffix(_DEFAULT_PORTS.get(own_scheme, ""))
    return parts.netloc.removesuffix(_DEFAULT_PORTS[parts.scheme]) == own_host


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _first_shared_subprotocol(
    protocol: WebSocketsServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # RFC 6455 lets the server go on without a subprotocol when none is
    # shared; the handler sees ``ws.subprotocol is None`` and decides.
    for name in protocol.available_subprotocols or ():
        if name in offered:
            return name
    return None


def _request_target(environ: Mapping[str, Any]) -> str:
    """The request target the client sent: path and query."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target:
        return str(target)
    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _request_headers(environ: Mapping[str, Any]) -> Headers:
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
    return headers


# Headers of a websockets rejection worth keeping in a WSGI response; the rest
# (Date, Connection, Content-Length) are the WSGI server's to set.
_KEPT_HEADERS = frozenset({"content-type", "upgrade", "allow"})


def _reject(
    status: http.HTTPStatus, text: str, headers: Sequence[tuple[str, str]] = ()
) -> Rejected:
    return Rejected(
        status.value,
        [("Content-Type", "text/plain; charset=utf-8"), *headers],
        (text + "\n").encode(),
    )
