"""The results document: every figure of a run, with what it ran on, saved as JSON."""

from __future__ import annotations

__all__ = ["Document", "load_average", "machine", "new_document", "save"]

import dataclasses
import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.contenders import Contender
from bench.scenarios import Scenario, Timing

Document = dict[str, Any]

# The packages whose versions the figures depend on.
PACKAGES = (
    "flask-duplex",
    "flask",
    "werkzeug",
    "flask-sock",
    "simple-websocket",
    "websockets",
    "picows",
    "gunicorn",
    "gevent",
    "uwsgi",
)


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python and operating system of the machine running the benchmark."""
    libc, libc_version = platform.libc_ver()
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": " ".join(
            part
            for part in (platform.system(), platform.machine(), f"{libc} {libc_version}".strip())
            if part
        ),
    }


def load_average() -> float | None:
    """The machine's load average over the last minute, or None where it is unknown.

    Saved at the start and the end of a run: figures taken while other programs kept the cores
    busy are noisier (the CPU time per operation less so than the rates).
    """
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def new_document(
    contenders: list[Contender], scenarios: list[Scenario], timing: Timing, pinned: bool
) -> Document:
    """An empty results document for a run of ``scenarios`` against ``contenders``."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {name: _version(name) for name in PACKAGES},
        "flask_duplex_commit": _source_commit(),
        "load_average_start": load_average(),
        "settings": {
            "duration_s": timing.duration,
            "warmup_s": timing.warmup,
            "server_and_client_pinned_to_separate_cores": pinned,
        },
        "contenders": [
            {"key": c.key, "label": c.label, "library": c.library, "server": c.server}
            for c in contenders
        ],
        "scenarios": [dataclasses.asdict(s) for s in scenarios],
        "results": {c.key: {} for c in contenders},
    }


def save(document: Document, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    """The output of a git command run in the checkout, stripped."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def _source_commit() -> str | None:
    """The commit the measured Flask-Duplex was checked out at, marked if src/ had changes."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        changes = _git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout, or no git
    return f"{commit} with uncommitted changes in src/" if changes else commit


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
