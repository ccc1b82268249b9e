"""The Flask-Duplex demo: a chat and a multiplayer snake game, two blueprints of one app.

``create_app()`` is the app factory (Flask's tutorial shape): every setting
has its default there, read from the environment (``make demo`` and ``make
demo-cluster`` set it) or overridden by ``test_config``; the database lives in
``DATA_DIR``; each feature is a blueprint with its own module, templates and
static files, registered the same way.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from . import chat, db, home, snake
from .realtime import duplex

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the demo app.

    Every setting has its default here, and ``test_config`` overrides any of
    them. Environment (each optional; ``make demo`` and ``make demo-cluster``
    set the first two): ``DUPLEX_DEMO_DATA_DIR`` (where the SQLite database
    lives; the instance folder by default), ``DUPLEX_DEMO_MESSAGE_QUEUE`` (a
    ``redis://`` URL that joins several workers), ``DUPLEX_DEMO_SECRET_KEY``,
    and the snake game's ``DUPLEX_DEMO_SNAKE_TICK_RATE`` (ticks a second, 10),
    ``DUPLEX_DEMO_SNAKE_BOARD_WIDTH`` and ``..._HEIGHT`` (cells, 40 by 30).
    """
    app = Flask(__name__, instance_relative_config=True)
    env = os.environ.get
    app.config.from_mapping(
        SECRET_KEY=env("DUPLEX_DEMO_SECRET_KEY", "demo only, not a secret"),
        DATA_DIR=env("DUPLEX_DEMO_DATA_DIR") or app.instance_path,
        # Every worker of the cluster shares one Redis channel, whatever each calls the app.
        DUPLEX_MESSAGE_QUEUE=env("DUPLEX_DEMO_MESSAGE_QUEUE") or None,
        DUPLEX_CHANNEL="duplex-demo",
        DUPLEX_PRESENCE_TTL=6.0,
        DUPLEX_LEASE_TTL=3.0,
        # The chat.
        CHAT_MAX_LENGTH=1000,  # Characters per message.
        CHAT_HISTORY=50,  # Public messages kept, and shown, per room.
        CHAT_RECOVERY_TTL=300.0,  # Seconds a page may be away and still get what it missed.
        CHAT_RATE=20.0,  # Messages a second per connection, sustained...
        CHAT_BURST=60,  # ...and at once.
        # The snake game.
        SNAKE_TICK_RATE=float(env("DUPLEX_DEMO_SNAKE_TICK_RATE", 10)),
        SNAKE_BOARD_WIDTH=int(env("DUPLEX_DEMO_SNAKE_BOARD_WIDTH", 40)),
        SNAKE_BOARD_HEIGHT=int(env("DUPLEX_DEMO_SNAKE_BOARD_HEIGHT", 30)),
    )
    if test_config:
        app.config.update(test_config)
    # The database is in DATA_DIR unless the test config puts it elsewhere.
    app.config.setdefault("DATABASE", os.path.join(app.config["DATA_DIR"], "demo.sqlite3"))
    os.makedirs(app.config["DATA_DIR"], exist_ok=True)

    db.init_app(app)
    duplex.init_app(app)
    app.register_blueprint(home.bp)
    app.register_blueprint(chat.bp)
    app.register_blueprint(snake.bp)
    return app
