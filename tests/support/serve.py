"""Run the test app on one WSGI server: ``python -m tests.support.serve SERVER PORT``."""

from __future__ import annotations

import sys


def main() -> None:
    server, port = sys.argv[1], int(sys.argv[2])
    if server == "werkzeug":
        from tests.support.apps import app

        app.run(host="127.0.0.1", port=port, threaded=True)
    else:
        raise SystemExit(f"unknown server {server!r}")


if __name__ == "__main__":
    main()
