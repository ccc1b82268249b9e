"""websockets' threading echo server (one thread per connection).

``python -m bench.servers.websockets_threading PORT``.
"""

from __future__ import annotations

from websockets.sync.server import ServerConnection, serve

from bench.servers import MAX_MESSAGE_SIZE, port_from_argv


def echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def main(port: int) -> None:
    # Compression is server-wide here, used only by a client that offers it: see bench.servers.
    with serve(echo, "127.0.0.1", port, compression="deflate", max_size=MAX_MESSAGE_SIZE) as server:
        server.serve_forever()


if __name__ == "__main__":
    main(port_from_argv())
