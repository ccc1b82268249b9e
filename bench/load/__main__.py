"""Command line of the load generator; see :mod:`bench.load`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench.load.common import Failure
from bench.load.connections import run_handshakes, run_idle
from bench.load.echo import echo_once, run_echo
from bench.process import raise_open_files_limit
from bench.scenarios import LARGE, SMALL


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("url", help="the server's echo route, ws://127.0.0.1:PORT/echo")
    parser.add_argument("pids", help="comma-separated PIDs of the processes that serve it")
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    echo = scenarios.add_parser("echo", help="echo messages, one in flight per connection")
    echo.add_argument("--size", type=int, required=True, help="message size in bytes")
    idle = scenarios.add_parser("idle", help="hold connections open, read the server's cost")
    handshakes = scenarios.add_parser("handshakes", help="open and close connections")
    scenarios.add_parser("smoke", help=f"one echo of {SMALL} and one of {LARGE} bytes")
    for scenario in (echo, idle, handshakes):
        scenario.add_argument("--connections", type=int, required=True)
    for scenario in (echo, handshakes):
        scenario.add_argument("--duration", type=float, required=True, help="timed seconds")
        scenario.add_argument("--warmup", type=float, required=True, help="untimed seconds")
    return parser.parse_args(argv)


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    url = arguments.url
    pids = [int(pid) for pid in arguments.pids.split(",") if pid]
    if arguments.scenario == "echo":
        return await run_echo(
            url,
            pids,
            connections=arguments.connections,
            size=arguments.size,
            duration=arguments.duration,
            warmup=arguments.warmup,
        )
    if arguments.scenario == "idle":
        return await run_idle(url, pids, connections=arguments.connections)
    if arguments.scenario == "handshakes":
        return await run_handshakes(
            url,
            connections=arguments.connections,
            duration=arguments.duration,
            warmup=arguments.warmup,
        )
    return await echo_once(url, (SMALL, LARGE))


def main() -> None:
    arguments = parse_arguments(sys.argv[1:])
    raise_open_files_limit()
    try:
        figures = asyncio.run(run(arguments))
    except Failure as exc:
        print(json.dumps({"error": str(exc)}))
        sys.exit(1)
    except Exception as exc:
        # Anything else is a bug or a surprise: name it, so the table can say what went wrong.
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
