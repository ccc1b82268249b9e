"""The demo app, started the way its users start it: ``make demo`` or ``make demo-cluster``.

Both targets take ``PORT`` and ``DATA_DIR``; that contract is what these tests
rely on. The server runs in its own process group, and is stopped as a user
stops it, with Ctrl-C (SIGINT to the group), or killed outright.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import ROOT, free_port


class Demo:
    """One ``make demo`` (or ``demo-cluster``) run; ``restart()`` keeps its port and data."""

    def __init__(self, target: str, port: int, data_dir: Path, log: Path) -> None:
        self.target = target
        self.port = port
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        """Run the make target; return once the demo answers on its port."""
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                ["make", "-s", self.target, f"PORT={self.port}", f"DATA_DIR={self.data_dir}"],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"make {self.target} exited early:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"make {self.target} did not listen within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20) -> None:
        """Ctrl-C, as in a terminal: SIGINT to the whole process group, then wait."""
        self._signal(signal.SIGINT, timeout)

    def kill(self) -> None:
        """End every process of the demo at once, as a crash would."""
        self._signal(signal.SIGKILL, 10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, signum: int, timeout: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        except ProcessLookupError:
            pass
        # Children left in the group (a worker that outlived its master) go too.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""


@contextmanager
def running_demo(target: str = "demo", data_dir: Path | None = None) -> Iterator[Demo]:
    """Start ``make <target>`` on a free port with a fresh (or the given) data folder."""
    with tempfile.TemporaryDirectory(prefix="duplex-demo-test-") as tmp:
        demo = Demo(target, free_port(), data_dir or Path(tmp) / "data", Path(tmp) / "demo.log")
        demo.start()
        try:
            yield demo
        finally:
            demo.stop()
