"""RFC 6455 conformance: the Autobahn TestSuite cases, run by kosoku, against each server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import running

OK = {"OK", "NON-STRICT", "INFORMATIONAL"}


def kosoku_failures(port: int, outdir: Path) -> tuple[int, list[str]]:
    """Run every case against /echo-big; return the case count and the failures."""
    kosoku = shutil.which("kosoku") or str(Path(sys.executable).with_name("kosoku"))
    result = subprocess.run(
        [kosoku, "-p", "4", "-o", str(outdir), f"127.0.0.1:{port}/echo-big"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    index = outdir / "index.json"
    assert index.exists(), f"kosoku wrote no report:\n{result.stdout}\n{result.stderr}"
    (cases,) = json.loads(index.read_text()).values()
    failures = []
    for case_id, case in sorted(cases.items()):
        if case["behavior"] not in OK or case["behaviorClose"] not in ("OK", "INFORMATIONAL"):
            detail = json.loads((outdir / case["reportfile"]).read_text())
            failures.append(
                f"{case_id}: behavior={case['behavior']} close={case['behaviorClose']}: "
                f"{detail.get('result')}"
            )
    print(result.stdout.strip().splitlines()[-1])
    return len(cases), failures


@pytest.mark.parametrize("server_name", ["werkzeug"])
def test_autobahn_cases_all_pass(server_name: str, tmp_path: Path) -> None:
    """Every Autobahn case ends OK, NON-STRICT or INFORMATIONAL, with a clean close."""
    with running(server_name) as server:
        count, failures = kosoku_failures(server.port, tmp_path)
    assert count > 500
    assert not failures, "\n".join(failures)
