"""Tables of the message scenarios: echo over open connections, and fragmented messages."""

from __future__ import annotations

__all__ = ["echo_tables", "fragmented_tables", "unpinned_table"]

from collections.abc import Sequence

from bench.contenders import CONTENDERS, FLASK_DUPLEX
from bench.record import Document
from bench.report.tables import (
    Figures,
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
    scenario_labels,
)
from bench.scenarios import UNPINNED

Columns = Sequence[tuple[str, str]]  # (scenario key, column header)

# The ratio rows of the echo tables, as they have always read: Flask-Duplex's figure ÷ the
# peer's, whichever way is better (each table's title says).
_DIVIDED = "*{mine} ÷ {theirs}{where}*"
# The ratio rows of the newer tables: above 1.00x is always better for Flask-Duplex.
_AGAINST = "*{mine} against {theirs}{where}*"


def echo_tables(document: Document) -> list[str]:
    """Echo throughput, payload, round trips and CPU: a column per echo scenario."""
    columns = [(s["key"], s["label"]) for s in document["scenarios"] if s["kind"] == "echo"]
    if not columns:
        return []
    return [
        _figure_table(
            document,
            "Echo throughput, messages/s (higher is better)",
            columns,
            "messages_per_s",
            integer,
        ),
        _figure_table(
            document,
            "Echo throughput, MB/s of payload (higher is better)",
            columns,
            "mb_per_s",
            decimal,
            ratios=False,
        ),
        _figure_table(
            document, "Round trip, median, ms (lower is better)", columns, "p50_ms", milliseconds
        ),
        _figure_table(
            document,
            "Round trip, 99th percentile, ms (lower is better)",
            columns,
            "p99_ms",
            milliseconds,
        ),
        _cpu_table(document, columns),
    ]


def fragmented_tables(document: Document) -> list[str]:
    """Fragmented messages: messages/s and the server's CPU per message, a column per load."""
    columns = [(s["key"], s["label"]) for s in document["scenarios"] if s["kind"] == "fragmented"]
    if not columns:
        return []
    rows = [
        [
            label,
            *(
                cell(document, key, scenario, name, fmt)
                for scenario, _ in columns
                for name, fmt in _FRAGMENTED
            ),
        ]
        for key, label in contenders(document)
    ]
    rows += [
        [
            label,
            *(
                ratio(document, mine, theirs, scenario, name, inverse=name == "server_cpu_us")
                for scenario, _ in columns
                for name, _ in _FRAGMENTED
            ),
        ]
        for mine, theirs, label in peer_rows(document, _AGAINST)
    ]
    header = [
        "",
        *(f"{label}: {what}" for _, label in columns for what in ("msg/s", "server CPU µs/msg")),
    ]
    title = (
        "### Fragmented messages: 64 KiB of text in 256-byte frames, echoed whole "
        "(msg/s: higher is better; CPU µs per message: lower is better)"
    )
    note = (
        "One message in flight per connection; the echo comes back as one message. *deflate*: "
        "permessage-deflate negotiated, each message compressed on its own and the compressed "
        f"payload cut into 256-byte frames{_wire_note(document, columns)}, the load of "
        "Autobahn's case 12.1.14; *uncompressed*: 256 frames of 256 bytes. picows has no "
        "permessage-deflate (n/a). In the italic rows, above 1.00x is better for Flask-Duplex: "
        "its msg/s ÷ the peer's, and the peer's CPU per message ÷ its own."
    )
    return [f"{title}\n\n{note}\n\n" + markdown_table(header, rows)]


_FRAGMENTED: tuple[tuple[str, Format], ...] = (
    ("messages_per_s", integer),
    ("server_cpu_us", microseconds),
)


def _wire_note(document: Document, columns: Columns) -> str:
    """`` (N frames, X KiB per message)`` of the compressed scenario, from any contender."""
    keys = {key for key, _ in columns}
    compressed = [
        s["key"] for s in document["scenarios"] if s["key"] in keys and s.get("compressed")
    ]
    for key, _ in contenders(document):
        for scenario in compressed:
            frames = figure(document, key, scenario, "frames_per_message")
            size = figure(document, key, scenario, "wire_bytes_per_message")
            if frames and size:
                return f" ({frames:.0f} frames, {size / 1024:.1f} KiB per message on average)"
    return ""


def _figure_table(
    document: Document,
    title: str,
    columns: Columns,
    name: str,
    fmt: Format,
    *,
    ratios: bool = True,
) -> str:
    """One figure of several scenarios: a row per contender, then Flask-Duplex's ratios."""
    rows = [
        [label, *(cell(document, key, scenario, name, fmt) for scenario, _ in columns)]
        for key, label in contenders(document)
    ]
    if ratios:
        rows += [
            [label, *(ratio(document, mine, theirs, scenario, name) for scenario, _ in columns)]
            for mine, theirs, label in peer_rows(document, _DIVIDED)
        ]
    return f"### {title}\n\n" + markdown_table(["", *(label for _, label in columns)], rows)


def _cpu_table(document: Document, columns: Columns) -> str:
    """CPU use during the timed window, so a reader sees which side was the bottleneck."""

    def cpu(key: str, scenario: str) -> str:
        server = figure(document, key, scenario, "server_cpu_cores")
        client = figure(document, key, scenario, "client_cpu_cores")
        if server is None or client is None:
            return cell(document, key, scenario, "server_cpu_cores", decimal)
        return f"{server:.2f} / {client:.2f}"

    rows = [
        [label, *(cpu(key, scenario) for scenario, _ in columns)]
        for key, label in contenders(document)
    ]
    title = "### CPU during the echo, server / load generator, in cores (1.00 = one core busy)"
    note = (
        "Where the load generator reaches about 1.00, it set the pace, not the server: that "
        "server's figures are a floor."
    )
    return f"{title}\n\n{note}\n\n" + markdown_table(["", *(label for _, label in columns)], rows)


# Flask-Duplex's unpinned figures are also given as ratios to these peers': websockets' threading
# server runs a thread per connection as Werkzeug and gthread do; its asyncio server, one loop.
_UNPINNED_PEERS = ("websockets-threading", "websockets-asyncio")


def unpinned_table(document: Document) -> list[str]:
    """The echo scenarios run twice, pinned and as deployed (unpinned): messages/s side by side.

    Empty when the run had no unpinned pass (``--pinned-only``, ``--no-pin``, one core).
    """
    unpinned: dict[str, dict[str, Figures]] = document.get("unpinned") or {}
    scenarios = scenario_labels(document)
    columns = [key for key in UNPINNED if key in scenarios]
    keys = [c.key for c in CONTENDERS if c.key in unpinned]
    if not keys or not columns:
        return []
    labels = dict(contenders(document))

    def rate(by_contender: dict[str, dict[str, Figures]], key: str, scenario: str) -> str:
        figures = by_contender.get(key, {}).get(scenario)
        if figures is None:
            return ""
        value = figures.get("messages_per_s")
        return ("error" if figures.get("error") else "n/a") if value is None else integer(value)

    def share(
        by_contender: dict[str, dict[str, Figures]], mine: str, theirs: str, scenario: str
    ) -> str:
        numerator = by_contender.get(mine, {}).get(scenario, {}).get("messages_per_s")
        denominator = by_contender.get(theirs, {}).get(scenario, {}).get("messages_per_s")
        return (
            "n/a" if numerator is None or not denominator else f"*{numerator / denominator:.2f}x*"
        )

    both = (document["results"], unpinned)
    rows = [
        [labels.get(key, key), *(rate(run, key, column) for column in columns for run in both)]
        for key in keys
    ]
    for peer in (p for p in _UNPINNED_PEERS if p in unpinned):
        for mine in (c for c in CONTENDERS if c.library == FLASK_DUPLEX and c.key in unpinned):
            label = f"*{FLASK_DUPLEX} on {mine.server} ÷ {labels.get(peer, peer)}*"
            rows.append(
                [label, *(share(run, mine.key, peer, column) for column in columns for run in both)]
            )
    header = [
        "",
        *(
            f"{scenarios[column]}: {how}"
            for column in columns
            for how in ("pinned", "as deployed (unpinned)")
        ),
    ]
    title = "### Echo as deployed (unpinned) beside pinned, messages/s (higher is better)"
    note = (
        "*pinned*: the figures of the tables above, the server on one core and the load "
        "generator on the other. *as deployed (unpinned)*: the same scenario run again after "
        "them, on a fresh server, with server and load generator free to run on any core, as a "
        "deployed server is. A server with a thread per connection hands the GIL from thread to "
        "thread, and unpinned those threads wake on either core. In the italic rows, above "
        "1.00x is better for Flask-Duplex: its msg/s ÷ the peer's, in the same column."
    )
    return [f"{title}\n\n{note}\n\n" + markdown_table(header, rows)]
