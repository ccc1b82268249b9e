"""The sdist and the wheel that users install, built, checked and installed in a fresh venv.

The rest of the suite runs the package from the source tree (an editable
install); this test runs what ``pip install flask-duplex`` would get: the wheel
built from the sdist, with its dependencies at the locked versions, and no file
of the source tree on the path.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from tests.support.servers import ROOT

UV = ROOT / ".venv-tools" / "bin" / "uv"

SMOKE = textwrap.dedent(
    """
    from pathlib import Path

    import flask_duplex
    import flask_duplex.compat
    import flask_duplex.testing
    from flask import Flask

    package = Path(flask_duplex.__file__).parent
    assert "site-packages" in package.parts, package
    assert (package / "py.typed").is_file()
    app = Flask("smoke")
    duplex = flask_duplex.Duplex(app)

    @duplex.route("/echo")
    def echo(ws):
        for message in ws:
            ws.send(message)

    response = app.test_client().get("/_duplex/duplex.js")
    assert response.status_code == 200, response.status_code
    assert b"export function connect" in response.data
    ws = duplex.test_client().connect("/echo")
    ws.send("hello")
    assert ws.receive(timeout=5) == "hello"
    ws.close()
    print("smoke", flask_duplex.__version__)
    """
)


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_installs_and_serves_in_a_fresh_venv(tmp_path: Path) -> None:
    """`python -m build` and `twine check` pass; the installed wheel serves duplex.js."""
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    names = zipfile.ZipFile(wheel).namelist()
    assert "flask_duplex/py.typed" in names
    assert "flask_duplex/static/duplex.js" in names
    assert not [name for name in names if name.startswith("tests/")]

    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    requirements = tmp_path / "requirements.txt"
    run(
        UV,
        "export",
        "--locked",
        "--quiet",
        "--no-default-groups",
        "--no-emit-project",
        "--output-file",
        requirements,
    )
    run(UV, "pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", requirements)
    run(UV, "pip", "install", "--quiet", "--python", python, "--no-deps", wheel)
    out = run(python, "-I", "-c", SMOKE, cwd=tmp_path)
    assert out.startswith("smoke ")
