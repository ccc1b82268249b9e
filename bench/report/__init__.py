"""The results as Markdown tables, Flask-Duplex's ratios under its figures.

    tables.py       cells, ratios, number formats, the Markdown itself
    messages.py     echo over open connections, pinned and as deployed; fragmented messages
    connections.py  the connection cycle and its ceiling; opening; idle connections

Everything here reads a results document (:mod:`bench.record`), so the tables can be rebuilt
from a saved ``latest.json`` without running anything (``python -m bench --report-only``).
"""

from __future__ import annotations

__all__ = ["markdown_report"]

from typing import Any

from bench.record import Document
from bench.report.connections import cycle_tables, idle_tables, open_table
from bench.report.messages import echo_tables, fragmented_tables, unpinned_table
from bench.report.tables import contenders, scenario_labels


def markdown_report(document: Document) -> str:
    """All tables of ``document``, with a legend and the list of errors, as Markdown."""
    sections = [
        _legend(document),
        *echo_tables(document),
        *unpinned_table(document),
        *fragmented_tables(document),
        *cycle_tables(document),
        *open_table(document),
        *idle_tables(document),
    ]
    errors, notes = _errors(document), _notes(document)
    if errors:
        sections.append("Errors:\n\n" + "\n".join(errors))
    if notes:
        sections.append("Notes:\n\n" + "\n".join(notes))
    return "\n\n".join(sections) + "\n"


def _legend(document: Document) -> str:
    settings = document["settings"]
    pinned = settings["server_and_client_pinned_to_separate_cores"]
    return (
        f"Each timed figure is measured over {settings['duration_s']:g} s after "
        f"{settings['warmup_s']:g} s of warm-up. "
        + (
            "The server runs on one core and the load generator on another. "
            if pinned
            else "Server and load generator share the cores. "
        )
        + "Rows in italics compare Flask-Duplex with flask-sock on the same server, and with "
        "websockets' asyncio server; each table says which way its ratios read. *n/a*: the "
        "contender cannot run that scenario."
    )


def _errors(document: Document) -> list[str]:
    """What failed: a scenario (pinned or unpinned), or the new client of an idle scenario."""
    labels = dict(contenders(document))
    scenarios = scenario_labels(document)
    unpinned = [
        f"- {labels.get(key, key)}, {scenarios.get(scenario, scenario)}, as deployed "
        f"(unpinned): {figures['error']}"
        for key, by_scenario in (document.get("unpinned") or {}).items()
        for scenario, figures in by_scenario.items()
        if figures.get("error")
    ]
    return [
        f"- {label}: {what}{figures[field]}"
        for label, figures in _all_figures(document)
        for field, what in (("error", ""), ("probe_error", "new client: "))
        if figures.get(field)
    ] + unpinned


def _notes(document: Document) -> list[str]:
    """What went otherwise than asked, without stopping the scenario; who was not run."""
    return [
        f"- {label}: {figures['unclean_closes']:,} of {figures.get('cycles_run', 0):,} cycles "
        "(warm-up included) ended without the server's close frame"
        for label, figures in _all_figures(document)
        if figures.get("unclean_closes")
    ] + [f"- {each['label']}: not run: {each['reason']}" for each in document.get("skipped", [])]


def _all_figures(document: Document) -> list[tuple[str, dict[str, Any]]]:
    """(``contender, scenario`` label, figures) of every result of the run."""
    labels = dict(contenders(document))
    scenarios = scenario_labels(document)
    return [
        (f"{labels.get(key, key)}, {scenarios.get(scenario, scenario)}", figures)
        for key, by_scenario in document["results"].items()
        for scenario, figures in by_scenario.items()
    ]
