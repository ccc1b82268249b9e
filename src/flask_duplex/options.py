"""Connection options: their defaults, their config keys, and their validation.

Every option can be set for a whole app through ``app.config["DUPLEX_<NAME>"]``
and for one route through a keyword of :meth:`Duplex.route`; the route wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CONFIG_PREFIX", "AppSettings", "Options", "config_defaults"]

CONFIG_PREFIX = "DUPLEX_"


@dataclasses.dataclass(frozen=True)
class Options:
    """The settings one WebSocket connection runs with.

    Attributes:
        max_message_size: Largest incoming message in bytes, all fragments
            together and after decompression; a bigger one closes the
            connection with 1009. ``None`` removes the limit.
        ping_interval: Seconds between keepalive pings; ``None`` sends none.
        ping_timeout: Seconds to wait for the pong before closing with 1011;
            ``None`` waits forever.
        close_timeout: Seconds to wait for the peer's close frame after this
            side sent one, before dropping the TCP connection.
        compression: Accept permessage-deflate (RFC 7692) when the client
            offers it, bounded by ``max_message_size``; ``False`` turns it off.
        subprotocols: Subprotocols this route speaks, most preferred first.
            The first one the client also offers is chosen; if none is
            shared, the connection opens without one (``ws.subprotocol`` is
            ``None``).
        origins: Extra origins accepted besides the server's own; ``"*"`` in
            the list accepts any origin.
        max_queue: Messages that may wait for a client that stopped reading
            before broadcasts close it with 1013.
        max_queue_bytes: Bytes that may wait for such a client before the
            same 1013; whichever bound comes first.
        max_inbox: Received messages that may wait for the handler's next
            ``receive()`` before the connection stops reading the socket (TCP
            then slows the client down).
        max_inbox_bytes: Bytes (characters for text) of received messages
            that may wait likewise; whichever bound comes first.
    """

    max_message_size: int | None = 2**20
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 10.0
    compression: bool = True
    subprotocols: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    max_queue: int = 64
    max_queue_bytes: int = 2**20
    max_inbox: int = 32
    max_inbox_bytes: int = 2**20

    def __post_init__(self) -> None:
        size = self.max_message_size
        if size is not None and (not _is_int(size) or size <= 0):
            raise ValueError(f"max_message_size must be a positive int or None, not {size!r}")
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number or None, not {value!r}")
        for name in ("max_queue", "max_queue_bytes", "max_inbox", "max_inbox_bytes"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if not _is_number(self.close_timeout) or self.close_timeout <= 0:
            raise ValueError(f"close_timeout must be a positive number, not {self.close_timeout!r}")
        if not isinstance(self.compression, bool):
            raise ValueError(f"compression must be True or False, not {self.compression!r}")
        for name in ("subprotocols", "origins"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{name} must be a list of strings, not {value!r}")

    @classmethod
    def names(cls) -> frozenset[str]:
        """The option names, as route keywords."""
        return frozenset(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> Options:
        """Build the options from an app config, then apply per-route overrides.

        Raises:
            ValueError: An option has a value of the wrong type or range; the
                message names the option.
        """
        values: dict[str, Any] = {}
        for name in cls.names():
            key = CONFIG_PREFIX + name.upper()
            if key in config:
                values[name] = config[key]
        if overrides:
            values.update(overrides)
        for name in ("subprotocols", "origins"):
            if name in values and values[name] is not None:
                values[name] = _as_tuple(name, values[name])
            elif name in values:
                values[name] = ()
        return cls(**values)


def check_names(options: Mapping[str, Any]) -> None:
    """Raise TypeError naming the first keyword that is not an option."""
    unknown = sorted(set(options) - Options.names())
    if unknown:
        known = ", ".join(sorted(Options.names()))
        raise TypeError(f"unknown WebSocket route option {unknown[0]!r}; the options are: {known}")


def _as_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence | set | frozenset):
        raise ValueError(f"{name} must be a list of strings, not {value!r}")
    return tuple(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class AppSettings:
    """The app-wide settings (config keys only, no route keywords).

    Attributes:
        message_queue: ``None`` (in-process), a ``redis://`` or ``rediss://``
            URL, a ``redis+sentinel://`` or ``redis+cluster://`` URL, or a
            ``redis.Redis`` or ``redis.cluster.RedisCluster`` client
            (``DUPLEX_MESSAGE_QUEUE``).
        channel: The Redis channel and key prefix (``DUPLEX_CHANNEL``); by
            default ``"flask-duplex:"`` and the app's import name, so that two
            apps on one Redis never mix.
        presence_ttl: Seconds before a crashed process's members leave
            (``DUPLEX_PRESENCE_TTL``).
        redis_timeout: Seconds any one Redis call may take before it raises
            ``BackendUnavailable`` (``DUPLEX_REDIS_TIMEOUT``).
        shutdown_timeout: Seconds a stopping process waits for handlers
            (``DUPLEX_SHUTDOWN_TIMEOUT``); under gunicorn, its
            ``--graceful-timeout`` bounds the wait too.
        lease_ttl: Seconds a deployment-wide task's lease lasts unless renewed
            (``DUPLEX_LEASE_TTL``): another process takes a dead holder's task
            over within this plus a third of it. With Redis, at least four
            times ``DUPLEX_REDIS_TIMEOUT``.
    """

    message_queue: Any = None
    channel: str = "flask-duplex"
    presence_ttl: float = 30.0
    redis_timeout: float = 0.5
    shutdown_timeout: float = 5.0
    lease_ttl: float = 5.0

    def __post_init__(self) -> None:
        for name in ("presence_ttl", "redis_timeout", "shutdown_timeout", "lease_ttl"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                key = CONFIG_PREFIX + name.upper()
                raise ValueError(f"{key} must be a positive number, not {value!r}")
        if self.message_queue is not None and self.lease_ttl < 4 * self.redis_timeout:
            raise ValueError(
                f"DUPLEX_LEASE_TTL ({self.lease_ttl}) must be at least four times "
                f"DUPLEX_REDIS_TIMEOUT ({self.redis_timeout}): a holder that cannot renew "
                "must be able to stop before its lease expires"
            )
        if not isinstance(self.channel, str) or not self.channel:
            raise ValueError(f"DUPLEX_CHANNEL must be a non-empty string, not {self.channel!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> AppSettings:
        """Read the settings from an app config; ``overrides`` that are not ``None`` win.

        Raises:
            ValueError: A value has the wrong type or range; the message names its key.
        """
        values = {
            field.name: config.get(CONFIG_PREFIX + field.name.upper(), field.default)
            for field in dataclasses.fields(cls)
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)


def config_defaults(import_name: str) -> dict[str, Any]:
    """Every ``DUPLEX_*`` config key with its default, for an app with this import name.

    The per-route options (:class:`Options`) and the per-app settings
    (:class:`AppSettings`); the channel is named after the app.
    """
    values = {
        CONFIG_PREFIX + field.name.upper(): field.default
        for settings in (Options, AppSettings)
        for field in dataclasses.fields(settings)
    }
    values[CONFIG_PREFIX + "CHANNEL"] = f"flask-duplex:{import_name}"
    return values
