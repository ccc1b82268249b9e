"""Thread switches and futex calls per message echoed, pinned and unpinned, counted by ``perf``.

``python -m bench.switches`` (not part of ``make bench``: it needs ``perf``, and a kernel that lets
it count) starts each contender's server, drives it with the load generator's echo (32 B over 10
connections by default), and while the load runs counts the server's context switches, CPU
migrations, futex calls and system calls over a window of its timed part::

    perf stat -x, -p SERVER_PIDS -e context-switches,cpu-migrations \\
        -e syscalls:sys_enter_futex,raw_syscalls:sys_enter -- sleep WINDOW

Each count is divided by the messages echoed in the window (the load generator's rate times the
window). Each contender runs twice: pinned (server on one core, load generator on the other, as
``python -m bench`` runs) and as deployed (unpinned). A futex call is how a thread waits for the
GIL, or wakes the one waiting for it; a context switch is a thread put to sleep or woken.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.contenders import CONTENDERS
from bench.process import (
    CLIENT_CORE,
    SERVER_CORE,
    can_pin,
    pinned_to,
    raise_open_files_limit,
    started_server,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
EVENTS = (
    "context-switches",
    "cpu-migrations",
    "syscalls:sys_enter_futex",
    "raw_syscalls:sys_enter",
)
DEFAULT_CONTENDERS = ("flask-duplex-werkzeug", "flask-duplex-gthread", "websockets-threading")
WARMUP = 1.0
# The window starts this long into the timed part and ends as long before its end.
MARGIN = 0.5


def measure(key: str, pin: bool, connections: int, size: int, window: float) -> dict[str, Any]:
    """One contender, pinned or not: its counts per message over ``window`` seconds."""
    contender = next(c for c in CONTENDERS if c.key == key)
    suffix = "pinned" if pin else "unpinned"
    with started_server(
        lambda port: contender.command(sys.executable, port),
        cwd=ROOT,
        log=RESULTS / "logs" / f"switches-{key}-{suffix}.log",
        core=SERVER_CORE if pin else None,
    ) as server:
        duration = window + 2 * MARGIN
        load = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.load", server.url),
                ",".join(map(str, server.serving_pids())),
                *("echo", "--connections", str(connections), "--size", str(size)),
                *("--duration", str(duration), "--warmup", str(WARMUP)),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=pinned_to(CLIENT_CORE if pin else None),
        )
        try:
            time.sleep(WARMUP + MARGIN)
            pids = ",".join(map(str, server.serving_pids()))
            counted = subprocess.run(
                [
                    "perf",
                    "stat",
                    "-x,",
                    "-e",
                    ",".join(EVENTS),
                    "-p",
                    pids,
                    "--",
                    "sleep",
                    f"{window}",
                ],
                capture_output=True,
                text=True,
                timeout=window + 30,
            )
            out, errors = load.communicate(timeout=duration + WARMUP + 60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(timeout=10)
    figures = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": errors}
    if "messages_per_s" not in figures:
        return {"contender": key, "pinned": pin, "error": str(figures.get("error"))[-300:]}
    counts = _perf_counts(counted.stderr)
    messages = figures["messages_per_s"] * window
    return {
        "contender": key,
        "pinned": pin,
        "messages_per_s": figures["messages_per_s"],
        "server_cpu_cores": figures.get("server_cpu_cores"),
        **{f"{event}_per_message": count / messages for event, count in counts.items()},
    }


def _perf_counts(text: str) -> dict[str, float]:
    """Event -> count, from ``perf stat -x,`` output (value first, event name third)."""
    counts = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in EVENTS and fields[0].replace(".", "").isdigit():
            counts[fields[2]] = float(fields[0])
    missing = [event for event in EVENTS if event not in counts]
    if missing:
        raise RuntimeError(f"perf counted no {', '.join(missing)}:\n{text.strip()[-500:]}")
    return counts


def table(rows: Sequence[dict[str, Any]]) -> str:
    labels = {c.key: c.label for c in CONTENDERS}
    lines = [
        "| contender | cores | msg/s | server CPU, cores | context switches / msg "
        "| CPU migrations / msg | futex calls / msg | system calls / msg |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        where = "pinned" if row["pinned"] else "as deployed (unpinned)"
        if "error" in row:
            lines.append(f"| {labels[row['contender']]} | {where} | error: {row['error']} |")
            continue
        lines.append(
            f"| {labels[row['contender']]} | {where} | {row['messages_per_s']:,.0f} "
            f"| {row['server_cpu_cores']:.2f} | {row['context-switches_per_message']:.2f} "
            f"| {row['cpu-migrations_per_message']:.3f} "
            f"| {row['syscalls:sys_enter_futex_per_message']:.2f} "
            f"| {row['raw_syscalls:sys_enter_per_message']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.switches", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=[c.key for c in CONTENDERS],
        help="this contender (repeatable); default: " + ", ".join(DEFAULT_CONTENDERS),
    )
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--window", type=float, default=4.0, help="seconds counted")
    arguments = parser.parse_args(argv)
    raise_open_files_limit()
    rows = [
        measure(key, pin, arguments.connections, arguments.size, arguments.window)
        for key in arguments.only or DEFAULT_CONTENDERS
        for pin in ((True, False) if can_pin() else (False,))
    ]
    text = table(rows)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "switches.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
