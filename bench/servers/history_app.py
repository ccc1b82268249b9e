"""Flask-Duplex app for the history benchmark (``python -m bench.history``).

Clients connect to ``/room/<name>`` and join that room (resuming from the
position they give, as the browser client does). Room ``kept`` keeps its last
``BENCH_HISTORY_SIZE`` messages (200 by default); room ``plain`` keeps none.
``POST /blast?room=R&n=N&size=S`` broadcasts N messages of S bytes to room R,
one after the other, and answers once they are all sent. ``DUPLEX_MESSAGE_QUEUE``
in the environment selects Redis. gunicorn serves ``bench.servers.history_app:app``.
"""

from __future__ import annotations

import os

from flask import Flask, request

from bench.servers import add_room_routes
from flask_duplex import Duplex

app = Flask(__name__)
app.config["DUPLEX_MESSAGE_QUEUE"] = os.environ.get("DUPLEX_MESSAGE_QUEUE") or None
# A blast queues faster than loopback drains; the bound is not what is measured here.
app.config["DUPLEX_MAX_QUEUE"] = 100_000
app.config["DUPLEX_MAX_QUEUE_BYTES"] = 2**30
duplex = Duplex(app)
if hasattr(duplex, "keep_history"):  # The same app serves releases without it (plain rooms).
    duplex.keep_history("kept", size=int(os.environ.get("BENCH_HISTORY_SIZE", "200")), ttl=600)


add_room_routes(duplex)


@app.post("/blast")
def blast() -> tuple[str, int]:
    room, payload = request.args["room"], "x" * int(request.args.get("size", "100"))
    for _ in range(int(request.args["n"])):
        duplex.broadcast(payload, to=room)
    return "", 204


if __name__ == "__main__":
    from bench.servers import port_from_argv

    app.run(host="127.0.0.1", port=port_from_argv(), threaded=True)
