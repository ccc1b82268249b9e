"""The front page: what the demo has, and where."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> str:
    return render_template("home/index.html")


@bp.get("/favicon.ico")
def favicon() -> Response:
    return current_app.send_static_file("favicon.svg")
