"""``make test-deps``: the engine, server and hub suites at both ends of the declared ranges.

For each Python (3.10 to 3.13) and each resolution, a venv of its own under
``.venv-deps/`` gets the package and the WSGI servers it is tested on:

- ``lowest``: Flask, Werkzeug, websockets, redis-py, gunicorn, gevent and eventlet
  at the lowest release that the ranges of ``pyproject.toml`` allow (uv's
  ``--resolution lowest-direct``);
- ``highest``: the newest releases those ranges allow, today.

The test tools (pytest and its plugins) are the newest in both. The browser,
demo, conformance and benchmark suites do not run here (``make test`` runs them,
from the lock). The table printed at the end is what docs/development.md quotes.

Run as ``python tools/test_deps.py [--python 3.12] [--resolution lowest]``; the
uv binary comes from ``UV`` (the Makefile passes the pinned one).
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib  # This script runs on the Python that runs make (3.11 or later).

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venv-deps"
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
RESOLUTIONS = ("lowest", "highest")
# The packages whose ranges are tested: the runtime ones and the servers.
TESTED = ("flask", "werkzeug", "websockets", "redis", "gunicorn", "gevent", "eventlet")
TOOLS = ("pytest", "pytest-timeout", "trustme", "packaging")
SUITES = ("tests/test_*.py", "tests/servers", "tests/hub", "tests/compat")
# Deprecations from the tested packages fail the run, as in `make test`.
WARNINGS = ("-W", "error::DeprecationWarning")


def requirements() -> list[str]:
    """The declared ranges of TESTED, from pyproject.toml (dependencies and extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    declared += tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["test"]
    chosen: dict[str, list[str]] = {}
    for requirement in declared:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        if name in TESTED and requirement not in chosen.get(name, []):
            chosen.setdefault(name, []).append(requirement)  # With its markers, if any.
    missing = set(TESTED) - set(chosen)
    if missing:
        raise SystemExit(f"pyproject.toml declares no range for {sorted(missing)}")
    return [requirement for name in TESTED for requirement in chosen[name]]


def find_python(version: str) -> str:
    """An interpreter for ``version``: on PATH, or one that pyenv installed."""
    found = shutil.which(f"python{version}")
    if found:
        try:
            subprocess.run([found, "-c", ""], check=True, capture_output=True)
            return found
        except (OSError, subprocess.CalledProcessError):
            pass  # A pyenv shim for a version that is not selected.
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for candidate in sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}")):
        return candidate
    raise SystemExit(f"no Python {version} found (on PATH or under {root}/versions)")


def run_row(uv: str, version: str, resolution: str, extra: list[str]) -> tuple[bool, str, float]:
    """Build the row's venv, run the suites; (passed, versions, seconds)."""
    started = time.monotonic()
    venv = VENVS / f"py{version}-{resolution}"
    python = venv / "bin" / "python"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(venv)}
    subprocess.run(
        [uv, "venv", "--quiet", "--clear", "--python", find_python(version), str(venv)], check=True
    )
    install = [uv, "pip", "install", "--quiet", "--python", str(python)]
    strategy = "lowest-direct" if resolution == "lowest" else "highest"
    subprocess.run([*install, f"--resolution={strategy}", *requirements()], check=True, env=env)
    # The package itself and the test tools, without moving what is installed.
    subprocess.run([*install, "--no-deps", "-e", str(ROOT)], check=True, env=env)
    subprocess.run([*install, *TOOLS], check=True, env=env)
    older = ["--target", str(venv / "gunicorn-eventlet"), "-r", "tools/gunicorn-eventlet.txt"]
    subprocess.run(
        [*install, "--no-deps", "--require-hashes", *older], check=True, env=env, cwd=ROOT
    )
    freeze = subprocess.run(
        [uv, "pip", "freeze", "--python", str(python)], check=True, capture_output=True, text=True
    ).stdout
    pins = dict(line.lower().split("==", 1) for line in freeze.splitlines() if "==" in line)
    versions = " ".join(f"{name} {pins.get(name, '?')}" for name in TESTED)
    suites = [str(path) for pattern in SUITES for path in sorted(ROOT.glob(pattern))]
    log = VENVS / f"py{version}-{resolution}.log"
    with log.open("w") as out:
        pytest = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *WARNINGS]
        result = subprocess.run(
            [*pytest, *suites, *extra],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    tail = log.read_text(errors="replace").strip().splitlines()[-1:]
    print(f"  {tail[0] if tail else ''}  (log: {log.relative_to(ROOT)})", flush=True)
    return result.returncode == 0, versions, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", choices=PYTHONS, help="default: all four")
    parser.add_argument("--resolution", action="append", choices=RESOLUTIONS, help="default: both")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    arguments = parser.parse_args()
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        raise SystemExit("no uv: run through `make test-deps`, which installs the pinned one")
    VENVS.mkdir(exist_ok=True)
    rows = []
    for version in arguments.python or PYTHONS:
        for resolution in arguments.resolution or RESOLUTIONS:
            print(f"Python {version}, {resolution} versions", flush=True)
            outcome = run_row(uv, version, resolution, arguments.pytest_args)
            rows.append((version, resolution, *outcome))
    print("\n| Python | resolution | versions | result | time |\n|---|---|---|---|---:|")
    for version, resolution, passed, versions, seconds in rows:
        outcome = "passed" if passed else "FAILED"
        print(f"| {version} | {resolution} | {versions} | {outcome} | {seconds:.0f} s |")
    sys.exit(0 if all(row[2] for row in rows) else 1)


if __name__ == "__main__":
    main()
