"""The Flask-Duplex demo: a chat and a multiplayer snake game, two blueprints of one app.

``create_app()`` is the app factory (Flask's tutorial shape): settings come
from the environment (``make demo`` and ``make demo-cluster`` set them) or from
``test_config``, the database lives in ``DATA_DIR``, and each feature is a
blueprint with its own module, templates and static files.
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

    Environment (each optional): ``DUPLEX_DEMO_DATA_DIR`` (where the SQLite
    database lives; the instance folder by default), ``DUPLEX_DEMO_MESSAGE_QUEUE``
    (a ``redis://`` URL that joins several workers), ``DUPLEX_DEMO_SECRET_KEY``,
    and the snake game's ``DUPLEX_DEMO_SNAKE_TICK_RATE`` (ticks a second, 10),
    ``DUPLEX_DEMO_SNAKE_BOARD_WIDTH`` and ``..._HEIGHT`` (cells, 40 by 30).
    """
    app = Flask(__name__, instance_relative_config=True)
    data_dir = os.environ.get("DUPLEX_DEMO_DATA_DIR") or app.instance_path
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("DUPLEX_DEMO_SECRET_KEY", "demo only, not a secret"),
        DATA_DIR=data_dir,
        DATABASE=os.path.join(data_dir, "demo.sqlite3"),
        # Every worker of the cluster shares one Redis channel, whatever each calls the app.
        DUPLEX_MESSAGE_QUEUE=os.environ.get("DUPLEX_DEMO_MESSAGE_QUEUE") or None,
        DUPLEX_CHANNEL="duplex-demo",
        DUPLEX_PRESENCE_TTL=6.0,
        DUPLEX_LEASE_TTL=3.0,
        SNAKE_TICK_RATE=float(os.environ.get("DUPLEX_DEMO_SNAKE_TICK_RATE", 10)),
        SNAKE_BOARD_WIDTH=int(os.environ.get("DUPLEX_DEMO_SNAKE_BOARD_WIDTH", 40)),
        SNAKE_BOARD_HEIGHT=int(os.environ.get("DUPLEX_DEMO_SNAKE_BOARD_HEIGHT", 30)),
    )
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.config["DATA_DIR"], exist_ok=True)

    db.init_app(app)
    duplex.init_app(app)
    app.register_blueprint(home.bp)
    chat.init_app(app)
    app.register_blueprint(snake.bp)
    return app
