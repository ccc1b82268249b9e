"""What the chat's and the snake's sockets share: how a request is read, and how it is refused.

Both pages send JSON objects with a ``type``; a handler reads each with
:func:`receive_request` and refuses one by raising :class:`Refused`, which
goes back to the page as one shape of error, the same for both::

    {"type": "error", "code": "bad_json", "message": "That was not JSON.", "request": null}

``code`` is for the page's code, ``message`` for people, ``request`` is the
type of the request refused (``null`` when it had none). The connection goes on.
"""

from __future__ import annotations

from typing import Any

from flask_duplex import BackendUnavailable, InvalidJSON, WebSocket

__all__ = ["Refused", "allow_fields", "error_message", "receive_request"]


class Refused(Exception):
    """A request the server refuses; the page gets an ``error`` (:func:`error_message`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def receive_request(ws: WebSocket) -> dict[str, Any]:
    """The page's next request: a JSON object with a ``type``.

    Raises:
        Refused: ``bad_json``, the message is not such an object; the next one may be.
        flask_duplex.ConnectionClosed: The page left (no error: the handler ends).
    """
    try:
        request = ws.receive_json()
    except InvalidJSON as exc:
        if isinstance(exc.message, bytes):
            raise Refused("bad_json", "That was not JSON: send JSON text, not binary.") from None
        raise Refused("bad_json", "That was not JSON.") from None
    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
        raise Refused("bad_json", 'Send a JSON object with a "type".')
    return request


def allow_fields(request: dict[str, Any], *names: str) -> None:
    """Refuse fields the request does not take: a ``from`` the server did not set, say.

    Raises:
        Refused: ``bad_field``, naming the first such field.
    """
    for field in request:
        if field != "type" and field not in names:
            raise Refused("bad_field", f"A {request['type']} has no field {field[:40]!r}.")


def error_message(
    error: Refused | BackendUnavailable, request: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``error`` the page gets for ``error``, in answer to ``request`` (None: unreadable).

    ``BackendUnavailable`` (Redis did not answer in time) is ``busy``: nothing
    was done, and the page may try again.
    """
    if isinstance(error, BackendUnavailable):
        error = Refused("busy", "The server is busy; try again.")
    kind = request["type"] if request is not None else None
    return {"type": "error", "code": error.code, "message": str(error), "request": kind}
