"""The Python samples of the README and docs/: found, marked, and run as a reader would.

Every fenced ```` ```python ```` block is a sample. An HTML comment on the line
right before the fence says what kind (docs/development.md, "Documentation"):

- no comment: the block runs, and must check itself, with an ``assert`` or by
  defining ``test_*`` functions, which are then called;
- ``<!-- sample: NAME -->``: the block runs, then the check named ``NAME`` in
  tests/docs/test_samples.py looks at what it made (connects to its routes);
- ``<!-- module: NAME -->``: the block runs as the module ``NAME``, which the
  page's later blocks import (``from myapp import create_app``);
- ``<!-- fragment -->``: an excerpt that cannot run alone; it is not run.

The blocks of one page run in order, as a reader reads the page: a later block
may use the ``app`` and ``duplex`` an earlier one made. Each block runs in a
copy of the namespace the blocks before it left, so a function keeps seeing the
names of its own block even when a later block makes a new ``app`` under the
same name. Checks and ``test_*`` functions run after the page's last block, so
that no route is added to an app that already served a request. Each block is
compiled under the markdown file's name with its own line numbers, so a
traceback points at the line of the page.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["Page", "Run", "Sample", "defined_tests", "pages", "read_page", "run_page"]

ROOT = Path(__file__).resolve().parents[2]

_MARKER = re.compile(r"^<!--\s*(?P<kind>fragment|sample|module)(?::\s*(?P<name>[\w.-]+))?\s*-->$")
_FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")


@dataclasses.dataclass
class Sample:
    """One ```python block of a page."""

    path: Path
    line: int  # of the block's first line of code, 1-based
    code: str
    kind: str  # "run", "sample", "module" or "fragment"
    name: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def compile(self) -> types.CodeType:
        # Blank lines in front, so that the code's line numbers are the page's.
        return compile("\n" * (self.line - 1) + self.code, str(self.path), "exec")

    def checks_itself(self) -> bool:
        return bool(re.search(r"^\s*assert\b|^def test_\w+\(", self.code, re.MULTILINE))


@dataclasses.dataclass
class Page:
    """A markdown file and its Python samples."""

    path: Path
    samples: list[Sample]

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))


def pages() -> list[Page]:
    """README.md and every page under docs/ that has a Python sample."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [read_page(path) for path in paths]
    return [page for page in found if page.samples]


def read_page(path: Path) -> Page:
    """The Python samples of the markdown file at ``path``.

    Raises:
        ValueError: A marker is not right before a ```python fence, or names nothing.
    """
    lines = path.read_text().splitlines()
    samples: list[Sample] = []
    pending: re.Match[str] | None = None
    index = 0
    while index < len(lines):
        marker = _MARKER.match(lines[index].strip())
        fence = _FENCE.match(lines[index])
        if marker:
            following = _FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
            if following is None or _language(following) != "python":
                raise ValueError(f"{path}:{index + 1}: a marker goes right before ```python")
            if marker["kind"] != "fragment" and not marker["name"]:
                raise ValueError(f"{path}:{index + 1}: '{marker['kind']}:' needs a name")
            pending = marker
        elif fence:
            end = _closing(lines, index, fence["fence"])
            if _language(fence) == "python":
                kind, name = (pending["kind"], pending["name"]) if pending else ("run", None)
                code = "\n".join(lines[index + 1 : end]) + "\n"
                samples.append(Sample(path, index + 2, code, kind, name))
            pending = None
            index = end
        index += 1
    return Page(path, samples)


def _language(fence: re.Match[str]) -> str:
    return fence["info"].strip().split(" ")[0]


def _closing(lines: list[str], start: int, fence: str) -> int:
    for index in range(start + 1, len(lines)):
        if lines[index].strip() == fence:
            return index
    raise ValueError(f"unclosed code fence at line {start + 1}")


@dataclasses.dataclass
class Run:
    """What running a page's samples left behind, for the checks."""

    # The namespace each block ran in, as it left it, with the block.
    after: list[tuple[Sample, dict[str, Any]]]
    modules: list[types.ModuleType]


def run_page(page: Page, prelude: dict[str, Any]) -> Run:
    """Run the page's samples in order, starting from the names in ``prelude``."""
    namespace: dict[str, Any] = {"__name__": f"sample_{page.path.stem}", **prelude}
    run = Run([], [])
    for sample in page.samples:
        if sample.kind == "fragment":
            continue
        if sample.kind == "module":
            assert sample.name is not None
            module = types.ModuleType(sample.name)
            module.__file__ = str(page.path)
            sys.modules[sample.name] = module
            run.modules.append(module)
            exec(sample.compile(), module.__dict__)
        else:
            namespace = dict(namespace)
            exec(sample.compile(), namespace)
        run.after.append((sample, namespace))
    return run


def defined_tests(sample: Sample, namespace: dict[str, Any]) -> Iterator[Callable[[], None]]:
    """The ``test_*`` functions the sample defined, each with its arguments found by name.

    An argument is the namespace's value of that name; a pytest fixture there
    (``@pytest.fixture def app(): ...``) is called, as pytest would, for each test.
    """
    for name in re.findall(r"^def (test_\w+)\(", sample.code, re.MULTILINE):
        function = namespace[name]

        def call(function: Callable[..., None] = function) -> None:
            function(*[_argument(namespace, p) for p in inspect.signature(function).parameters])

        call.__name__ = name
        yield call


def _argument(namespace: dict[str, Any], name: str) -> Any:
    value = namespace[name]
    fixture = getattr(value, "__wrapped__", None)
    if fixture is not None and getattr(value, "name", None) == name:
        parameters = inspect.signature(fixture).parameters
        return fixture(*[_argument(namespace, p) for p in parameters])
    return value
