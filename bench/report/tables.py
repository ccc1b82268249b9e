"""How a table is drawn: the cells, the ratios, the number formats, the Markdown.

Everything reads a results document (:mod:`bench.record`), so the tables can be rebuilt from a
saved ``latest.json`` without running anything.
"""

from __future__ import annotations

__all__ = [
    "Figures",
    "Format",
    "cell",
    "contenders",
    "decimal",
    "figure",
    "integer",
    "markdown_table",
    "microseconds",
    "milliseconds",
    "peer_rows",
    "ratio",
    "runs",
    "scenario_labels",
    "seconds",
]

from collections.abc import Callable, Sequence
from typing import Any

from bench.contenders import CONTENDERS, FLASK_DUPLEX, FLASK_SOCK, REFERENCE, flask_sock_peer
from bench.record import Document
from bench.scenarios import SCENARIOS

Figures = dict[str, Any]
Format = Callable[[float], str]

_CONTENDERS = {c.key: c for c in CONTENDERS}
_SCENARIOS = {s.key: s for s in SCENARIOS}


def contenders(document: Document) -> list[tuple[str, str]]:
    """(key, label) of every contender of the run, in order."""
    return [(c["key"], c["label"]) for c in document["contenders"]]


def scenario_labels(document: Document) -> dict[str, str]:
    return {s["key"]: s["label"] for s in document["scenarios"]}


def runs(contender: str, scenario: str) -> bool:
    """Whether the contender can run the scenario; True for names this version does not know."""
    known, runnable = _CONTENDERS.get(contender), _SCENARIOS.get(scenario)
    return not (known and runnable) or runnable.runs_on(known)


def cell(document: Document, contender: str, scenario: str, figure: str, fmt: Format) -> str:
    """One figure, formatted; ``n/a`` where the contender cannot run the scenario.

    ``error`` where the scenario failed, empty where it was not run.
    """
    figures = document["results"].get(contender, {}).get(scenario)
    if figures is None:
        return "" if runs(contender, scenario) else "n/a"
    value = figures.get(figure)
    if value is None:
        return "error" if figures.get("error") else "n/a"
    return fmt(value)


def figure(document: Document, contender: str, scenario: str, name: str) -> Any:
    """The raw figure, or None."""
    return document["results"].get(contender, {}).get(scenario, {}).get(name)


def ratio(
    document: Document,
    mine: str,
    theirs: str,
    scenario: str,
    name: str,
    *,
    inverse: bool = False,
) -> str:
    """``mine``'s figure ÷ ``theirs``, or with ``inverse`` theirs ÷ mine, as ``*1.23x*``."""
    numerator, denominator = (
        figure(document, mine, scenario, name),
        figure(document, theirs, scenario, name),
    )
    if inverse:
        numerator, denominator = denominator, numerator
    if numerator is None or not denominator:
        return "n/a"
    return f"*{numerator / denominator:.2f}x*"


def peer_rows(document: Document, template: str) -> list[tuple[str, str, str]]:
    """(Flask-Duplex contender, peer contender, row label) for every ratio row.

    The peers are flask-sock on the same server, then websockets' asyncio server. ``template``
    makes the label from ``{mine}`` (Flask-Duplex's row), ``{theirs}`` (the peer's) and
    ``{where}`` (``, both on SERVER`` or nothing): ``"*{mine} ÷ {theirs}{where}*"``.
    """
    present = {key for key, _ in contenders(document)}
    duplex = [c for c in CONTENDERS if c.library == FLASK_DUPLEX and c.key in present]
    rows = []
    for contender in duplex:
        peer = flask_sock_peer(contender)
        if peer is not None and peer.key in present:
            where = f", both on {contender.server}"
            label = template.format(mine=FLASK_DUPLEX, theirs=FLASK_SOCK, where=where)
            rows.append((contender.key, peer.key, label))
    if REFERENCE.key in present:
        for contender in duplex:
            mine = f"{FLASK_DUPLEX} on {contender.server}"
            label = template.format(mine=mine, theirs=REFERENCE.label, where="")
            rows.append((contender.key, REFERENCE.key, label))
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table padded for reading as plain text; figures are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [c.rjust(width) for c, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(["-" * (widths[0] + 2)] + ["-" * (width + 1) + ":" for width in widths[1:]])
        + "|"
    )
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def integer(value: float) -> str:
    return f"{value:,.0f}"


def decimal(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"


def seconds(value: float) -> str:
    return f"{value:.2f}"


def microseconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def milliseconds(value: float) -> str:
    """Three significant figures, without an exponent."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
