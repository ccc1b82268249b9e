"""The demo app mounted under ``/mounted``, as a proxy that serves it from a sub-path would.

Served with ``DUPLEX_TEST_APP=tests.support.demo_mounted:app`` (``tests.support.serve``),
its database in ``DUPLEX_DEMO_DATA_DIR``: requests under the prefix reach the app
with ``SCRIPT_NAME`` set to it, and any other path is a 404, so that a link
written by hand (``/chat/``) leads nowhere.
"""

from __future__ import annotations

import sys

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from tests.support.servers import ROOT

__all__ = ["PREFIX", "app"]

PREFIX = "/mounted"

DEMO = str(ROOT / "examples" / "demo")
if DEMO not in sys.path:  # The demo is an app run from its folder, not an installed package.
    sys.path.insert(0, DEMO)

from duplex_demo import create_app  # noqa: E402

app = create_app()
app.wsgi_app = DispatcherMiddleware(NotFound(), {PREFIX: app.wsgi_app})  # type: ignore[method-assign]
