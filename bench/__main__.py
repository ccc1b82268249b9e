"""``python -m bench``: run the benchmarks and print the tables; ``--smoke`` checks each contender.

Writes bench/results/latest.json (every figure), latest.md (the tables) and throughput.png; with
``--write-docs``, also docs/benchmarks.md and docs/benchmarks-throughput.png.

Where the machine can pin (two cores or more), the server and the load generator run on separate
cores; then a second, shorter pass runs a few echo scenarios (``bench.scenarios.UNPINNED``) on a
few contenders (``bench.contenders.UNPINNED_CONTENDERS``) again without pinning, as a server runs
where it is deployed, and its figures go under ``unpinned`` in the results.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench.contenders import CONTENDERS, UNPINNED_CONTENDERS, Contender
from bench.process import raise_open_files_limit
from bench.record import Document, load_average, new_document, save
from bench.report import markdown_report
from bench.runner import ROOT, Runner, run_contender, smoke
from bench.scenarios import SCENARIOS, SMOKE_TIMING, UNPINNED, Scenario, Timing

RESULTS = ROOT / "bench" / "results"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="start each contender, run every scenario at its smallest, stop; no figures",
    )
    parser.add_argument(
        "--duration", type=float, default=Timing.duration, help="timed seconds per scenario"
    )
    parser.add_argument("--warmup", type=float, default=Timing.warmup, help="untimed seconds first")
    parser.add_argument(
        "--only",
        action="append",
        choices=[c.key for c in CONTENDERS],
        metavar="CONTENDER",
        help="run this contender (repeatable); all by default: "
        + ", ".join(c.key for c in CONTENDERS),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[s.key for s in SCENARIOS],
        metavar="SCENARIO",
        help="run this scenario (repeatable); all by default: "
        + ", ".join(s.key for s in SCENARIOS),
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="let server and load generator share all cores"
    )
    parser.add_argument(
        "--pinned-only",
        action="store_true",
        help="skip the second, unpinned pass of a few echo scenarios (run after the pinned one)",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="also rewrite docs/benchmarks.md and its plot"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rebuild the tables and plot (and docs) from the saved latest.json",
    )
    return parser.parse_args(argv)


def main() -> None:
    arguments = parse_arguments(sys.argv[1:])
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    raise_open_files_limit()
    contenders = [c for c in CONTENDERS if not arguments.only or c.key in arguments.only]
    # A contender whose server is not installed here (uWSGI, where it did not build) is skipped.
    skipped = {c.key: reason for c in contenders if (reason := c.missing(sys.executable))}
    for contender in contenders:
        if contender.key in skipped:
            line = f"SKIP {contender.key:<22} {contender.label:<32} {skipped[contender.key]}"
            print(line, flush=True)
    contenders = [c for c in contenders if c.key not in skipped]
    scenarios = [s for s in SCENARIOS if not arguments.scenario or s.key in arguments.scenario]
    # The smoke check keeps its logs apart, so it does not erase those of the last full run.
    logs = arguments.results / ("smoke-logs" if arguments.smoke else "logs")
    _clear_logs(logs)
    runner = Runner(logs, pin=not arguments.no_pin)
    if arguments.smoke:
        sys.exit(0 if run_smoke(runner, contenders) else 1)
    if arguments.report_only:
        document = json.loads((arguments.results / "latest.json").read_text())
        publish(arguments, document)
        return
    run(arguments, runner, contenders, scenarios, skipped)


def run_smoke(runner: Runner, contenders: list[Contender]) -> bool:
    """The smoke check (:func:`bench.runner.smoke`), then the tables built from its figures.

    The figures mean nothing; building the tables from them checks that every figure the full
    run reports can be read and formatted. Returns whether everything passed.
    """
    passed = smoke(runner, contenders)
    document = new_document(contenders, list(SCENARIOS), SMOKE_TIMING, runner.pin)
    document["results"].update(passed)
    # The unpinned table is built from the same figures: it is the formatting that is checked.
    document["unpinned"] = {
        key: {scenario: figures[scenario] for scenario in UNPINNED if scenario in figures}
        for key, figures in passed.items()
        if key in UNPINNED_CONTENDERS
    }
    try:
        markdown_report(document)
    except Exception as exc:
        print(f"FAIL tables: {type(exc).__name__}: {exc}", flush=True)
        return False
    print("OK   tables built from the smoke figures", flush=True)
    return len(passed) == len(contenders)


def run(
    arguments: argparse.Namespace,
    runner: Runner,
    contenders: list[Contender],
    scenarios: list[Scenario],
    skipped: dict[str, str],
) -> None:
    started = time.perf_counter()
    timing = Timing(arguments.duration, arguments.warmup)
    document = new_document(contenders, scenarios, timing, runner.pin)
    document["skipped"] = [
        {"key": c.key, "label": c.label, "reason": skipped[c.key]}
        for c in CONTENDERS
        if c.key in skipped
    ]
    results_file = arguments.results / "latest.json"
    _progress(
        f"{len(contenders)} contender(s), {len(scenarios)} scenario(s) each, "
        f"{timing.duration:g} s each after {timing.warmup:g} s of warm-up"
        + ("; server and load generator on separate cores" if runner.pin else "")
    )
    for contender in contenders:
        _progress(f"{contender.label}")
        document["results"][contender.key] = run_contender(
            runner, contender, scenarios, timing, on_result=_report_progress
        )
        save(document, results_file)  # after each contender, so an interrupted run keeps them
    if runner.pin and not arguments.pinned_only:
        run_unpinned(document, runner, contenders, scenarios, timing)
        save(document, results_file)
    document["wall_time_s"] = round(time.perf_counter() - started, 1)
    document["load_average_end"] = load_average()
    save(document, results_file)
    _progress(f"saved {_relative(results_file)}")
    publish(arguments, document)
    _progress(f"total wall time {time.perf_counter() - started:.0f} s")


def run_unpinned(
    document: Document,
    pinned: Runner,
    contenders: list[Contender],
    scenarios: list[Scenario],
    timing: Timing,
) -> None:
    """Run the unpinned scenarios of the run again on its unpinned contenders, without pinning.

    Their figures go to ``document["unpinned"]``, contender key -> scenario key -> figures.
    """
    runner = Runner(pinned.logs, pin=False)
    chosen = [s for s in scenarios if s.key in UNPINNED]
    document["unpinned"] = {}
    for contender in (c for c in contenders if c.key in UNPINNED_CONTENDERS and chosen):
        _progress(f"{contender.label}, as deployed (unpinned)")
        document["unpinned"][contender.key] = run_contender(
            runner, contender, chosen, timing, on_result=_report_progress
        )


def publish(arguments: argparse.Namespace, document: Document) -> None:
    """Print the tables; write them, the plot and, if asked, the docs page."""
    tables = markdown_report(document)
    print(tables, flush=True)
    (arguments.results / "latest.md").write_text(tables)
    written = [arguments.results / "latest.md"]
    plot = arguments.results / "throughput.png"
    if any(s["kind"] == "echo" for s in document["scenarios"]):
        from bench.plot import plot_throughput  # matplotlib is slow to import; only needed here

        plot_throughput(document, plot)
        written.append(plot)
    if arguments.write_docs:
        from bench.docs import write_benchmarks_page

        written.append(write_benchmarks_page(document, tables, plot, ROOT / "docs"))
    _progress("wrote " + ", ".join(str(_relative(path)) for path in written))


def _report_progress(scenario: Scenario, figures: dict[str, Any]) -> None:
    _progress(f"    {scenario.label:<28} {_summary(scenario, figures)}")


def _summary(scenario: Scenario, figures: dict[str, Any]) -> str:
    """One line of what a scenario measured, for the progress on stderr."""
    if scenario.kind == "idle" and "opened" in figures:
        # Idle figures are worth showing even when not every connection opened.
        opened_in = (
            f" in {figures['open_seconds']:.2f} s" if figures["open_seconds"] is not None else ""
        )
        probe = (
            f"; new client's echo p50 {figures['probe_p50_ms']:.3f} ms"
            if figures.get("probe_p50_ms") is not None
            else f"; new client: {figures.get('probe_error')}"
        )
        return (
            f"{figures['opened']:,} opened{opened_in}, "
            f"{figures['threads_per_connection']:.2f} threads and "
            f"{figures['rss_kib_per_connection']:.1f} KiB per connection{probe}"
            + (f"; error: {figures['error']}" if figures["error"] else "")
        )
    if figures.get("error"):
        return f"error: {figures['error']}"
    cpu = f"server CPU {_us(figures.get('server_cpu_us'))} µs each"
    if scenario.kind == "echo":
        return (
            f"{figures['messages_per_s']:>9,.0f} msg/s  {figures['mb_per_s']:8.1f} MB/s  "
            f"p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
            f"server CPU {figures['server_cpu_cores']:.2f}"
        )
    if scenario.kind == "fragmented":
        return f"{figures['messages_per_s']:>9,.0f} msg/s  p50 {figures['p50_ms']:.3f} ms  {cpu}"
    if scenario.kind == "cycle":
        return f"{figures['cycles_per_s']:>9,.0f} cycles/s  {cpu}"
    if scenario.kind == "get":
        return f"{figures['requests_per_s']:>9,.0f} requests/s  {cpu}"
    return f"open p50 {figures['open_p50_ms']:.3f} ms  p99 {figures['open_p99_ms']:.3f} ms  {cpu}"


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _progress(line: str) -> None:
    # Progress goes to stderr, so stdout carries only the tables.
    print(line, file=sys.stderr, flush=True)


def _clear_logs(logs: Path) -> None:
    if logs.is_dir():
        for log in logs.glob("*.log"):
            log.unlink()


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(ROOT)
    except ValueError:
        return path


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into SystemExit so that every server is stopped on the way out.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # The servers were stopped on the way out; the traceback would say nothing more.
        _progress("interrupted")
        sys.exit(130)
