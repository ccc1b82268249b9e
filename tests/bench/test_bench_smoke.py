"""The benchmark harness still starts every contender: ``python -m bench --smoke``.

Figures are never checked here; only that each contender starts, runs every scenario it can at
its smallest (one operation or a few: echo, fragments, cycle, plain GET, opening, idle), and
stops, and that the tables can be built from those figures.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.contenders import CONTENDERS

ROOT = Path(__file__).resolve().parents[2]
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"


def test_every_contender_runs_every_scenario_at_its_smallest() -> None:
    """Each contender runs each of its scenarios once, in the benchmark's own venv."""
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
    assert re.search(r"^OK\s+tables\s", done.stdout, re.MULTILINE), output
