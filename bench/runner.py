"""Runs the scenarios against each contender, one server at a time, and collects the figures.

A contender that fails to start, or a scenario that errors or runs out of time, gets an
``{"error": ...}`` entry and the run goes on with the next one.
"""

from __future__ import annotations

__all__ = ["ROOT", "Runner", "run_contender", "smoke", "smoke_scenarios"]

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
from bench.scenarios import SCENARIOS, Scenario, Timing

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
        """Run the load generator against ``server``; its figures, or ``{"error": ...}``.

        It reads threads and memory of the processes that serve the connections, and CPU time
        of the server's whole process tree.
        """
        pids = ",".join(str(pid) for pid in server.serving_pids())
        cpu_pids = ",".join(str(pid) for pid in server.tree_pids())
        command = [
            sys.executable,
            "-m",
            "bench.load",
            server.url,
            pids,
            "--cpu-pids",
            cpu_pids,
            *arguments,
        ]
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
    """Every scenario of ``scenarios`` that ``contender`` can run: scenario key -> figures.

    The scenarios share one server, except those that need a fresh one (the idle scenarios), so
    that threads and memory left behind by the other scenarios do not count as the connections'
    cost. ``on_result(scenario, figures)``, if given, is called after each scenario.
    """
    results: dict[str, Figures] = {}
    runnable = [s for s in scenarios if s.runs_on(contender)]
    shared = [s for s in runnable if not s.fresh_server]
    batches = [shared, *([s] for s in runnable if s.fresh_server)]
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


def smoke_scenarios(contender: Contender) -> list[Scenario]:
    """The scenarios whose code paths the smoke check runs on ``contender``.

    One per kind of load, since at their smallest (:meth:`Scenario.load_arguments` with
    ``smoke``) the others of the kind run the same code: both echo sizes, compressed and
    uncompressed fragments, the cycle, the plain GET, the sequential opens, and idle connections.
    """
    chosen: dict[tuple[str, int, bool], Scenario] = {}
    for scenario in SCENARIOS:
        if scenario.runs_on(contender):
            chosen.setdefault((scenario.kind, scenario.size, scenario.compressed), scenario)
    return list(chosen.values())


def smoke(runner: Runner, contenders: Sequence[Contender]) -> dict[str, dict[str, Figures]]:
    """Start each contender, run each of its :func:`smoke_scenarios` at its smallest, stop it.

    Prints one line per contender, ``OK <key> ...`` or ``FAIL <key>: <reason>``; returns the
    figures of those that passed, by contender (a failed contender is left out).
    """
    passed: dict[str, dict[str, Figures]] = {}
    for contender in contenders:
        started = time.perf_counter()
        keys = [s.key for s in smoke_scenarios(contender)]
        try:
            with runner.server(contender) as server:
                figures = runner.load(server, ["smoke", *keys], time_limit=120.0)
        except RuntimeError as exc:
            figures = {"error": f"server did not start: {str(exc).splitlines()[0]}"}
        failures = (
            [figures["error"]]
            if figures.get("error")
            else [f"{key}: {figures[key]['error']}" for key in keys if figures[key].get("error")]
        )
        if failures:
            print(f"FAIL {contender.key}: {'; '.join(failures)}", flush=True)
            continue
        passed[contender.key] = figures
        elapsed = time.perf_counter() - started
        print(
            f"OK   {contender.key:<22} {contender.label:<32} started, ran {len(keys)} scenarios "
            f"at their smallest, stopped in {elapsed:.1f} s",
            flush=True,
        )
    return passed
