"""The benchmark harness still starts every contender: ``python -m bench --smoke``.

Figures are never checked here; only that each contender starts, echoes and stops.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.contenders import CONTENDERS

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def test_every_contender_starts_echoes_and_stops() -> None:
    """Each contender answers one 32 B and one 64 KiB echo in the benchmark's own venv."""
    if not BENCH_PYTHON.exists():
        pytest.fail(f"{BENCH_PYTHON.relative_to(ROOT)} is missing: run `make bench-env` first")
    done = subprocess.run(
        [str(BENCH_PYTHON), "-m", "bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for contender in CONTENDERS:
        ok_lines = re.findall(rf"^OK\s+{re.escape(contender.key)}\s", done.stdout, re.MULTILINE)
        assert len(ok_lines) == 1, f"no OK line for {contender.key}:\n{output}"
