"""Flask-Duplex echo app.

Werkzeug: ``python -m bench.servers.flask_duplex_app PORT``; gunicorn serves
``bench.servers.flask_duplex_app:app``.
"""

from __future__ import annotations

import threading

from flask import Flask

from bench.servers import MAX_MESSAGE_SIZE, port_from_argv
from flask_duplex import Duplex, WebSocket

app = Flask(__name__)
duplex = Duplex(app)


@duplex.route("/echo", max_message_size=MAX_MESSAGE_SIZE, compression=False)
def echo(ws: WebSocket) -> None:
    for message in ws:
        ws.send(message)


_never = threading.Event()


@app.route("/hold")
def hold() -> str:
    """A plain view that never answers: what a held request costs without WebSocket code."""
    _never.wait()
    return ""


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=port_from_argv(), threaded=True)
