"""The browser client, ``duplex.js``, served by every app Flask-Duplex serves.

A page imports it by its endpoint, so the URL follows the app's prefix and
``SCRIPT_NAME``::

    <script type="module">
      import { connect } from "{{ url_for('flask_duplex.client') }}";
    </script>

The module itself (``static/duplex.js``) states its contract in JSDoc.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, send_from_directory

__all__ = ["BLUEPRINT_NAME", "CLIENT_ENDPOINT", "CLIENT_URL", "register_client"]

# The import name of the package: a user's own blueprint cannot take it
# without shadowing the package it imports.
BLUEPRINT_NAME = "flask_duplex"
CLIENT_ENDPOINT = f"{BLUEPRINT_NAME}.client"
CLIENT_URL = "/_duplex/duplex.js"

_STATIC = Path(__file__).resolve().parent / "static"

_blueprint = Blueprint(BLUEPRINT_NAME, __name__)


@_blueprint.get(CLIENT_URL, endpoint="client")
def _client() -> Response:
    # An explicit type: a module script is refused unless it is JavaScript, and
    # some systems map ".js" to text/plain in their mimetypes database.
    return send_from_directory(_STATIC, "duplex.js", mimetype="text/javascript")


def register_client(app: Flask) -> None:
    """Serve ``duplex.js`` on ``app`` at ``url_for("flask_duplex.client")``, ``/_duplex/duplex.js``.

    Calling it again for the same app does nothing.

    Raises:
        ValueError: Another blueprint of ``app`` is named ``flask_duplex``.
    """
    if app.blueprints.get(BLUEPRINT_NAME) is not _blueprint:
        app.register_blueprint(_blueprint)
