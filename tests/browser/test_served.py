"""How an app serves the browser client: its endpoint, URL, type and caching."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Blueprint, Flask, url_for

import flask_duplex
from flask_duplex import Duplex

CLIENT = Path(flask_duplex.__file__).parent / "static" / "duplex.js"


def test_client_is_served_as_a_javascript_module() -> None:
    """url_for("flask_duplex.client") is /_duplex/duplex.js, served as text/javascript."""
    app = Flask(__name__)
    Duplex(app)
    with app.test_request_context():
        url = url_for("flask_duplex.client")
    assert url == "/_duplex/duplex.js"
    response = app.test_client().get(url)
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.data == CLIENT.read_bytes()


def test_client_url_follows_the_apps_prefix() -> None:
    """An app mounted under a prefix (SCRIPT_NAME) gets the client's URL under it."""
    app = Flask(__name__)
    Duplex(app)
    with app.test_request_context("/", base_url="http://example.test/game"):
        assert url_for("flask_duplex.client") == "/game/_duplex/duplex.js"


def test_client_answers_a_conditional_get_with_304() -> None:
    """A browser that has the client revalidates it and gets 304 while it is unchanged."""
    app = Flask(__name__)
    Duplex(app)
    client = app.test_client()
    etag = client.get("/_duplex/duplex.js").headers["ETag"]
    assert client.get("/_duplex/duplex.js", headers={"If-None-Match": etag}).status_code == 304


def test_one_duplex_serves_the_client_on_each_of_its_apps() -> None:
    """One Duplex on two apps, and init_app called twice, serve the client once per app."""
    duplex = Duplex()
    first, second = Flask("first"), Flask("second")
    duplex.init_app(first)
    duplex.init_app(second)
    duplex.init_app(first)
    for app in (first, second):
        assert app.test_client().get("/_duplex/duplex.js").status_code == 200


def test_a_blueprint_named_like_the_clients_is_refused() -> None:
    """An app whose own blueprint is named flask_duplex gets an error that names it."""
    app = Flask(__name__)
    app.register_blueprint(Blueprint("flask_duplex", __name__))
    with pytest.raises(ValueError, match="flask_duplex"):
        Duplex(app)
