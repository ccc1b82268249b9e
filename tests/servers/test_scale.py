"""Scale check: 1,000 concurrent echoing connections on Werkzeug and gunicorn's gevent worker."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.servers import Server, running

CONNECTIONS = 1000


def stats(server: Server) -> dict[str, int]:
    with urllib.request.urlopen(f"{server.http}/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


async def hold_and_echo(server: Server) -> tuple[dict[str, int], float]:
    """Open the connections (50 at a time), echo once on each, and read the server's stats."""
    clients: list[ClientConnection] = []
    started = time.monotonic()
    try:
        for start in range(0, CONNECTIONS, 50):
            batch = [
                connect(f"{server.url}/echo", ping_interval=None, open_timeout=20)
                for _ in range(min(50, CONNECTIONS - start))
            ]
            clients += await asyncio.gather(*batch)
        opened = time.monotonic() - started
        await asyncio.gather(*(ws.send(f"m{i}") for i, ws in enumerate(clients)))
        replies = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 20) for ws in clients))
        assert replies == [f"m{i}" for i in range(len(clients))]
        during = await asyncio.to_thread(stats, server)
    finally:
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    return during, opened


@pytest.mark.parametrize("server_name", ["werkzeug", "gunicorn-gevent"])
def test_thousand_connections_echo_and_cost(server_name: str) -> None:
    """1,000 connections all echo; report threads and RSS per connection."""
    with running(server_name) as server:
        before = stats(server)
        during, opened = asyncio.run(hold_and_echo(server))
    assert during["connections"] == CONNECTIONS
    threads = (during["os_threads"] - before["os_threads"]) / CONNECTIONS
    rss = (during["rss_kb"] - before["rss_kb"]) / CONNECTIONS
    print(
        f"\n{server_name}: {CONNECTIONS} connections opened in {opened:.2f}s; "
        f"{threads:.3f} OS threads and {rss:.1f} KiB RSS per connection"
    )
    if server_name == "werkzeug":
        assert threads <= 1.05
    else:
        assert threads <= 0.01
    assert rss < 200
