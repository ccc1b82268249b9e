"""The shape of the package: no import circle, type-only imports included.

A reader untangles a module by following its imports; a circle (even one that
only ``TYPE_CHECKING`` closes) means two modules can only be read together.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "flask_duplex"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    return (PACKAGE.parent / dotted.replace(".", "/")).with_suffix(".py").exists()


def imports_of(path: Path) -> set[str]:
    """The package's modules that ``path`` imports, at run time or for types."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
            names = [alias.name for alias in node.names]
            submodules = [
                f"{target}.{n}"
                for n in names
                if (PACKAGE.parent / f"{target}.{n}".replace(".", "/")).with_suffix(".py").exists()
            ]
            found.update(submodules or [target])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name for alias in node.names if alias.name.startswith("flask_duplex")
            )
    found.discard(name)
    return found


def test_no_module_imports_itself_back() -> None:
    """No import circle in flask_duplex, counting imports made only for type checking."""
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    # A package's __init__ re-exports its modules: it is a root, never a step inside a circle.
    packages = {module_name(path) for path in PACKAGE.rglob("__init__.py")}
    circles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in packages:
                continue
            if nxt in path:
                circles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        if start not in packages:
            visit(start, [start])
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles[:10])
