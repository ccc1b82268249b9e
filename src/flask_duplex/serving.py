"""What happens to one upgrade request: from the route's view to the socket's return.

1. The server adapter (``servers/``) is found from the environ; a server that
   cannot hand over its socket gets 501.
2. The handshake is checked (``handshake.py``); a bad one gets its 4xx.
3. The handler runs, with a :class:`~flask_duplex.WebSocket` in CONNECTING.
   Until its first use, the handler may still answer like a view: an
   exception (``abort(401)``, or any other, which Flask turns into a 500)
   or a returned response (a redirect) goes to the client as HTTP.
4. The first use accepts: the adapter hands over the socket, the engine
   queues the 101, the connection joins the hub, ``on_connect`` hooks run.
5. When the handler returns the connection closes with 1000; when it raises,
   with 1011, and the exception goes to Flask's error logging. A
   :class:`ConnectionClosed` that escapes after the peer left is not an error.
6. The engine finishes (what is queued goes out within ``close_timeout``),
   the connection leaves the hub, ``on_disconnect`` hooks run, and the view
   returns what the server needs to end the request without writing to the
   socket again.

Nothing after the handler returns may raise into Flask: a peer that vanished
during the close is not an application error.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from flask import (
    Flask,
    Response,
    copy_current_request_context,
    current_app,
    has_request_context,
    request,
)
from flask.signals import got_request_exception

from . import servers
from .connection import WebSocket
from .connection_ids import next_id
from .engine import Engine
from .errors import ConnectionClosed, UnsupportedServer
from .handshake import Accepted, Rejected, negotiate
from .lifecycle import Lifecycle, State
from .reactor import get_reactor

if TYPE_CHECKING:
    from .hub import Hub
    from .options import Options
    from .registry import Connections
    from .servers import ServerAdapter

__all__ = ["Hook", "Route", "ServeContext", "serve"]

logger = logging.getLogger("flask_duplex")

Hook = Callable[[WebSocket], Any]


@dataclasses.dataclass(eq=False)
class Route:
    """A WebSocket route, as registered by :meth:`Duplex.route <flask_duplex.Duplex.route>`."""

    rule: str
    handler: Callable[..., Any]
    endpoint: str
    options: dict[str, Any]


class ServeContext(Protocol):
    """What serving an upgrade request needs of the app (the extension's per-app state)."""

    #: The app's open connections in this process, and whether it is draining.
    connections: Connections
    #: Rooms and presence: each accepted connection is added, and removed at its end.
    hub: Hub
    #: The app's JSON encoder, for ``send_json`` and broadcasts.
    json_dumps: Callable[[Any], str]
    #: The app's JSON decoder, for ``receive_json``.
    json_loads: Callable[[str | bytes], Any]
    #: Run with each connection once it is accepted, and once it ended.
    connect_hooks: list[Hook]
    disconnect_hooks: list[Hook]

    def options_for(self, route: Route) -> Options:
        """The route's options on this app."""

    def warn_server_once(self, software: str) -> bool:
        """True the first time ``software`` is met (so that it is logged once)."""


def serve(
    state: ServeContext, route: Route, view_args: dict[str, Any], options: Options | None = None
) -> Any:
    """The view of a WebSocket route: run the handler for this upgrade request.

    ``options`` replaces the route's options as read from the app's config.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    environ = request.environ
    adapter = servers.detect(environ)
    if adapter is None:
        return _unsupported_server(state, environ, _NO_SOCKET)
    try:
        adapter.check(environ)
    except UnsupportedServer as exc:
        return _unsupported_server(state, environ, str(exc))
    if state.connections.draining:
        return _shutting_down()
    if options is None:
        options = state.options_for(route)
    result = negotiate(environ, options, adapter.request_protocol(environ))
    if isinstance(result, Rejected):
        return Response(result.body, result.status, result.headers)

    lifecycle = Lifecycle(result.protocol)
    upgrade = Upgrade(app, state, route, adapter, result, options, lifecycle)
    ws = WebSocket(
        upgrade,
        id=next_id(),
        environ=environ,
        subprotocol=result.protocol.subprotocol,
        lifecycle=lifecycle,
        hub=state.hub,
        json_dumps=state.json_dumps,
        json_loads=state.json_loads,
    )
    del result  # The Upgrade keeps what accepting needs.
    try:
        try:
            # Without arguments, without a dict for them: the handler's frames
            # stay for the connection's life (and under gevent, its C stack).
            returned = route.handler(ws, **view_args) if view_args else route.handler(ws)
        except Exception as exc:
            if upgrade.reject():
                raise  # Not accepted: Flask answers, as for a view (401, 500, ...).
            _handler_failed(app, ws, exc)
        else:
            if returned is not None and upgrade.reject():
                return returned  # A response instead of a connection (a redirect).
            ws.close(1000)
    finally:
        upgrade.finish(ws)
    if upgrade.refused:
        return _shutting_down()
    return adapter.response_after_close(environ)


class Upgrade:
    """One upgrade request on its way to a connection: the :class:`Acceptor` of its WebSocket."""

    __slots__ = (
        "_accepted",
        "_adapter",
        "_app",
        "_engine",
        "_environ",
        "_lifecycle",
        "_lock",
        "_options",
        "_reactor",
        "_rule",
        "_run_hooks_elsewhere",
        "_state",
        "refused",
    )

    def __init__(
        self,
        app: Flask,
        state: ServeContext,
        route: Route,
        adapter: ServerAdapter,
        accepted: Accepted,
        options: Options,
        lifecycle: Lifecycle,
    ) -> None:
        self._app = app
        self._state = state
        rule = request.url_rule
        self._rule = rule.rule if rule is not None else route.rule  # With its blueprint's prefix.
        # Hooks run in a copy of the handler's request context when the
        # connection is accepted from another thread; the copy is made here,
        # while that context is current, and only when there are hooks.
        self._run_hooks_elsewhere: Callable[..., bool] | None = None
        if state.connect_hooks:
            self._run_hooks_elsewhere = copy_current_request_context(
                functools.partial(_run_hooks, app, rule=self._rule)
            )
        self._adapter = adapter
        self._environ = request.environ
        self._accepted: Accepted | None = accepted
        self._options = options
        self._lifecycle = lifecycle
        self._engine: Engine | None = None
        # Held only for a few non-blocking steps (see accept()): a short lock.
        # Once the connection is accepted it is the engine's lock instead, and
        # this one is freed: nothing waits on it any more (every step below
        # looks at _engine first).
        self._reactor = get_reactor()
        self._lock = self._reactor.short_lock()
        #: Accepting was refused: the server is shutting down.
        self.refused = False

    def accept(self, lifecycle: Lifecycle) -> tuple[Engine, bool]:
        engine = self._engine
        if engine is not None:
            return engine, False
        with self._lock:
            if self._engine is not None:
                return self._engine, False
            if lifecycle.state is not State.CONNECTING or self._accepted is None:
                raise ConnectionClosed(1006, "the connection was not accepted")
            if self._state.connections.draining:
                lifecycle.reject()
                self.refused = True
                raise ConnectionClosed(1001, "server shutting down")
            accepted, self._accepted = self._accepted, None
            handover = self._adapter.take_over(self._environ)
            response = accepted.response
            if self._adapter.send_response(self._environ, response):
                response = b""
            engine = Engine(
                accepted.protocol,
                handover.sock,
                options=self._options,
                lifecycle=lifecycle,
                reactor=self._reactor,
                response=response,
                prefetched=handover.prefetched,
                sock_timeout=handover.timeout,
                name=self._rule,
                peer=self._environ.get("REMOTE_ADDR"),
            )
            self._engine = engine
            self._state.connections.opened()
        # A thread that took the old lock before this finds _engine set.
        self._lock = engine.lock
        return engine, True

    def accepted(self, ws: WebSocket) -> None:
        self._state.hub.add(ws)
        hooks = self._state.connect_hooks
        if not hooks:
            return
        if has_request_context():
            ok = _run_hooks(self._app, hooks, ws, self._rule)
        elif self._run_hooks_elsewhere is not None:  # Accepted by another thread.
            ok = self._run_hooks_elsewhere(hooks, ws)
        else:  # A hook registered after this connection's handshake began.
            with self._app.request_context(self._environ):
                ok = _run_hooks(self._app, hooks, ws, self._rule)
        if not ok:
            ws.close_nowait(1011)

    def reject(self) -> bool:
        """Turn the client away before accepting; False if the connection was accepted."""
        if self._engine is not None:
            return False
        with self._lock:
            if not self._lifecycle.reject():
                return False
            self._accepted = None
            return True

    def finish(self, ws: WebSocket) -> None:
        """The handler is done: end the connection, if it was accepted, and tell the hooks."""
        self.reject()  # Not accepted by now: never will be.
        engine = self._engine
        if engine is None:
            return
        try:
            engine.finish()
        finally:
            self._state.hub.remove(ws)
            _run_hooks(self._app, self._state.disconnect_hooks, ws, self._rule)
            self._state.connections.finished()


def _handler_failed(app: Flask, ws: WebSocket, exc: Exception) -> None:
    if isinstance(exc, ConnectionClosed) and ws.state is not State.OPEN:
        return  # The peer left, or the connection was closed: not an error.
    report(app, exc)
    ws.close(1011)


def _run_hooks(app: Flask, hooks: Iterable[Hook], ws: WebSocket, rule: str) -> bool:
    """Run every hook; log each one that raises, with the route. False if any raised."""
    ok = True
    for hook in hooks:
        try:
            hook(ws)
        except Exception:
            ok = False
            app.logger.exception(
                "flask-duplex: hook %s failed for %s on route %s",
                getattr(hook, "__qualname__", hook),
                ws.id,
                rule,
            )
    return ok


def report(app: Flask, exc: BaseException) -> None:
    """Hand the handler's exception to Flask's error logging and signal."""
    got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=exc)
    app.log_exception((type(exc), exc, exc.__traceback__))  # type: ignore[arg-type]


def _shutting_down() -> Response:
    return Response(
        "This server is shutting down; connect again in a moment.\n",
        503,
        {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "1"},
    )


_NO_SOCKET = "it does not hand over its sockets, so it cannot serve WebSockets"


def _unsupported_server(state: ServeContext, environ: Any, why: str) -> Response:
    software = str(environ.get("SERVER_SOFTWARE", "unknown"))
    if state.warn_server_once(software):
        logger.error(
            "flask-duplex: cannot serve WebSockets on the WSGI server %r: %s. "
            "The supported servers are: %s",
            software,
            why,
            servers.supported_names(),
        )
    body = f"This server ({software}) cannot serve WebSocket connections.\n"
    return Response(body, 501, {"Content-Type": "text/plain; charset=utf-8"})
