"""websockets' asyncio server with its ``broadcast()``, for the fan-out scenario.

Clients connect to ``/fanout``; any message on ``/go`` (its text is the size in bytes) is
broadcast to all of them. ``python -m bench.servers.websockets_fanout PORT``.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.servers import port_from_argv

members: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else ""
    if path == "/fanout":
        members.add(ws)
        try:
            await ws.wait_closed()
        finally:
            members.discard(ws)
    elif path == "/go":
        async for message in ws:
            broadcast(members, b"x" * int(message))
    else:
        async for message in ws:
            await ws.send(message)


async def main() -> None:
    async with serve(handler, "127.0.0.1", port_from_argv(), compression=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main())
