"""``python -m duplex_demo``: the demo on Werkzeug, one process (what ``make demo`` runs)."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m duplex_demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--data-dir", help="where the SQLite database lives")
    arguments = parser.parse_args()
    if arguments.data_dir:
        os.environ["DUPLEX_DEMO_DATA_DIR"] = os.path.abspath(arguments.data_dir)

    from . import create_app

    app = create_app()
    print(f"Flask-Duplex demo on http://{arguments.host}:{arguments.port}/", flush=True)
    app.run(host=arguments.host, port=arguments.port, threaded=True)


if __name__ == "__main__":
    main()
