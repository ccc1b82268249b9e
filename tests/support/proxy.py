"""A TCP proxy on loopback that holds back chosen client bytes: a slow network, on demand."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.servers import free_port


class DelayingProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``.

    A chunk from a client for which ``slow(chunk)`` is true reaches the server
    ``delay`` seconds late (and so does everything behind it on that connection).
    """

    def __init__(self, target: int, slow: Callable[[bytes], bool], delay: float) -> None:
        self.port = free_port()
        self._target = target
        self._slow = slow
        self._delay = delay
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [client, server]
            self._spawn(self._pipe, client, server, True)
            self._spawn(self._pipe, server, client, False)

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client and self._slow(chunk):
                    time.sleep(self._delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # Wakes the accept(); close() would not.
        except OSError:
            pass
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@contextmanager
def delaying_proxy(
    target: int, slow: Callable[[bytes], bool], delay: float
) -> Iterator[DelayingProxy]:
    proxy = DelayingProxy(target, slow, delay)
    try:
        yield proxy
    finally:
        proxy.close()
