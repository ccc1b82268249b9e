"""Tables of what a connection costs: the cycle and its ceiling, opening, idle connections."""

from __future__ import annotations

__all__ = ["cycle_tables", "idle_tables", "open_table"]

from collections.abc import Sequence

from bench.contenders import CONTENDERS, FLASK_DUPLEX, flask_sock_peer
from bench.record import Document
from bench.report.tables import (
    Format,
    cell,
    contenders,
    decimal,
    figure,
    integer,
    markdown_table,
    microseconds,
    milliseconds,
    peer_rows,
    ratio,
    runs,
    seconds,
)
from bench.scenarios import CYCLE, GET, OPEN

# Flask-Duplex's targets for the cycle's server CPU (issue #17), as "the other's CPU ÷ ours".
GET_TARGET = 0.6
FLASK_SOCK_TARGET = 1.1

_AGAINST = "*{mine} against {theirs}{where}*"
_DIVIDED = "*{mine} ÷ {theirs}{where}*"
# (figure, header, format, how a ratio row compares it: "rate", "cost" or None for no ratio)
Column = tuple[str, str, Format, str | None]


def cycle_tables(document: Document) -> list[str]:
    """The cycle beside the plain GET, for every contender; then Flask-Duplex against both."""
    keys = {s["key"] for s in document["scenarios"]}
    if CYCLE.key not in keys and GET.key not in keys:
        return []
    columns: list[tuple[str, Column]] = [
        (CYCLE.key, ("cycles_per_s", "cycles/s (higher is better)", integer, "rate")),
        (
            CYCLE.key,
            ("server_cpu_us", "server CPU µs / cycle (lower is better)", microseconds, "cost"),
        ),
        (CYCLE.key, ("server_cpu_cores", "server cores busy", decimal, None)),
        (GET.key, ("requests_per_s", "plain GET: requests/s", integer, None)),
        (GET.key, ("server_cpu_us", "plain GET: server CPU µs / request", microseconds, None)),
    ]
    title = (
        "### Connection cycle: 10 loops, each connect, handshake, 16 B echo, polite close; "
        "beside a plain GET"
    )
    note = (
        "Server CPU is user plus system time of the server's processes over the timed window, "
        "divided by the cycles completed in it: it depends far less on what else the machine is "
        "doing than cycles/s does. *Plain GET*: the same Flask app on the same server answers "
        "`GET /plain` (a few bytes) to 10 loops that each connect, send one request with "
        "`Connection: close` and read the response until the server closes (n/a: not a Flask "
        "app). In the italic rows, above 1.00x is better for Flask-Duplex: its cycles/s ÷ the "
        "peer's, and the peer's CPU per cycle ÷ its own."
    )
    table = _multi_scenario_table(document, columns)
    sections = [f"{title}\n\n{note}\n\n{table}"]
    ceiling = _ceiling_table(document)
    if ceiling:
        sections.append(ceiling)
    return sections


def _ceiling_table(document: Document) -> str:
    """Flask-Duplex's CPU per cycle against the plain GET and flask-sock on its own server."""
    present = {key for key, _ in contenders(document)}
    rows = []
    for contender in CONTENDERS:
        if contender.library != FLASK_DUPLEX or contender.key not in present:
            continue
        mine = figure(document, contender.key, CYCLE.key, "server_cpu_us")
        get = figure(document, contender.key, GET.key, "server_cpu_us")
        peer = flask_sock_peer(contender)
        theirs = figure(document, peer.key, CYCLE.key, "server_cpu_us") if peer else None
        rows.append(
            [
                contender.server,
                _maybe(mine, microseconds),
                _maybe(get, microseconds),
                _against_target(get, mine, GET_TARGET),
                _maybe(theirs, microseconds),
                _against_target(theirs, mine, FLASK_SOCK_TARGET),
            ]
        )
    if not rows:
        return ""
    header = [
        "server",
        f"{FLASK_DUPLEX}: µs / cycle",
        "plain GET: µs / request",
        f"GET ÷ {FLASK_DUPLEX} (target ≥ {GET_TARGET:.2f}x)",
        "flask-sock: µs / cycle",
        f"flask-sock ÷ {FLASK_DUPLEX} (target ≥ {FLASK_SOCK_TARGET:.2f}x)",
    ]
    title = (
        f"### {FLASK_DUPLEX}'s server CPU per cycle against its ceiling and flask-sock "
        "(ratios: higher is better)"
    )
    note = (
        "A whole WebSocket cycle cannot cost the server less than a plain GET on the same "
        "server and app: connect, parse a request, route it through Flask, answer, close. "
        f"*GET ÷ {FLASK_DUPLEX}* is the GET's CPU per request ÷ the cycle's CPU per cycle "
        "(1.00x would be a cycle as cheap as a GET); *flask-sock ÷ "
        f"{FLASK_DUPLEX}* is flask-sock's CPU per cycle ÷ {FLASK_DUPLEX}'s."
    )
    return f"{title}\n\n{note}\n\n" + markdown_table(header, rows)


def _against_target(theirs: float | None, mine: float | None, target: float) -> str:
    if theirs is None or not mine:
        return "n/a"
    # Judged as shown: a ratio printed as 1.10x meets a target of 1.10x.
    value = round(theirs / mine, 2)
    return f"*{value:.2f}x*, {'met' if value >= target else 'not met'}"


def _maybe(value: float | None, fmt: Format) -> str:
    return "n/a" if value is None else fmt(value)


def open_table(document: Document) -> list[str]:
    """The time to open one connection when nothing else is going on."""
    if OPEN.key not in {s["key"] for s in document["scenarios"]}:
        return []
    columns: list[tuple[str, Column]] = [
        (OPEN.key, ("open_p50_ms", "median, ms", milliseconds, "cost")),
        (OPEN.key, ("open_p99_ms", "p99, ms", milliseconds, "cost")),
        (OPEN.key, ("server_cpu_us", "server CPU µs / open and close", microseconds, "cost")),
    ]
    title = (
        "### Opening a connection: one client, one connection at a time, TCP connect to 101 "
        "(lower is better)"
    )
    note = (
        "Each connection is closed politely before the next opens; the close is not timed but "
        "its CPU is counted. The cycle's loops above measure the rate under concurrency; this "
        "is the latency a lone client sees. In the italic rows, above 1.00x is better for "
        "Flask-Duplex: the peer's figure ÷ its own."
    )
    return [f"{title}\n\n{note}\n\n" + _multi_scenario_table(document, columns)]


def idle_tables(document: Document) -> list[str]:
    """One table per idle scenario: threads and memory per connection, and a new client's echo."""
    idle = [s for s in document["scenarios"] if s["kind"] == "idle"]
    tables = []
    for scenario in idle:
        columns: list[tuple[str, Column]] = [
            (scenario["key"], (name, header, fmt, kind)) for name, header, fmt, kind in _IDLE
        ]
        title = (
            f"### {scenario['label']}, opened 100 at a time, and a new client's 32 B echo while "
            "they are open (lower is better)"
        )
        note = (
            "The italic rows are Flask-Duplex's figure ÷ the peer's: below 1.00x, Flask-Duplex "
            "costs less. The new client opens one more connection once all are open, and times "
            "100 echoes, one at a time."
            + (
                " Only gunicorn's gevent worker runs this one (one worker holds them all); "
                "the others' cost per connection is in the table of 1,000."
                if scenario["connections"] > 1000
                else ""
            )
        )
        table = _multi_scenario_table(
            document, columns, ratios=_DIVIDED, only_runnable=scenario["key"]
        )
        tables.append(f"{title}\n\n{note}\n\n{table}")
    return tables


_IDLE: tuple[Column, ...] = (
    ("opened", "opened", integer, None),
    ("open_seconds", "time to open, s", seconds, "divide"),
    ("threads_per_connection", "threads / connection", decimal, "divide"),
    ("rss_kib_per_connection", "KiB RSS / connection", decimal, "divide"),
    ("threads_with", "threads, all open", integer, None),
    ("rss_kib_with", "RSS MiB, all open", lambda kib: decimal(kib / 1024), None),
    ("probe_p50_ms", "new client's echo, median ms", milliseconds, "divide"),
    ("probe_p99_ms", "new client's echo, p99 ms", milliseconds, "divide"),
)


def _multi_scenario_table(
    document: Document,
    columns: Sequence[tuple[str, Column]],
    ratios: str = _AGAINST,
    only_runnable: str | None = None,
) -> str:
    """Figures of one or more scenarios: a row per contender, then Flask-Duplex's ratios.

    A column's ratio kind says how its ratio rows compare: ``rate`` (Flask-Duplex ÷ peer),
    ``cost`` (peer ÷ Flask-Duplex: above 1.00x is better either way), ``divide`` (Flask-Duplex ÷
    peer, for the tables that have always read so), or None for no ratio. With
    ``only_runnable``, a scenario key, the rows are those of the contenders that can run it.
    """

    def shown(key: str) -> bool:
        return only_runnable is None or runs(key, only_runnable)

    rows = [
        [
            label,
            *(
                _probe_cell(document, key, scenario, name, fmt)
                for scenario, (name, _, fmt, _) in columns
            ),
        ]
        for key, label in contenders(document)
        if shown(key)
    ]
    for mine, theirs, label in peer_rows(document, ratios):
        if not (shown(mine) and shown(theirs)):
            continue
        rows.append(
            [
                label,
                *(
                    ""
                    if kind is None
                    else ratio(document, mine, theirs, scenario, name, inverse=kind == "cost")
                    for scenario, (name, _, _, kind) in columns
                ),
            ]
        )
    return markdown_table(["", *(header for _, (_, header, _, _) in columns)], rows)


def _probe_cell(document: Document, key: str, scenario: str, name: str, fmt: Format) -> str:
    """A cell, where a new client that got no answer reads ``no answer``, not ``error``."""
    if name.startswith("probe_") and figure(document, key, scenario, "probe_error"):
        return "no answer"
    return cell(document, key, scenario, name, fmt)
