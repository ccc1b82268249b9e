"""docs/benchmarks.md: the latest tables and plot, the machine, and how to rerun.

The page is rewritten by every ``make bench``, except its "What dominates the hot path"
section, which is written by hand from a profile and kept as it is.
"""

from __future__ import annotations

__all__ = ["write_benchmarks_page"]

import shutil
from pathlib import Path

from bench.contenders import CONTENDERS
from bench.record import Document

HOT_PATH_HEADING = "## What dominates the hot path"
HOT_PATH_PLACEHOLDER = "TODO(profile)"


def write_benchmarks_page(document: Document, tables: str, plot: Path, docs: Path) -> Path:
    """Write ``docs/benchmarks.md`` and copy the plot next to it; return the page's path."""
    page = docs / "benchmarks.md"
    image = docs / "benchmarks-throughput.png"
    if plot.exists():
        shutil.copyfile(plot, image)
    hot_path = _kept_hot_path_section(page)
    page.write_text(_page(document, tables, image.name, hot_path))
    return page


def _page(document: Document, tables: str, image: str, hot_path: str) -> str:
    machine = document["machine"]
    when = document["date"].replace("T", " ")[:16]
    minutes = document.get("wall_time_s", 0) / 60
    source = document.get("flask_duplex_commit")
    commit = f"\n- Flask-Duplex at commit {source}" if source else ""
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    contenders = "\n".join(
        f"| {c.label} | `{' '.join(c.command('python', 'PORT'))}` |" for c in CONTENDERS
    )
    # The tables' own headings are level 3, under "Results".
    return f"""# Benchmarks

Flask-Duplex next to its peers, each serving the same echo route, measured one after the other in
one run of `make bench`. These are the figures of one machine on one day: compare the rows with
each other, and rerun them on your own hardware before you size a deployment by them.

## How to rerun

```sh
make bench        # about 5 minutes; rewrites this page and bench/results/
make bench-smoke  # each contender starts, echoes 32 B and 64 KiB once, and stops
.venv-bench/bin/python -m bench.floor  # a held plain request's cost, beside a WebSocket's
.venv-bench/bin/python -m bench --duration 5 --only flask-duplex-werkzeug --only flask-sock-werkzeug
```

The peers are installed only in `.venv-bench` (created by `make bench`), never as dependencies of
the package. `python -m bench --help` lists the options.

## What was measured

Every contender is started as its own process on a free loopback port and serves `/echo`, which
sends every message back. Messages up to 1 MiB are accepted everywhere and no compression is
negotiated. The load generator is a separate process using the `picows` client; where the machine
has two cores, the server is pinned to one and the load generator to the other.

- **Echo**: 32 B and 64 KiB binary messages over 1, 10 and 100 connections; each connection sends
  a message, waits for its echo, and sends the next. Messages/s are echoes completed per second
  over all connections; MB/s is payload (10⁶ bytes) echoed per second; round trips are measured
  per message, from send to the whole echo received.
- **Handshakes**: 10 loops, each opening a connection and closing it politely (close frame, then
  the server hangs up), as fast as they can.
- **1,000 idle connections**: opened 100 at a time on a freshly started server; the server's OS
  threads (`/proc/PID/task`) and resident memory (`VmRSS`) before and with them open give the cost
  per connection. For gunicorn, the worker process is measured. gunicorn's gthread worker holds at
  most `--threads` (here 256) connections at once and leaves the others waiting for a thread, so
  there opening stops after the first batch that times out, and the figures cover the connections
  that opened.

| contender | command |
|---|---|
{contenders}

## Machine

- Run on {when} UTC, in {minutes:.0f} minutes
- {machine["cores"]} cores ({machine["cpu"] or "CPU model unknown"}), {machine["platform"]}
- {machine["implementation"]} {machine["python"]}
- {versions}{commit}

## Results

![Echo throughput, messages/s per contender]({image})

{tables.rstrip()}

{hot_path.rstrip()}
"""


def _kept_hot_path_section(page: Path) -> str:
    """The hand-written hot-path section of the existing page, or the placeholder."""
    placeholder = f"{HOT_PATH_HEADING}\n\n{HOT_PATH_PLACEHOLDER}\n"
    try:
        text = page.read_text()
    except FileNotFoundError:
        return placeholder
    start = text.find(HOT_PATH_HEADING)
    if start < 0:
        return placeholder
    end = text.find("\n## ", start + len(HOT_PATH_HEADING))
    return text[start:] if end < 0 else text[start : end + 1]
