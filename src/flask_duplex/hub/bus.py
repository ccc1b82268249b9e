"""The bus of server-side channels: what ``duplex.publish`` carries to every process.

Server-side channels (``channels.py``) are subscribed to in a process; the
bus carries each publication to every process of the app, where the app's
``on_message`` hands it to the local subscribers. :class:`MemoryBus` serves
one process; the Redis backend's bus publishes on the app's channel, which
every process's subscriber listens to (:mod:`~flask_duplex.hub.redis`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from ..assembly import Message

__all__ = ["ChannelBus", "MemoryBus"]


class ChannelBus(abc.ABC):
    """Publishes on server-side channels, and hands what arrives to ``on_message``."""

    def __init__(self) -> None:
        #: Called with (channel, message, is_json) for each publication that
        #: reaches this process; set by the extension.
        self.on_message: Callable[[str, Message, bool], None] | None = None

    @abc.abstractmethod
    def publish(self, channel: str, message: Message, is_json: bool) -> None:
        """Publish on ``channel`` (``is_json``: ``message`` is JSON text).

        Raises:
            BackendUnavailable: The message queue cannot be reached.
        """

    def deliver(self, channel: str, message: Message, is_json: bool) -> None:
        """Hand a publication that reached this process to ``on_message``."""
        callback = self.on_message
        if callback is not None:
            callback(channel, message, is_json)


class MemoryBus(ChannelBus):
    """Delivers in this process only."""

    def publish(self, channel: str, message: Message, is_json: bool) -> None:
        self.deliver(channel, message, is_json)
