"""Runs the scenarios against each contender, one server at a time, and collects the figures.

A contender that fails to start, or a scenario that errors or runs out of time, gets an
``{"error": ...}`` entry and the run goes on with the next one.
"""

from __future__ import annotations

__all__ = ["ROOT", "Runner", "run_contender", "smoke"]

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.contenders import Contender
from bench.process import (
    CLIENT_CORE,
    SERVER_CORE,
    RunningServer,
    can_pin,
    pinned_to,
    started_server,
)
from bench.scenarios import IDLE, Scenario, Timing

ROOT = Path(__file__).resolve().parents[1]

Figures = dict[str, Any]
OnResult = Callable[[Scenario, Figures], None]


class Runner:
    """Where servers log, and whether processes are pinned to cores."""

    def __init__(self, logs: Path, pin: bool) -> None:
        self.logs = logs
        self.pin = pin and can_pin()

    @contextmanager
    def server(self, contender: Contender) -> Iterator[RunningServer]:
        """``contender``'s server, started and ready; stopped on exit.

        Raises:
            RuntimeError: It did not start; the message ends with its log.
        """
        with started_server(
            lambda port: contender.command(sys.executable, port),
            cwd=ROOT,
            log=self.logs / f"{contender.key}.log",
            core=SERVER_CORE if self.pin else None,
        ) as server:
            yield server

    def load(self, server: RunningServer, arguments: Sequence[str], time_limit: float) -> Figures:
        """Run the load generator against ``server``; its figures, or ``{"error": ...}``."""
        pids = ",".join(str(pid) for pid in server.serving_pids())
        command = [sys.executable, "-m", "bench.load", server.url, pids, *arguments]
        try:
            done = subprocess.run(
                command,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=time_limit,
                preexec_fn=pinned_to(CLIENT_CORE if self.pin else None),
            )
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {time_limit:.0f} s"}
        try:
            figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            last_words = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
            return {"error": f"load generator failed: {last_words[0]}"}
        if not server.alive():
            figures = {"error": f"server exited with code {server.process.returncode}"}
        return figures


def run_contender(
    runner: Runner,
    contender: Contender,
    scenarios: Sequence[Scenario],
    timing: Timing,
    on_result: OnResult | None = None,
) -> dict[str, Figures]:
    """Every scenario of ``scenarios`` against ``contender``: scenario key -> figures.

    The idle scenario gets a server of its own, started fresh, so that threads and memory left
    behind by the other scenarios do not count as the connections' cost. ``on_result(scenario,
    figures)``, if given, is called after each scenario.
    """
    results: dict[str, Figures] = {}
    batches = [[s for s in scenarios if s is not IDLE], [s for s in scenarios if s is IDLE]]
    for batch in filter(None, batches):
        try:
            with runner.server(contender) as server:
                for scenario in batch:
                    if server.alive():
                        figures = runner.load(
                            server, scenario.load_arguments(timing), scenario.time_limit(timing)
                        )
                    else:
                        figures = {"error": f"server exited with code {server.process.returncode}"}
                    results[scenario.key] = figures
                    if on_result is not None:
                        on_result(scenario, figures)
        except RuntimeError as exc:
            # Only the first line: the log tail that follows is in the server's log file.
            reason = f"server did not start: {str(exc).splitlines()[0]}"
            for scenario in batch:
                if scenario.key not in results:
                    results[scenario.key] = {"error": reason}
                    if on_result is not None:
                        on_result(scenario, results[scenario.key])
    return results


def smoke(runner: Runner, contenders: Sequence[Contender]) -> bool:
    """Start each contender, echo 32 B and 64 KiB once over one connection, stop it.

    Prints one line per contender, ``OK <key> ...`` or ``FAIL <key>: <reason>``; returns
    whether all passed.
    """
    all_passed = True
    for contender in contenders:
        started = time.perf_counter()
        try:
            with runner.server(contender) as server:
                figures = runner.load(server, ["smoke"], time_limit=60.0)
        except RuntimeError as exc:
            figures = {"error": f"server did not start: {str(exc).splitlines()[0]}"}
        if "error" in figures:
            all_passed = False
            print(f"FAIL {contender.key}: {figures['error']}", flush=True)
        else:
            elapsed = time.perf_counter() - started
            print(
                f"OK   {contender.key:<22} {contender.label:<32} started, echoed, stopped "
                f"in {elapsed:.1f} s",
                flush=True,
            )
    return all_passed
