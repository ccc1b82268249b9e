"""The Flask extension: ``Duplex``, its routes and its per-app state."""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, current_app, has_app_context, request
from flask.json.provider import DefaultJSONProvider

from . import green, shutdown
from .browser import register_client
from .channels import Channels, Subscription
from .connection import WebSocket, check_close
from .hub import Hub, create_hub, encode_message
from .hub.history import Histories, HistoryPolicy, data_fragment
from .options import AppSettings, Options, check_names, config_defaults
from .registry import Connections
from .serving import Hook, Route, serve
from .tasks import DeploymentTask, Task, Tasks
from .tasks import sleep as task_sleep

if TYPE_CHECKING:
    from flask.testing import FlaskClient

    from .testing import TestClient

__all__ = ["Duplex", "DuplexState"]

Handler = Callable[..., Any]
F = TypeVar("F", bound=Handler)
H = TypeVar("H", bound=Hook)
T = TypeVar("T")
ExpiredHook = Callable[[str, frozenset[str]], Any]
E = TypeVar("E", bound=ExpiredHook)
Exclude = WebSocket | str | Iterable[WebSocket | str] | None


class DuplexState:
    """What Flask-Duplex keeps for one app, in ``app.extensions["duplex"]``.

    Attributes:
        duplex: The :class:`Duplex` bound to the app.
        hub: The rooms, broadcast and presence backend of the app.
        settings: The app-wide settings (``DUPLEX_MESSAGE_QUEUE`` and the like).
        connections: The app's open connections in this process (how many,
            whether the process is draining, closing them all).
        tasks: The app's background and deployment-wide tasks in this process.
        channels: The app's server-side channel subscriptions in this process.
    """

    def __init__(self, duplex: Duplex, app: Flask, hub: Hub, settings: AppSettings) -> None:
        self.duplex = duplex
        self.hub = hub
        self.settings = settings
        self.connections = Connections(
            self.hub.local_members, self.close, settings.shutdown_timeout
        )
        # serving.ServeContext: what serving an upgrade request uses.
        self.connect_hooks = duplex.connect_hooks
        self.disconnect_hooks = duplex.disconnect_hooks
        #: The app's JSON encoder, compact, made once.
        self.json_dumps = _compact_dumps(app)
        #: The app's JSON decoder, made once (a bound method per connection costs 64 bytes).
        self.json_loads: Callable[[str | bytes], Any] = app.json.loads
        self._app = weakref.ref(app)
        self._config = app.config
        self._options: dict[Route, Options] = {}
        self._warned_servers: set[str] = set()
        self.tasks = Tasks(app)
        self.channels = Channels()
        loads = self.json_loads
        channels = self.channels

        def channel_message(channel: str, message: str | bytes, is_json: bool) -> None:
            channels.deliver(channel, loads(message) if is_json else message)

        hub.bus.on_message = channel_message
        expired_hooks = duplex.expired_hooks
        app_ref = self._app

        def members_expired(room: str, ids: frozenset[str]) -> None:
            app = app_ref()
            if app is None:
                return
            with app.app_context():
                for hook in list(expired_hooks):
                    try:
                        hook(room, ids)
                    except Exception:
                        app.logger.exception(
                            "flask-duplex: on_members_expired hook %r failed", hook
                        )

        hub.on_members_expired = members_expired

    @property
    def local_connections(self) -> set[WebSocket]:
        """The app's open WebSocket connections in this process."""
        return {member for member in self.hub.local_members() if isinstance(member, WebSocket)}

    def options_for(self, route: Route) -> Options:
        """The options of ``route`` on this app, read from the config once."""
        options = self._options.get(route)
        if options is None:
            options = self._options[route] = Options.from_config(self._config, route.options)
        return options

    def warn_server_once(self, software: str) -> bool:
        """True the first time ``software`` is met (so that it is logged once)."""
        if software in self._warned_servers:
            return False
        self._warned_servers.add(software)
        return True

    def close_all(self, code: int = 1001, reason: str = "", timeout: float | None = None) -> int:
        """See :meth:`Duplex.close_all`."""
        return self.connections.close_all(code, reason, timeout)

    def close(self) -> None:
        """Stop the app's background work in this process; see :meth:`Duplex.close`."""
        self.tasks.cancel_all(self.settings.lease_ttl)
        self.channels.close_all()
        self.hub.close()

    def test_client(self, http: FlaskClient | None = None, *, timeout: float = 5.0) -> TestClient:
        """A client for this app's WebSocket routes; see :meth:`Duplex.test_client`."""
        from .testing import TestClient

        app = self._app()
        if app is None:
            raise RuntimeError("the app of this Flask-Duplex state no longer exists")
        return TestClient(app, http, timeout=timeout)


class Duplex:
    """WebSocket routes for a Flask app.

    Use ``Duplex(app)``, or ``Duplex()`` then :meth:`init_app` in an app
    factory; one ``Duplex`` can serve several apps.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        message_queue: Any = None,
        channel: str | None = None,
        client: bool = True,
    ) -> None:
        """
        Args:
            app: The app to serve now; or call :meth:`init_app` later.
            message_queue: A ``redis://``, ``rediss://``, ``redis+sentinel://``
                or ``redis+cluster://`` URL (or a ``redis.Redis`` or
                ``redis.cluster.RedisCluster`` client) shared by every process
                that serves or publishes; overrides ``DUPLEX_MESSAGE_QUEUE``. A process with
                no app (a worker job) can still broadcast with it.
            channel: The Redis channel and key prefix; overrides
                ``DUPLEX_CHANNEL``. A process with no app must give the
                serving app's channel (``"flask-duplex:<import name>"`` unless
                the app sets its own).
            client: Serve the browser client, ``duplex.js``, on each app at
                ``url_for("flask_duplex.client")`` (``/_duplex/duplex.js``).
                With ``False``, the app gets only its own routes;
                :func:`~flask_duplex.register_client` adds the client later.
        """
        self._client = client
        self._routes: list[Route] = []
        # The apps served, oldest first, without keeping them alive: routes added
        # late go onto each, and the newest is the default app (_app_or_none).
        self._apps: list[weakref.ref[Flask]] = []
        self._message_queue = message_queue
        self._channel = channel
        self._publisher: Hub | None = None  # For a process with no app.
        self._publisher_lock = threading.Lock()
        #: The rooms that keep history (:meth:`keep_history`), shared by every app's hub.
        self.histories = Histories()
        #: Called with each connection once it is accepted, before it is used.
        self.connect_hooks: list[Hook] = []
        #: Called with each connection once it ended and left every room.
        self.disconnect_hooks: list[Hook] = []
        #: Called with (room, ids) when members of a room expired from presence.
        self.expired_hooks: list[ExpiredHook] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the WebSocket routes, the ``DUPLEX_*`` config defaults and ``duplex.js``.

        ``duplex.js`` is registered unless the ``Duplex`` was made with ``client=False``.

        Calling it again for the same app does nothing.

        Raises:
            ValueError: A ``DUPLEX_*`` config value is invalid, or
                ``DUPLEX_MESSAGE_QUEUE`` is a Redis URL of a form that cannot
                work (:mod:`~flask_duplex.hub.redis_topology`); the message
                names it.
            RuntimeError: Another ``Duplex`` already serves ``app``.
        """
        existing = app.extensions.get("duplex")
        if existing is not None:
            if existing.duplex is self:
                return
            raise RuntimeError(
                "this app already has a Flask-Duplex extension; use that one "
                "(app.extensions['duplex'].duplex) instead of a second Duplex"
            )
        for key, default in config_defaults(app.import_name).items():
            app.config.setdefault(key, default)
        Options.from_config(app.config)
        settings = AppSettings.from_config(
            app.config, message_queue=self._message_queue, channel=self._channel
        )
        hub = create_hub(
            settings.message_queue,
            channel=settings.channel,
            presence_ttl=settings.presence_ttl,
            timeout=settings.redis_timeout,
        )
        hub.histories = self.histories
        state = DuplexState(self, app, hub, settings)
        app.extensions["duplex"] = state
        # An app dropped by its factory (tests make many) stops its tasks and hub.
        weakref.finalize(app, _stop_dropped_app, state.tasks, hub)
        if self._client:
            register_client(app)  # duplex.js, at url_for("flask_duplex.client")
        self._apps = [ref for ref in self._apps if ref() is not None]
        self._apps.append(weakref.ref(app))
        shutdown.watch(state.connections)
        for route in self._routes:
            self._add_rule(app, route)

    # -- rooms, broadcast, presence -------------------------------------------

    def broadcast(self, message: Any, to: str | None = None, exclude: Exclude = None) -> None:
        """Send ``message`` to every connection in room ``to``, in every process.

        Args:
            message: ``str`` (a text frame), bytes-like (binary), or a
                ``dict``/``list`` (sent as JSON text).
            to: A room name; ``None`` sends to every connection of the app.
            exclude: A connection, a connection id, or several, to skip.

        Raises:
            TypeError: ``message`` has another type.
            BackendUnavailable: The message queue cannot be reached; nothing was sent.
        """
        hub, dumps = self._hub()
        if to is not None and hub.histories:
            policy = hub.histories.policy_for(to)
            if policy is not None:
                fragment = data_fragment(message, dumps)
                hub.broadcast_history(to, fragment, frozenset(_ids(exclude)), policy)
                return
        hub.broadcast(encode_message(message, dumps), to, frozenset(_ids(exclude)))

    def keep_history(
        self,
        room: str,
        *,
        size: int = 100,
        ttl: float = 300.0,
        max_bytes: int = 2**20,
    ) -> None:
        """Keep the last messages broadcast to ``room``, for the clients that come back.

        Every message broadcast to the room then carries the room's position
        (an epoch and an offset), and a connection that joins it with the
        position its client had (the browser client hands it back on every
        reconnect) gets what it missed before the live messages: in order,
        none twice. :meth:`WebSocket.join <flask_duplex.WebSocket.join>`
        says whether that worked. See docs/recovery.md.

        Call it before serving, in every process (like routes).

        Args:
            room: A room's name, or a prefix ending in ``*`` (``"chat:*"``)
                for every room whose name starts with it; the longest prefix
                wins, an exact name over any prefix.
            size: How many of the last messages are kept.
            ttl: Seconds a message is kept; an older one is not replayed.
            max_bytes: With the in-process hub, the bytes kept for one room
                (the oldest messages go first past it). Redis keeps ``size``.

        Raises:
            TypeError: ``room`` is not a ``str``.
            ValueError: A bound is not positive, or ``*`` is not at the end of ``room``.
        """
        self.histories.add(room, HistoryPolicy(size=size, ttl=ttl, max_bytes=max_bytes))

    def send_to(self, connection_id: str, message: Any) -> None:
        """Send ``message`` to the connection with this id, wherever it lives.

        Raises:
            TypeError: ``message`` has another type than for :meth:`broadcast`.
            BackendUnavailable: The message queue cannot be reached.
        """
        hub, dumps = self._hub()
        hub.send_to(connection_id, encode_message(message, dumps))

    def members(self, room: str) -> set[str]:
        """The ids of the connections in ``room``, across all processes.

        Raises:
            BackendUnavailable: The message queue cannot be reached.
        """
        hub, _ = self._hub()
        return hub.members(room)

    def presence(self, room: str) -> dict[str, Any]:
        """Who is in ``room``, across all processes: connection id to the ``info`` it joined with.

        Raises:
            BackendUnavailable: The message queue cannot be reached in time.
        """
        hub, _ = self._hub()
        app = self._app_or_none()
        loads = app.json.loads if app is not None else json.loads
        return {member_id: loads(info) for member_id, info in hub.presence(room).items()}

    def on_connect(self, hook: H) -> H:
        """Register ``hook(ws)``, called when a connection is accepted.

        A connection is accepted when its handler first uses it (or calls
        ``ws.accept()``); the hook runs then, on that thread, before the use
        goes on. Each hook runs even if another raised; one that raises is
        logged with the route, and the connection is closed with 1011.
        """
        self.connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: H) -> H:
        """Register ``hook(ws)``, called when an accepted connection ended and left every room.

        Each hook runs even if another raised; one that raises is logged with the route.
        """
        self.disconnect_hooks.append(hook)
        return hook

    def on_members_expired(self, hook: E) -> E:
        """Register ``hook(room, ids)``, called when members of ``room`` expire from presence.

        With Redis, the members of a process that stopped without saying so
        (it crashed, or was killed) leave presence once ``DUPLEX_PRESENCE_TTL``
        passes without that process refreshing them. The first live process
        that notices tells every process, and each calls its hooks once, with
        the room and the connection ids, in an app context, on the hub's
        thread: keep a hook short (queue the work, e.g. on a
        :class:`Subscription`). The in-process hub never calls it. A hook that
        raises is logged; the others still run.
        """
        self.expired_hooks.append(hook)
        return hook

    def close_all(self, code: int = 1001, reason: str = "", timeout: float | None = None) -> int:
        """Close every connection the current app has open in this process.

        Each gets a close frame with ``code`` and ``reason`` at once, without
        waiting on any client; their handlers see :class:`ConnectionClosed`
        (a ``for`` loop over ``ws`` ends quietly on 1000 and 1001). New
        connections are still accepted: a server shutting down refuses them
        on its own (see docs/deployment.md).

        Args:
            code: The close code; 1001 ("going away") by default.
            reason: The close reason (at most 123 bytes in UTF-8).
            timeout: Seconds to wait for the handlers to return; ``None``
                does not wait.

        Returns:
            How many connections are still open (0 when all have ended).

        Raises:
            ValueError: ``code`` or ``reason`` cannot go in a close frame.
        """
        check_close(code, reason)
        return _state(self._app()).close_all(code, reason, timeout)

    # -- background work ------------------------------------------------------

    def start_background_task(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Task:
        """Run ``function(*args, **kwargs)`` in the background, inside the app's context.

        It runs as a thread, or as a greenlet under gevent and eventlet, to
        match the server. An exception it raises is logged with its name. It
        stops when it returns, or at its next :meth:`sleep` once cancelled
        (``task.cancel()``, :meth:`close`, the process stopping).

        Returns:
            The :class:`~flask_duplex.tasks.Task`: ``cancel()``, ``join(timeout)``, ``done``.

        Raises:
            RuntimeError: No app: call :meth:`init_app` first.
        """
        state = _state(self._app())
        name = getattr(function, "__qualname__", repr(function))
        run = state.tasks.in_app_context(function, *args, **kwargs)
        return state.tasks.start(Task(name, lambda _task: run()))

    def start_deployment_task(
        self, name: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> DeploymentTask:
        """Run ``function(*args, **kwargs)`` in exactly one process of the deployment.

        Every process that calls this with the same ``name`` competes for a
        lease; the holder runs the function, inside the app's context, and the
        others take over within ``DUPLEX_LEASE_TTL`` plus a third of it if the
        holder dies. In-process (no Redis), this process is the deployment.
        The function must call :meth:`sleep` at least every third of the lease:
        that is where it stops when the lease is lost or the task cancelled.
        When it returns, the lease is released; other processes still
        competing may run it again.

        Returns:
            The :class:`~flask_duplex.tasks.DeploymentTask`; ``cancel()`` stops
            competing (and the function, if it runs here).

        Raises:
            RuntimeError: No app: call :meth:`init_app` first.
        """
        state = _state(self._app())
        task = _deployment_task(state, name, function, args, kwargs)
        state.hub.start()
        return state.tasks.start(task)  # type: ignore[return-value]

    def ensure_deployment_task(
        self, name: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> DeploymentTask:
        """Bid for the deployment task ``name``, unless this process already waits for it.

        :meth:`start_deployment_task`, at most once per waiting bid: call it on
        every request that needs the task (each player who joins a game), and
        this process keeps one bid in line for the lease, whatever the number
        of calls. A bid that already runs the function here does not count, as
        the function may be about to return (a game loop that found its room
        empty): the call then makes a new bid, which runs once that function
        returned. A waiting bid keeps the function and arguments it was made
        with.

        Returns:
            The :class:`~flask_duplex.tasks.DeploymentTask` that waits in line
            for the lease (``started`` is false until it runs), new or not.

        Raises:
            RuntimeError: No app: call :meth:`init_app` first.
        """
        state = _state(self._app())
        state.hub.start()
        return state.tasks.ensure(
            name, lambda: _deployment_task(state, name, function, args, kwargs)
        )

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, as the server's concurrency model wants (a greenlet yields).

        Raises:
            TaskCancelled: Called in a background task that was cancelled.
        """
        task_sleep(seconds)

    def run_in_thread(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``function(*args, **kwargs)`` where a blocking call cannot stall the server.

        Under gevent and eventlet it runs on the green library's pool of real
        threads while the calling greenlet waits its turn (a ``sqlite3`` write
        would otherwise stop every connection of the worker); under threads it
        runs right here. Returns what the function returns; raises what it raises.
        """
        return green.run_in_thread(function, *args, **kwargs)

    def subscribe(self, channel: str, *, max_queue: int = 1000) -> Subscription:
        """Receive what any process publishes on ``channel`` from now on.

        Args:
            channel: The channel's name.
            max_queue: Messages that may wait unread before the subscription is
                closed (its ``get()`` then raises ``ChannelOverflow``).

        Returns:
            A :class:`~flask_duplex.channels.Subscription`: iterate over it, or
            ``get(timeout)``; ``close()`` when done.

        Raises:
            RuntimeError: No app: call :meth:`init_app` first.
        """
        if not isinstance(max_queue, int) or max_queue <= 0:
            raise ValueError(f"max_queue must be a positive int, not {max_queue!r}")
        state = _state(self._app())
        state.hub.start()  # Subscribed to Redis before this returns.
        return state.channels.subscribe(channel, max_queue)

    def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` on ``channel``, for every subscription in every process.

        Args:
            channel: The channel's name.
            message: ``str``, ``bytes``, or anything the app's JSON provider
                encodes; subscribers get the same value back.

        Raises:
            BackendUnavailable: Redis did not answer within ``DUPLEX_REDIS_TIMEOUT``.
        """
        hub, dumps = self._hub()
        if isinstance(message, str | bytes):
            hub.bus.publish(channel, message, False)
        elif isinstance(message, bytearray | memoryview):
            hub.bus.publish(channel, bytes(message), False)
        else:
            hub.bus.publish(channel, dumps(message), True)

    def close(self) -> None:
        """Stop the current app's background work in this process, and a publisher's.

        Background and deployment-wide tasks are cancelled (leases released),
        subscriptions closed, and with Redis the hub's threads end before this
        returns; afterwards ``broadcast``, ``send_to`` and ``members`` raise
        :class:`BackendUnavailable`. Open connections are not closed (see
        :meth:`close_all`). A stopping server calls it after its connections
        ended, and an app that is garbage collected stops its hub by itself.
        """
        app = self._app_or_none()
        if app is not None:
            _state(app).close()
        with self._publisher_lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()

    def _app(self) -> Flask:
        """The app to act on (see :meth:`_app_or_none`).

        Raises:
            RuntimeError: This ``Duplex`` serves no app yet.
        """
        app = self._app_or_none()
        if app is None:
            raise RuntimeError("this Duplex serves no app yet: call init_app(app) first")
        return app

    def _app_or_none(self) -> Flask | None:
        """The app this ``Duplex`` acts on when none is named.

        The app of the current app context, if this ``Duplex`` serves it; else
        the app most recently given to :meth:`init_app` that is still alive.
        The choice never depends on when the garbage collector runs: with the
        app-factory pattern, the newest app is the one a test just made.
        """
        if has_app_context():
            candidate: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            state = candidate.extensions.get("duplex")
            if state is not None and state.duplex is self:
                return candidate
        for ref in reversed(self._apps):
            app = ref()
            if app is not None:
                return app
        return None

    def _live_apps(self) -> list[Flask]:
        return [app for app in (ref() for ref in self._apps) if app is not None]

    def _hub(self) -> tuple[Hub, Callable[[Any], str]]:
        """The hub to publish with: the app's (see _app_or_none), or a publisher's."""
        app = self._app_or_none()
        if app is not None:
            state = _state(app)
            return state.hub, state.json_dumps
        if self._message_queue is None or self._channel is None:
            raise RuntimeError(
                "this Duplex has no app: call init_app(app), or to publish from a process "
                "without routes pass message_queue='redis://...' and channel= the serving "
                "app's DUPLEX_CHANNEL ('flask-duplex:<its import name>' by default)"
            )
        with self._publisher_lock:
            if self._publisher is None:
                self._publisher = create_hub(
                    self._message_queue, channel=self._channel, presence_ttl=30.0
                )
                self._publisher.histories = self.histories
        return self._publisher, functools.partial(json.dumps, separators=(",", ":"))

    def test_client(self, http: FlaskClient | None = None, *, timeout: float = 5.0) -> TestClient:
        """A client that opens connections to this extension's routes without a server.

        Args:
            http: A Flask test client whose cookies go with every handshake.
            timeout: Seconds any one step may take before the test fails.

        The app is ``http``'s app; else the app of the current app context;
        else the app most recently given to :meth:`init_app` that is still
        alive (with an app factory, the app the test just made).

        Raises:
            RuntimeError: This ``Duplex`` serves no app yet.
        """
        app = http.application if http is not None else self._app()
        return _state(app).test_client(http, timeout=timeout)

    def route(
        self,
        rule: str,
        *,
        bp: Blueprint | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler of WebSocket route ``rule``.

        The handler is called as ``handler(ws, **view_args)`` inside the request
        context of the upgrade request, after ``before_request`` hooks. When it
        returns the connection closes with 1000; when it raises, with 1011.

        Args:
            rule: A Flask URL rule, with converters (``"/room/<name>"``).
            bp: Register on this blueprint instead of the app.
            endpoint: The endpoint name; defaults to the function's name.
            **options: Per-route values of the connection options (see
                :class:`Options`), overriding the app's ``DUPLEX_*`` config.

        Raises:
            TypeError: An option name is unknown; the message names it.
            ValueError: An option value is invalid; the message names it.
        """
        check_names(options)
        Options.from_config({}, options)

        def decorator(handler: F) -> F:
            route = Route(rule, handler, endpoint or handler.__name__, dict(options))
            if bp is not None:
                self._add_rule(bp, route)
            else:
                self._routes.append(route)
                for app in self._live_apps():
                    self._add_rule(app, route)
            return handler

        return decorator

    def serve(self, handler: Handler, view_args: dict[str, Any], **options: Any) -> Any:
        """Serve the current upgrade request with ``handler``, as a route's view does.

        For views that own their URL rule and settle the options per request
        (``flask_duplex.compat`` does: flask-sock options live in each app's
        config). Call it from a view of a rule marked ``websocket=True``, on an
        app this ``Duplex`` serves, and return what it returns.

        Args:
            handler: Called as ``handler(ws, **view_args)``, as for :meth:`route`.
            view_args: The keyword arguments for ``handler``.
            **options: Connection options overriding the app's ``DUPLEX_*`` config.

        Raises:
            TypeError: An option name is unknown.
            ValueError: An option value is invalid.
        """
        check_names(options)
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        state = _state(app)
        if state.duplex is not self:
            raise RuntimeError("this app is served by another Duplex; call that one's serve()")
        rule = request.url_rule.rule if request.url_rule is not None else request.path
        route = Route(rule, handler, getattr(handler, "__name__", "handler"), options)
        return serve(state, route, view_args, Options.from_config(app.config, options))

    def _add_rule(self, target: Flask | Blueprint, route: Route) -> None:
        def view(**view_args: Any) -> Any:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            return serve(_state(app), route, view_args)

        view.__name__ = route.endpoint
        view.__doc__ = route.handler.__doc__
        # Werkzeug routes upgrade requests only to rules marked websocket=True.
        # The twin plain rule lets the view answer other requests with 426. It
        # comes first so that url_for() builds the plain path ("/chat/ws"),
        # which a page resolves against its own scheme, rather than an
        # absolute ws:// URL built from the request (wrong behind a TLS proxy).
        target.add_url_rule(route.rule, route.endpoint, view, methods=["GET"])
        target.add_url_rule(route.rule, route.endpoint, view, methods=["GET"], websocket=True)


def _deployment_task(
    state: DuplexState,
    name: str,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> DeploymentTask:
    """A deployment-wide task of the app, not started yet."""
    run = state.tasks.in_app_context(function, *args, **kwargs)
    return DeploymentTask(name, state.hub.leases, state.settings.lease_ttl, run)


def _stop_dropped_app(tasks: Tasks, hub: Hub) -> None:
    tasks.cancel_all(0)
    hub.close()


def _ids(exclude: Exclude) -> Iterable[str]:
    if exclude is None:
        return ()
    if isinstance(exclude, str | WebSocket):
        exclude = [exclude]
    return (item.id if isinstance(item, WebSocket) else str(item) for item in exclude)


def _compact_dumps(app: Flask) -> Callable[[Any], str]:
    """The app's JSON encoder, compact when it is Flask's own (``{"a":1}``, not ``{"a": 1}``).

    Messages go out many times a second to many clients: the spaces cost
    about a tenth of their size. A custom provider is used as it is.
    """
    provider = app.json
    if isinstance(provider, DefaultJSONProvider):
        return functools.partial(provider.dumps, separators=(",", ":"))
    return provider.dumps


def _state(app: Flask) -> DuplexState:
    try:
        state: DuplexState = app.extensions["duplex"]
    except KeyError:
        raise RuntimeError(
            "this app has no Flask-Duplex state; call Duplex(app) or duplex.init_app(app)"
        ) from None
    return state
