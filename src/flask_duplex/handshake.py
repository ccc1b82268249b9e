"""The opening handshake: a WSGI environ in, a 101 to write or an HTTP error out.

The WSGI server has parsed the request; its method, HTTP version and headers
reach us in the environ. Our checks come first: a request without ``Upgrade:
websocket`` gets 426 (it is a browser or a plain HTTP client at a
WebSocket-only URL), then the origin policy below, then method (405), version
(505) and body (400), then what RFC 6455 4.2.1 asks of the upgrade request
(``Connection: Upgrade``, ``Upgrade: websocket``, a key of 16 bytes, version
13). Extensions are negotiated by websockets' own permessage-deflate factory,
and the 101 is written here, in one string: building websockets' request and
response objects for it would cost more than the whole check.

Origin policy, against cross-site WebSocket hijacking: a request without
``Origin`` is accepted (non-browser clients send none); an ``Origin`` naming
the host the request was sent to is accepted; any other is rejected with 403
unless it is listed in the ``origins`` option (``"*"`` accepts all).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import http
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import InvalidHandshake, NegotiationError
from websockets.extensions import Extension
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.headers import build_extension, parse_extension, parse_subprotocol
from websockets.typing import ExtensionHeader
from websockets.utils import accept_key

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

    connection = environ.get("HTTP_CONNECTION", "")
    if not any(token.strip().lower() == "upgrade" for token in connection.split(",")):
        return _reject(
            http.HTTPStatus.UPGRADE_REQUIRED,
            f"A WebSocket handshake has Connection: Upgrade, not {connection!r}.",
            [("Upgrade", "websocket")],
        )
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return _reject(
            http.HTTPStatus.BAD_REQUEST,
            f"Sec-WebSocket-Key must be 16 bytes in base64, not {key!r}.",
        )
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version != "13":
        return _reject(
            http.HTTPStatus.BAD_REQUEST,
            f"This server speaks Sec-WebSocket-Version 13, not {version!r}.",
            [("Sec-WebSocket-Version", "13")],
        )

    lines = [_SWITCHING, "Sec-WebSocket-Accept: ", accept_key(key), "\r\n"]
    extensions: list[Extension] = []
    offered = environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")
    if offered and options.compression:
        try:
            answer, extensions = _negotiate_extensions(offered)
        except InvalidHandshake as exc:
            return _reject(http.HTTPStatus.BAD_REQUEST, f"Sec-WebSocket-Extensions: {exc}.")
        if answer:
            lines += ["Sec-WebSocket-Extensions: ", answer, "\r\n"]
    subprotocol = None
    requested = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL")
    if requested is not None:  # Checked whenever present, as RFC 6455 4.2.1 asks.
        try:
            offered_protocols = parse_subprotocol(requested)
        except InvalidHandshake as exc:
            return _reject(http.HTTPStatus.BAD_REQUEST, f"Sec-WebSocket-Protocol: {exc}.")
        subprotocol = _first_shared(options.subprotocols, offered_protocols)
        if subprotocol is not None:
            lines += ["Sec-WebSocket-Protocol: ", subprotocol, "\r\n"]
    lines.append("\r\n")
    protocol = ServerProtocol(
        extensions=extensions, subprotocol=subprotocol, max_size=options.max_message_size
    )
    return Accepted(protocol, "".join(lines).encode())


_SWITCHING = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"


def _negotiate_extensions(offered: str) -> tuple[str | None, list[Extension]]:
    """Accept what the client offers of permessage-deflate; the response header and extensions.

    As websockets' own server does: each offer is tried against the factory,
    and one that does not suit it is skipped.

    Raises:
        InvalidHandshake: The header is malformed.
    """
    accepted: list[Extension] = []
    answers: list[ExtensionHeader] = []
    for factory in _EXTENSION_FACTORIES:
        for name, params in parse_extension(offered):
            if name != factory.name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            answers.append((name, response_params))
            accepted.append(extension)
            break
    return (build_extension(answers) if answers else None), accepted


_EXTENSION_FACTORIES = enable_server_permessage_deflate(None) or []


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


def _first_shared(ours: Sequence[str], offered: Sequence[str]) -> str | None:
    # RFC 6455 lets the server go on without a subprotocol when none is
    # shared; the handler sees ``ws.subprotocol is None`` and decides.
    for name in ours:
        if name in offered:
            return name
    return None


def _reject(
    status: http.HTTPStatus, text: str, headers: Sequence[tuple[str, str]] = ()
) -> Rejected:
    return Rejected(
        status.value,
        [("Content-Type", "text/plain; charset=utf-8"), *headers],
        (text + "\n").encode(),
    )
