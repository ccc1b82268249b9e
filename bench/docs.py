"""docs/benchmarks.md: the latest tables and plot, the machine, and how to rerun.

The page is rewritten by every ``python -m bench --write-docs``, except the sections it does not
write: "What dominates the hot path", written by hand from a profile, and the tables that
``python -m bench.fanout``, ``bench.floor``, ``bench.history``, ``bench.idle`` and
``bench.cluster`` put under their own headings. Those are kept as they are, so a run of some
rows only, or ``--report-only``, loses none of them.
"""

from __future__ import annotations

__all__ = ["write_benchmarks_page", "write_section"]

import re
import shlex
import shutil
from pathlib import Path

from bench.contenders import CONTENDERS
from bench.record import Document

HOT_PATH_HEADING = "## What dominates the hot path"
FANOUT_HEADING = "## Broadcast fan-out"
FLOOR_HEADING = "## Idle memory floor"
HISTORY_HEADING = "## Rooms with history"
IDLE_SCALE_HEADING = "## Idle connections at scale"
CLUSTER_HEADING = "## A simulated cluster"
# What the page says a full `make bench` takes (bench, fan-out, floor, history, idle, cluster).
_MINUTES = 15
HOT_PATH_PLACEHOLDER = "TODO(profile)"


def write_benchmarks_page(document: Document, tables: str, plot: Path, docs: Path) -> Path:
    """Write ``docs/benchmarks.md`` and copy the plot next to it; return the page's path."""
    page = docs / "benchmarks.md"
    image = docs / "benchmarks-throughput.png"
    if plot.exists():
        shutil.copyfile(plot, image)
    existing = page.read_text() if page.exists() else ""
    kept = [
        _section(existing, HOT_PATH_HEADING) or f"{HOT_PATH_HEADING}\n\n{HOT_PATH_PLACEHOLDER}\n",
        _section(existing, FLOOR_HEADING),
        _section(existing, FANOUT_HEADING),
        _section(existing, HISTORY_HEADING),
        _section(existing, IDLE_SCALE_HEADING),
        _section(existing, CLUSTER_HEADING),
    ]
    page.write_text(_page(document, tables, image.name, "\n".join(filter(None, kept))))
    return page


def _page(document: Document, tables: str, image: str, kept: str) -> str:
    machine = document["machine"]
    when = document["date"].replace("T", " ")[:16]
    minutes = document.get("wall_time_s", 0) / 60
    source = document.get("flask_duplex_commit")
    commit = f"\n- Flask-Duplex at commit {source}" if source else ""
    load = ""
    if document.get("load_average_start") is not None:
        end = document.get("load_average_end")
        load = (
            f"\n- Load average (1 minute) {document['load_average_start']:g} at the start and "
            f"{'unknown' if end is None else format(end, 'g')} at the end, on "
            f"{machine['cores']} cores: above the number of cores, other programs were running "
            "and the figures are noisier (CPU time per operation less so than rates)"
        )
    versions = ", ".join(f"{name} {version}" for name, version in document["versions"].items())
    contenders = "\n".join(
        f"| {c.label} | `{shlex.join(c.command('python', 'PORT'))}` |" for c in CONTENDERS
    )
    run = {c["key"] for c in document["contenders"]}
    absent = [c.label for c in CONTENDERS if c.key not in run]
    if absent:
        contenders += (
            "\n\nNot in the run below (added since, or not installed where it ran: see the notes "
            "under the results): " + ", ".join(absent) + "."
        )
    # The tables' own headings are level 3, under "Results".
    return f"""# Benchmarks

Flask-Duplex next to its peers, each serving the same echo route, measured one after the other in
one run of `make bench`. These are the figures of one machine on one day: compare the rows with
each other, and rerun them on your own hardware before you size a deployment by them.

## How to rerun

```sh
make bench        # about {_MINUTES} minutes; rewrites this page and bench/results/
make bench-smoke  # each contender starts, runs every scenario at its smallest, and stops
.venv-bench/bin/python -m bench.floor  # a held plain request's cost, beside a WebSocket's
.venv-bench/bin/python -m bench.idle --steps 100,1000  # idle connections at scale, small
.venv-bench/bin/python -m bench.switches  # thread switches per message, pinned and not (perf)
.venv-bench/bin/python -m bench.cycle_cost  # a bare connection's server CPU against a plain GET's
# Some rows only: contenders with --only, scenarios with --scenario (both repeatable)
.venv-bench/bin/python -m bench --only flask-duplex-werkzeug --only flask-sock-werkzeug \\
    --scenario cycle-x10 --scenario get-x10 --scenario open-x1
.venv-bench/bin/python -m bench --only flask-duplex-gevent --scenario idle-10000
.venv-bench/bin/python -m bench --only flask-duplex-uwsgi-threads \\
    --only flask-duplex-uwsgi-gevent --scenario echo-65536-x1 --scenario cycle-x10
```

The peers are installed only in `.venv-bench` (created by `make bench`), never as dependencies of
the package; so is uWSGI, whose rows are skipped, saying why, where it does not build.
`python -m bench --help` lists the options, and the names of the contenders and scenarios;
`--report-only` rebuilds the tables from the last saved figures.

## What was measured

Every contender is started as its own process on a free loopback port and serves `/echo`, which
sends every message back. Messages up to 1 MiB are accepted everywhere; `/echo` negotiates no
compression. The load generator is a separate process using the `picows` client; where the
machine has two cores, the server is pinned to one and the load generator to the other. Both
raise their limit on open files to the hard limit (the launcher sets it in the server).

**Server CPU per operation** is the figure to read for what a connection or a message costs: the
user plus system CPU time of the server's whole process tree (gunicorn's master and worker,
uWSGI's master, worker and HTTP router, Werkzeug's threads, those that ended included), read from
`/proc/PID/stat` at the start and the end of the timed window, divided by the operations completed
in the window. It measures the work the server did, so it moves far less than a rate when other
programs share the machine.

- **Echo**: 32 B and 64 KiB binary messages over 1, 10 and 100 connections; each connection sends
  a message, waits for its echo, and sends the next. Messages/s are echoes completed per second
  over all connections; MB/s is payload (10⁶ bytes) echoed per second; round trips are measured
  per message, from send to the whole echo received.
- **As deployed (unpinned)**: after the pinned pass, the echo of 32 B over 10 connections, of
  64 KiB over 10 and of 32 B over 1 run again on Flask-Duplex's three servers, websockets'
  threading and asyncio servers and picows, each on a fresh server, with server and load
  generator free to run on any core, as a deployed server is. The pinned figures say what the
  server alone can do; the unpinned ones add what a thread per connection pays where the
  scheduler moves threads between cores, and each table says which it shows.
  `--pinned-only` skips this pass.
- **Fragmented messages** (`frag-deflate-x1`, `frag-deflate-x10`, `frag-x10`): a 64 KiB text
  message (JSON-like, from a fixed seed) sent in 256-byte frames and echoed whole, one message in
  flight per connection. *deflate* is the load of the Autobahn test suite's case 12.1.14: the
  client offers permessage-deflate (`permessage-deflate; client_max_window_bits`, as browsers
  do), compresses each message on its own, and cuts the compressed payload into 256-byte frames;
  the server inflates and reassembles them, and deflates its echo with its library's default
  settings. picows cannot negotiate permessage-deflate, so its row is n/a. *uncompressed* sends
  the same text in 256 frames of 256 bytes: reassembly alone. The load generator frames,
  masks and compresses each message once, before the timed window, and writes the frames as they
  are; it inflates and checks every echo.
- **Connection cycle** (`cycle-x10`): 10 concurrent loops, each: TCP connect, WebSocket handshake
  (101), one 16 B echo, polite close (the client's close frame, the server's close frame, the
  server's TCP close). Cycles/s over the window, and server CPU µs per cycle. A cycle that ends
  without the server's close frame is listed under *Notes*.
- **Plain GET** (`get-x10`, the Flask apps only): the same Flask app on the same server answers
  `GET /plain` with a few bytes; 10 loops each connect, send one request with
  `Connection: close`, read the response until the server closes, and close. Its server CPU per
  request is the ceiling of the cycle (see below).
- **Opening** (`open-x1`): one client opens one connection at a time (closing it politely before
  the next, untimed) and times TCP connect to 101: the latency a lone client sees, apart from the
  rate under 10 concurrent loops, where the time to open mostly measures the server's accept
  queue.
- **Idle connections** (`idle-1000`, and `idle-10000` on one worker of gunicorn's gevent, which
  holds them without a thread each; the asyncio servers cost the same per connection at 1,000):
  opened 100 at a time on a freshly started server; the server's OS threads (`/proc/PID/task`) and
  resident memory (`VmRSS`) before and with them open give the cost per connection (for gunicorn,
  the worker process; for uWSGI, the worker and its HTTP router). With all of them open, a new
  client opens one more connection and times 100 echoes of 32 B, one at a time. Opening stops at
  the first batch in which a connection fails, and the figures cover those that opened: gunicorn's
  gthread worker and uWSGI's threads hold at most `--threads` (here 256) connections and leave the
  others waiting for a thread, and a machine may run out of ports or file descriptors; the error
  says how many opened.

## What bounds each row here

- **The connection cycle: a plain GET.** A WebSocket cycle does all that a plain request does
  (accept, parse an HTTP request, route it through Flask, answer, close the TCP connection) and
  more (the handshake's checks and headers, an echo, two close frames). The plain GET on the same
  server and app is therefore the most a cycle can hope for: the ratio *GET CPU ÷ cycle CPU*
  (target: at least 0.60x) says how close Flask-Duplex comes, and *flask-sock's CPU ÷
  Flask-Duplex's* (target: at least 1.10x) how it compares with the library users migrate from.
  On Werkzeug both include the dev server's line of log per request.
- **Fragmented messages: websockets' own parser.** Flask-Duplex parses frames and inflates and
  deflates permessage-deflate with the sans-I/O layer of `websockets` (`websockets.protocol`),
  which websockets' asyncio server runs too: that row is the cost of the same parser on one event
  loop, without WSGI, and the ratio to it says what Flask-Duplex adds around the parser
  (reassembly, locks, its reader and writer). picows (a parser in Cython) shows what the
  uncompressed row costs without any Python per frame.
- **Idle memory: a held plain Flask request.** A connection held by a Flask view costs the server
  its thread or greenlet, the WSGI environ, the buffered reader and Flask's request context,
  before any WebSocket code runs; `python -m bench.floor` (run by `make bench`, table below)
  measures that floor on Werkzeug and on gunicorn's gevent worker, beside the same request
  carrying four headers the size of a handshake's (what reading a handshake costs any library)
  and an idle Flask-Duplex connection.

| contender | command |
|---|---|
{contenders}

## Machine

- Run on {when} UTC, in {minutes:.0f} minutes
- {machine["cores"]} cores ({machine["cpu"] or "CPU model unknown"}), {machine["platform"]}
- {machine["implementation"]} {machine["python"]}
- {versions}{commit}{load}

## Results

![Echo throughput, messages/s per contender]({image})

{tables.rstrip()}

{kept.rstrip()}
"""


def write_section(page: Path, heading: str, text: str) -> None:
    """Put ``text`` under ``heading`` (a level-2 heading) in ``page``, replacing what was there.

    A section not on the page yet goes at its end. ``python -m bench.fanout`` and
    ``python -m bench.floor`` add theirs this way after ``python -m bench`` rewrote the page.
    """
    existing = page.read_text() if page.exists() else "# Benchmarks\n"
    old, new = _section(existing, heading), f"{heading}\n\n{text.rstrip()}\n"
    page.write_text(existing.replace(old, new, 1) if old else existing.rstrip("\n") + "\n\n" + new)


def _section(text: str, heading: str) -> str:
    """The section of ``text`` under ``heading``, up to the next level-2 heading; or empty."""
    # The heading on a line of its own: "## Broadcast fan-out" is also the end of a
    # "### Broadcast fan-out: ..." heading, and the start of a longer one.
    match = re.search(rf"^{re.escape(heading)}$", text, re.MULTILINE)
    if match is None:
        return ""
    start = match.start()
    end = text.find("\n## ", start + len(heading))
    section = text[start:] if end < 0 else text[start : end + 1]
    # Without the blank lines that part it from the next section, which stay on the page.
    return section.rstrip("\n") + "\n"
