"""A TCP proxy on loopback whose cable a test can pull: a network that goes away and comes back."""

from __future__ import annotations

import socket
import threading

from tests.support.servers import free_port

__all__ = ["Cable"]


class Cable:
    """A TCP proxy from ``url`` to the server on port ``target``; ``unplug()`` drops every
    connection and refuses new ones until ``plug()``, as a network that goes away does."""

    def __init__(self, target: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._target = target
        self._plugged = True
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def unplug(self) -> None:
        with self._lock:
            self._plugged = False
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _drop(sock)

    def plug(self) -> None:
        with self._lock:
            self._plugged = True

    def close(self) -> None:
        self.unplug()
        _drop(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self._target), timeout=2)
            except OSError:  # The server is down.
                _drop(client)
                continue
            with self._lock:
                if not self._plugged:
                    _drop(client)
                    _drop(server)
                    continue
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        source.settimeout(None)
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        _drop(sink)


def _drop(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
