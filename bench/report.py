"""The results as Markdown tables: one table per figure, Flask-Duplex's ratios under its values.

Everything here reads a results document (:mod:`bench.record`), so the tables can be rebuilt
from a saved ``latest.json`` without running anything.
"""

from __future__ import annotations

__all__ = ["markdown_report"]

from collections.abc import Callable, Sequence
from typing import Any

from bench.contenders import CONTENDERS, FLASK_DUPLEX, FLASK_SOCK, REFERENCE, flask_sock_peer
from bench.record import Document

Figures = dict[str, Any]
Format = Callable[[float], str]


def markdown_report(document: Document) -> str:
    """All tables of ``document``, with a legend and the list of errors, as Markdown."""
    echo = [s for s in document["scenarios"] if s["kind"] == "echo"]
    columns = [(s["key"], s["label"]) for s in echo]
    sections = [_legend(document)]
    if echo:
        sections += [
            _figure_table(
                document,
                "Echo throughput, messages/s (higher is better)",
                columns,
                "messages_per_s",
                _integer,
            ),
            _figure_table(
                document,
                "Echo throughput, MB/s of payload (higher is better)",
                columns,
                "mb_per_s",
                _decimal,
                ratios=False,
            ),
            _figure_table(
                document, "Round trip, median, ms (lower is better)", columns, "p50_ms", _ms
            ),
            _figure_table(
                document,
                "Round trip, 99th percentile, ms (lower is better)",
                columns,
                "p99_ms",
                _ms,
            ),
            _cpu_table(document, columns),
        ]
    if _has(document, "handshakes"):
        sections.append(_handshakes_table(document))
    if _has(document, "idle"):
        sections.append(_idle_table(document))
    errors = _errors(document)
    if errors:
        sections.append("Errors:\n\n" + "\n".join(errors))
    return "\n\n".join(sections) + "\n"


def _legend(document: Document) -> str:
    settings = document["settings"]
    pinned = settings["server_and_client_pinned_to_separate_cores"]
    return (
        f"Each echo and handshake figure is measured over {settings['duration_s']:g} s after "
        f"{settings['warmup_s']:g} s of warm-up; one message in flight per connection. "
        + (
            "The server runs on one core and the load generator on another. "
            if pinned
            else "Server and load generator share the cores. "
        )
        + "Rows in italics are Flask-Duplex's figure divided by the same figure of flask-sock "
        "on the same server, and of websockets' asyncio server."
    )


def _figure_table(
    document: Document,
    title: str,
    columns: Sequence[tuple[str, str]],
    figure: str,
    fmt: Format,
    *,
    ratios: bool = True,
) -> str:
    """One figure of several scenarios: a row per contender, then Flask-Duplex's ratios."""
    results = document["results"]
    rows = [
        [label, *(_cell(results[key].get(scenario), figure, fmt) for scenario, _ in columns)]
        for key, label in _contenders(document)
    ]
    if ratios:
        rows += [
            [label, *(_ratio(results, key, ref, scenario, figure) for scenario, _ in columns)]
            for key, ref, label in _ratio_rows(document)
        ]
    return f"### {title}\n\n" + _table(["", *(label for _, label in columns)], rows)


def _cpu_table(document: Document, columns: Sequence[tuple[str, str]]) -> str:
    """CPU use during the timed window, so a reader sees which side was the bottleneck."""
    results = document["results"]

    def cpu(figures: Figures | None) -> str:
        if not figures or "error" in figures:
            return "error" if figures else ""
        return f"{figures['server_cpu_cores']:.2f} / {figures['client_cpu_cores']:.2f}"

    rows = [
        [label, *(cpu(results[key].get(scenario)) for scenario, _ in columns)]
        for key, label in _contenders(document)
    ]
    title = "### CPU during the echo, server / load generator, in cores (1.00 = one core busy)"
    note = (
        "Where the load generator reaches about 1.00, it set the pace, not the server: that "
        "server's figures are a floor."
    )
    return f"{title}\n\n{note}\n\n" + _table(["", *(label for _, label in columns)], rows)


def _handshakes_table(document: Document) -> str:
    figures = [
        ("handshakes_per_s", "open + close / s (higher is better)", _integer),
        ("open_p50_ms", "open, median ms", _ms),
        ("open_p99_ms", "open, p99 ms", _ms),
    ]
    return _single_scenario_table(
        document, "Handshakes: 10 loops opening and closing connections", "handshakes", figures
    )


def _idle_table(document: Document) -> str:
    figures = [
        ("opened", "opened", _integer),
        ("open_seconds", "time to open, s", _seconds),
        ("threads_per_connection", "threads / connection", _threads),
        ("rss_kib_per_connection", "KiB RSS / connection", _decimal),
        ("threads_with", "threads, all open", _integer),
        ("rss_kib_with", "RSS MiB, all open", lambda kib: _decimal(kib / 1024)),
    ]
    return _single_scenario_table(
        document,
        "1,000 idle connections, opened 100 at a time (costs: lower is better)",
        "idle-1000",
        figures,
        ratio_figures={"open_seconds", "threads_per_connection", "rss_kib_per_connection"},
    )


def _single_scenario_table(
    document: Document,
    title: str,
    scenario: str,
    figures: Sequence[tuple[str, str, Format]],
    ratio_figures: set[str] | None = None,
) -> str:
    """Several figures of one scenario: a row per contender, then Flask-Duplex's ratios."""
    results = document["results"]
    rows = [
        [label, *(_cell(results[key].get(scenario), name, fmt) for name, _, fmt in figures)]
        for key, label in _contenders(document)
    ]
    rows += [
        [
            label,
            *(
                _ratio(results, key, ref, scenario, name)
                if ratio_figures is None or name in ratio_figures
                else ""
                for name, _, _ in figures
            ),
        ]
        for key, ref, label in _ratio_rows(document)
    ]
    return f"### {title}\n\n" + _table(["", *(header for _, header, _ in figures)], rows)


def _contenders(document: Document) -> list[tuple[str, str]]:
    return [(c["key"], c["label"]) for c in document["contenders"]]


def _ratio_rows(document: Document) -> list[tuple[str, str, str]]:
    """(Flask-Duplex contender, reference contender, row label) for every ratio row."""
    present = {key for key, _ in _contenders(document)}
    duplex = [c for c in CONTENDERS if c.library == FLASK_DUPLEX and c.key in present]
    rows = []
    for contender in duplex:
        peer = flask_sock_peer(contender)
        if peer is not None and peer.key in present:
            label = f"*{FLASK_DUPLEX} ÷ {FLASK_SOCK}, both on {contender.server}*"
            rows.append((contender.key, peer.key, label))
    if REFERENCE.key in present:
        rows += [
            (c.key, REFERENCE.key, f"*{FLASK_DUPLEX} on {c.server} ÷ {REFERENCE.label}*")
            for c in duplex
        ]
    return rows


def _cell(figures: Figures | None, figure: str, fmt: Format) -> str:
    if figures is None:
        return ""
    value = figures.get(figure)
    if value is None:
        return "error" if figures.get("error") else "n/a"
    return fmt(value)


def _ratio(results: dict[str, Any], key: str, reference: str, scenario: str, figure: str) -> str:
    mine = results.get(key, {}).get(scenario, {}).get(figure)
    theirs = results.get(reference, {}).get(scenario, {}).get(figure)
    if mine is None or not theirs:
        return "n/a"
    return f"*{mine / theirs:.2f}x*"


def _has(document: Document, kind: str) -> bool:
    return any(s["kind"] == kind for s in document["scenarios"])


def _errors(document: Document) -> list[str]:
    labels = dict(_contenders(document))
    scenario_labels = {s["key"]: s["label"] for s in document["scenarios"]}
    return [
        f"- {labels[key]}, {scenario_labels.get(scenario, scenario)}: {figures['error']}"
        for key, by_scenario in document["results"].items()
        for scenario, figures in by_scenario.items()
        if figures.get("error")
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table padded for reading as plain text; figures are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(["-" * (widths[0] + 2)] + ["-" * (width + 1) + ":" for width in widths[1:]])
        + "|"
    )
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _integer(value: float) -> str:
    return f"{value:,.0f}"


def _decimal(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _seconds(value: float) -> str:
    return f"{value:.2f}"


def _threads(value: float) -> str:
    return f"{value:.2f}"


def _ms(value: float) -> str:
    """Three significant figures, without an exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
