"""Command line of the load generator; see :mod:`bench.load`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from bench.load.common import Failure
from bench.load.connections import run_idle
from bench.load.cycles import run_cycles, run_gets, run_opens
from bench.load.echo import run_echo
from bench.load.fragmented import run_fragmented
from bench.process import raise_open_files_limit
from bench.scenarios import SCENARIOS, SMOKE_TIMING
from bench.servers import DEFLATE_ECHO_PATH


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("url", help="the server's echo route, ws://127.0.0.1:PORT/echo")
    parser.add_argument("pids", help="comma-separated PIDs of the processes that serve it")
    parser.add_argument(
        "--cpu-pids",
        help="comma-separated PIDs whose CPU time is the server's (default: PIDS); the runner "
        "passes the server's whole process tree",
    )
    _add_scenarios(parser)
    return parser.parse_args(argv)


def _add_scenarios(parser: argparse.ArgumentParser) -> None:
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    echo = scenarios.add_parser("echo", help="echo messages, one in flight per connection")
    fragmented = scenarios.add_parser(
        "fragmented", help="echo text messages sent in fragments, one in flight per connection"
    )
    cycle = scenarios.add_parser(
        "cycle", help="connect, handshake, echo once, close politely; in concurrent loops"
    )
    get = scenarios.add_parser("get", help="connect, GET /plain, read it all; in concurrent loops")
    open_ = scenarios.add_parser("open", help="open and close connections one at a time")
    idle = scenarios.add_parser("idle", help="hold connections open, read the server's cost")
    smoke = scenarios.add_parser(
        "smoke", help="each named scenario at its smallest: one operation or a few"
    )
    smoke.add_argument("keys", nargs="+", choices=[s.key for s in SCENARIOS], metavar="SCENARIO")
    for scenario in (echo, fragmented, cycle, get, open_, idle):
        scenario.add_argument("--connections", type=int, required=True)
    for scenario in (echo, fragmented, cycle):
        scenario.add_argument("--size", type=int, required=True, help="message size in bytes")
    for scenario in (echo, fragmented, cycle, get, open_):
        scenario.add_argument("--duration", type=float, required=True, help="timed seconds")
        scenario.add_argument("--warmup", type=float, required=True, help="untimed seconds")
    fragmented.add_argument("--fragment", type=int, required=True, help="bytes per frame")
    fragmented.add_argument("--compressed", action="store_true", help="use permessage-deflate")
    idle.add_argument("--probe-round-trips", type=int, required=True)
    idle.add_argument("--settle", type=float, default=1.0, help="seconds before each reading")


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    url = arguments.url
    pids = _pids(arguments.pids)
    cpu_pids = _pids(arguments.cpu_pids) if arguments.cpu_pids else pids
    kind = arguments.scenario
    if kind == "smoke":
        return await smoke(arguments)
    if kind == "echo":
        return await run_echo(
            url,
            cpu_pids,
            connections=arguments.connections,
            size=arguments.size,
            **_timing(arguments),
        )
    if kind == "fragmented":
        return await run_fragmented(
            _sibling(url, DEFLATE_ECHO_PATH) if arguments.compressed else url,
            cpu_pids,
            connections=arguments.connections,
            size=arguments.size,
            fragment=arguments.fragment,
            compressed=arguments.compressed,
            **_timing(arguments),
        )
    if kind == "cycle":
        return await run_cycles(
            url,
            cpu_pids,
            connections=arguments.connections,
            size=arguments.size,
            **_timing(arguments),
        )
    if kind == "get":
        return await run_gets(
            url, cpu_pids, connections=arguments.connections, **_timing(arguments)
        )
    if kind == "open":
        return await run_opens(url, cpu_pids, **_timing(arguments))
    return await run_idle(
        url,
        pids,
        connections=arguments.connections,
        probe_round_trips=arguments.probe_round_trips,
        settle=arguments.settle,
    )


async def smoke(arguments: argparse.Namespace) -> dict[str, Any]:
    """Each scenario of ``arguments.keys`` at its smallest, through this same command line.

    Returns scenario key -> figures, or ``{"error": ...}`` for a scenario that failed.
    """
    by_key = {s.key: s for s in SCENARIOS}
    results: dict[str, Any] = {}
    for key in arguments.keys:
        own = [arguments.url, arguments.pids]
        if arguments.cpu_pids:
            own += ["--cpu-pids", arguments.cpu_pids]
        scenario = parse_arguments(own + by_key[key].load_arguments(SMOKE_TIMING, smoke=True))
        try:
            results[key] = await run(scenario)
        except Failure as exc:
            results[key] = {"error": str(exc)}
    return results


def _sibling(url: str, path: str) -> str:
    """``url`` with another path: the same server's other route."""
    return urlsplit(url)._replace(path=path).geturl()


def _timing(arguments: argparse.Namespace) -> dict[str, float]:
    return {"duration": arguments.duration, "warmup": arguments.warmup}


def _pids(text: str) -> list[int]:
    return [int(pid) for pid in text.split(",") if pid]


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
