"""Routes of the test app for what real-time apps need beyond a socket.

Background and deployment-wide tasks, server-side channels, and handlers that
turn a client away before accepting it. What the tasks see is printed for the
tests to read in the server's log, or published on channels.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, redirect, request, session

from flask_duplex import BackendUnavailable, ChannelClosed, Duplex, WebSocket


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator of the kind apps already have: 401 unless logged in."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            abort(401)
        return view(*args, **kwargs)

    return wrapper


def login_or_redirect(view: Callable[..., Any]) -> Callable[..., Any]:
    """Another one: a redirect to the login page unless logged in."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "user" not in session:
            return redirect("/login-page")
        return view(*args, **kwargs)

    return wrapper


def realtime_blueprint(duplex: Duplex) -> Blueprint:
    """The ``/rt/...`` routes, on ``duplex``."""
    bp = Blueprint("realtime", __name__, url_prefix="/rt")

    def say(text: str) -> None:
        print(text, flush=True)

    # -- turning clients away before the upgrade ----------------------------

    @duplex.route("/members-only", bp=bp)
    @login_required
    def members_only(ws: WebSocket) -> None:
        ws.send(f"welcome {session['user']}")
        ws.receive()

    @duplex.route("/members-or-login", bp=bp)
    @login_or_redirect
    def members_or_login(ws: WebSocket) -> None:
        ws.send(f"welcome {session['user']}")
        ws.receive()

    @duplex.route("/broken-before-accept", bp=bp)
    def broken_before_accept(ws: WebSocket) -> None:
        raise RuntimeError("failed before using the connection")

    # -- background tasks ---------------------------------------------------

    def counting(name: str, rounds: int) -> None:
        say(f"task {name}: started in {current_app.name}")
        for _ in range(rounds):
            duplex.sleep(0.05)
        say(f"task {name}: finished {rounds} rounds")

    def failing() -> None:
        raise RuntimeError("task went wrong on purpose")

    tasks: dict[str, Any] = {}

    @bp.post("/tasks/<name>")
    def start_task(name: str) -> object:
        kind = request.form.get("kind", "count")
        if kind == "fail":
            task = duplex.start_background_task(failing)
        else:
            task = duplex.start_background_task(counting, name, int(request.form["rounds"]))
        tasks[name] = task
        return "", 204

    @bp.post("/tasks/<name>/cancel")
    def cancel_task(name: str) -> object:
        task = tasks[name]
        task.cancel()
        return jsonify(ended=task.join(5))

    @bp.post("/block")
    def block() -> object:
        # A call that blocks its OS thread (the unpatched sleep, as sqlite3 would).
        import sys
        import time

        monkey = sys.modules.get("gevent.monkey")
        blocking_sleep = monkey.get_original("time", "sleep") if monkey else time.sleep
        seconds = float(request.form["seconds"])
        say(f"block {request.form['mark']}: started")
        if request.form.get("offload") == "1":
            duplex.run_in_thread(blocking_sleep, seconds)
        else:
            blocking_sleep(seconds)
        return "", 204

    # -- deployment-wide tasks ----------------------------------------------

    def ticker() -> None:
        pid = os.getpid()
        count = 0
        while True:
            count += 1
            try:
                duplex.publish("ticks", {"pid": pid, "n": count})
            except BackendUnavailable:
                pass
            duplex.sleep(0.05)

    @bp.post("/deployment/ticker")
    def start_ticker() -> object:
        duplex.start_deployment_task("ticker", ticker)
        return jsonify(pid=os.getpid())

    # -- server-side channels -----------------------------------------------

    ready = threading.Event()

    def relay() -> None:
        # Everything published on "inputs", broadcast to the room "outputs".
        with duplex.subscribe("inputs") as inputs:
            ready.set()
            try:
                for message in inputs:
                    duplex.broadcast({"relayed": message, "by": os.getpid()}, to="outputs")
            except ChannelClosed:
                pass

    @bp.post("/relay")
    def start_relay() -> object:
        duplex.start_background_task(relay)
        return jsonify(ready=ready.wait(5))

    @bp.post("/publish")
    def publish() -> object:
        try:
            for index in range(int(request.form.get("n", "1"))):
                duplex.publish("inputs", {"n": index, "text": request.form.get("text", "")})
        except BackendUnavailable as exc:
            return str(exc), 503
        return "", 204

    @duplex.route("/outputs", bp=bp)
    def outputs(ws: WebSocket) -> None:
        ws.join("outputs")
        ws.send("joined")
        for _ in ws:
            pass

    return bp
