"""Server-side channels: messages for code that is not a connection.

A game loop, a periodic job or an HTTP view can :meth:`Duplex.subscribe` to a
named channel and receive what any process publishes there with
:meth:`Duplex.publish`: player input that lands on worker A reaches the game
loop on worker B. Channels travel the same way as broadcasts (through the
app's Redis channel, or within the process), so they have the same rules:

* what one thread publishes on a channel reaches each subscription in order;
* a subscription exists from the moment ``subscribe()`` returns: anything
  published after that reaches it;
* ``publish()`` raises :class:`BackendUnavailable` when Redis does not answer
  within ``DUPLEX_REDIS_TIMEOUT``; nothing is dropped in silence;
* a subscription is bounded: when ``max_queue`` messages wait unread and one
  more comes, it is closed (like a client too slow for broadcasts), and
  :meth:`Subscription.get` raises :class:`ChannelOverflow` once the waiting
  messages are read.

Messages are ``str``, ``bytes``, or anything the app's JSON provider can
encode; a subscriber gets back what was published (JSON values decoded).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from .errors import DuplexError
from .tasks import TaskCancelled, current_task

__all__ = ["ChannelClosed", "ChannelOverflow", "Channels", "Subscription"]


class ChannelClosed(DuplexError):
    """The subscription was closed (by :meth:`Subscription.close` or the app stopping)."""


class ChannelOverflow(ChannelClosed):
    """The subscription was closed because too many messages waited unread (``max_queue``)."""


class Subscription:
    """What one subscriber receives from one channel; iterate over it, or call :meth:`get`.

    Attributes:
        channel: The channel's name.
    """

    def __init__(
        self, channel: str, max_queue: int, on_close: Callable[[Subscription], None]
    ) -> None:
        self.channel = channel
        self._max_queue = max_queue
        self._on_close = on_close
        self._messages: collections.deque[Any] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._error: ChannelClosed | None = None

    def put(self, message: Any) -> None:
        """Queue a published message (the hub's delivery; never waits)."""
        with self._ready:
            if self._error is not None:
                return
            if len(self._messages) >= self._max_queue:
                self._error = ChannelOverflow(
                    f"subscription to {self.channel!r} closed: {self._max_queue} messages "
                    "waited unread (max_queue)"
                )
            else:
                self._messages.append(message)
            self._ready.notify_all()
        if self._error is not None:
            self._on_close(self)

    def get(self, timeout: float | None = None) -> Any:
        """The next message; ``None`` if ``timeout`` seconds pass first.

        Raises:
            ChannelOverflow: The subscription fell ``max_queue`` messages behind
                and was closed; the messages before that were returned first.
            ChannelClosed: The subscription was closed.
            TaskCancelled: Called in a background task that was cancelled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        task = current_task()
        unwatch = task.watch_cancel(self._wake) if task is not None else None
        try:
            with self._ready:
                while not self._messages:
                    if self._error is not None:
                        raise self._error
                    if task is not None and task.cancelled:
                        raise TaskCancelled(f"task {task.name!r} was asked to stop")
                    wait = None if deadline is None else deadline - time.monotonic()
                    if wait is not None and wait <= 0:
                        return None
                    self._ready.wait(wait)
                return self._messages.popleft()
        finally:
            if unwatch is not None:
                unwatch()

    def _wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def __iter__(self) -> Iterator[Any]:
        """Yield messages until the subscription is closed (quietly on :meth:`close`)."""
        while True:
            try:
                yield self.get()
            except ChannelOverflow:
                raise
            except ChannelClosed:
                return

    def close(self) -> None:
        """Stop receiving; a ``get()`` waiting now raises :class:`ChannelClosed`."""
        with self._ready:
            if self._error is None:
                self._error = ChannelClosed(f"subscription to {self.channel!r} closed")
            self._messages.clear()
            self._ready.notify_all()
        self._on_close(self)

    @property
    def closed(self) -> bool:
        """Whether the subscription was closed (by :meth:`close`, overflow, or the app stopping)."""
        return self._error is not None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} {'closed' if self.closed else 'open'}>"


class Channels:
    """An app's subscriptions in this process, and the delivery of what comes in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = {}

    def subscribe(self, channel: str, max_queue: int) -> Subscription:
        subscription = Subscription(channel, max_queue, self._forget)
        with self._lock:
            self._subscriptions.setdefault(channel, set()).add(subscription)
        return subscription

    def deliver(self, channel: str, message: Any) -> None:
        with self._lock:
            targets = list(self._subscriptions.get(channel, ()))
        for subscription in targets:
            subscription.put(message)

    def close_all(self) -> None:
        with self._lock:
            everything = [sub for subs in self._subscriptions.values() for sub in subs]
        for subscription in everything:
            subscription.close()

    def _forget(self, subscription: Subscription) -> None:
        with self._lock:
            subscriptions = self._subscriptions.get(subscription.channel)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[subscription.channel]
