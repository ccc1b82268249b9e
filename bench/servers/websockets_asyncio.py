"""websockets' asyncio echo server: ``python -m bench.servers.websockets_asyncio PORT``."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, serve

from bench.servers import MAX_MESSAGE_SIZE, port_from_argv


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    # Compression is server-wide here, used only by a client that offers it: see bench.servers.
    async with serve(
        echo, "127.0.0.1", port, compression="deflate", max_size=MAX_MESSAGE_SIZE
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(port_from_argv()))
