"""The demo's SQLite database: one file in ``DATA_DIR``, in WAL mode.

A WebSocket handler lives as long as its connection, for hours maybe, so a
database connection per request (Flask's tutorial keeps one on ``g``) would
be held that long. Here every query opens its own short-lived connection
instead, and runs through ``duplex.run_in_thread``: under gevent a sqlite3
call blocks its whole OS thread while it waits on the disk or a lock, which
would stop every connection of the worker; there it runs on gevent's pool of
real threads. WAL mode lets readers go on while one writer writes, and
``timeout`` makes a writer wait for another instead of failing.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from typing import Any

import click
from flask import Flask, current_app

from .realtime import duplex

__all__ = ["execute", "init_app", "init_db", "query"]


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=5)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _query(path: str, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    connection = _connect(path)
    try:
        return [dict(row) for row in connection.execute(sql, params)]
    finally:
        connection.close()


def _execute(path: str, sql: str, params: tuple[Any, ...]) -> int:
    connection = _connect(path)
    try:
        with connection:  # One transaction: committed, or rolled back on error.
            cursor = connection.execute(sql, params)
        return int(cursor.lastrowid or 0)
    finally:
        connection.close()


def query(sql: str, *params: Any) -> list[dict[str, Any]]:
    """The rows ``sql`` selects, as dicts."""
    return duplex.run_in_thread(_query, current_app.config["DATABASE"], sql, params)


def execute(sql: str, *params: Any) -> int:
    """Run one statement in its own transaction; return the new row's id, if any."""
    return duplex.run_in_thread(_execute, current_app.config["DATABASE"], sql, params)


def init_db() -> None:
    """Create the tables that do not exist yet (``schema.sql``); keeps existing data."""
    schema = resources.files(__package__).joinpath("schema.sql").read_text()
    connection = _connect(current_app.config["DATABASE"])
    try:
        connection.executescript(schema)
    finally:
        connection.close()


@click.command("init-db")
def init_db_command() -> None:
    """Create the demo's tables (``flask --app duplex_demo init-db``)."""
    init_db()
    click.echo("Initialized the database.")


def init_app(app: Flask) -> None:
    """Create the tables on start (they survive restarts) and add the ``init-db`` command."""
    app.cli.add_command(init_db_command)
    with app.app_context():
        init_db()
