"""A griffe extension: the Sphinx roles of the docstrings become links on the site.

The package's docstrings are Google style and name other objects the way
``help()`` readers and Sphinx users know, with roles: ``:meth:`init_app```,
``:class:`~flask_duplex.tasks.Task```, ``:meth:`Duplex.serve <flask_duplex.Duplex.serve>```.
mkdocstrings does not read roles; this extension, loaded by mkdocstrings'
Python handler (``mkdocs.yml``), rewrites each into a Markdown cross-reference,
``[`init_app()`][flask_duplex.extension.Duplex.init_app]``, resolving the name
as Python would from where the docstring is (its object, then the enclosing
class and module), then from the package's top level (``flask_duplex.X``).

A role whose name resolves outside the package (``threading.Event.wait``) or
nowhere stays code, unlinked. A class attribute with no docstring of its own
is described in its class's ``Attributes`` section, so the link goes to the
class; a module's stays code. A name that resolves to an object no page documents fails the strict
build ("could not find cross-reference target"): that is how a docstring that
points to a private helper is caught.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?P<kind>meth|func|class|exc|attr|data|mod|obj):`(?P<text>[^`]+)`")
_EXPLICIT = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")
_CALLABLE_KINDS = {"meth", "func"}


class SphinxRoles(griffe.Extension):
    """Rewrites Sphinx roles in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of ``pkg`` and all its members, once it is loaded."""
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj.docstring.value, obj, pkg)


def rewrite(text: str, obj: griffe.Object, package: griffe.Module) -> str:
    """``text`` with each role replaced by a cross-reference (or plain code)."""

    def replace(match: re.Match[str]) -> str:
        kind, body = match["kind"], match["text"]
        explicit = _EXPLICIT.match(body)
        if explicit:
            title, target = explicit["title"], explicit["target"]
        else:
            target = body.lstrip("~")
            title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        if kind in _CALLABLE_KINDS and not title.endswith(")"):
            title += "()"
        path = _resolve(target, obj, package)
        return f"[`{title}`][{path}]" if path else f"`{title}`"

    return _ROLE.sub(replace, text)


def _resolve(target: str, obj: griffe.Object, package: griffe.Module) -> str | None:
    """The path to link ``target`` to, or ``None`` for plain code."""
    if target == package.path or target.startswith(package.path + "."):
        return _documented(target, package)
    first, _, rest = target.partition(".")
    for scope in (obj, package):
        try:
            path = scope.resolve(first)
        except (griffe.NameResolutionError, AttributeError):
            continue
        return _documented(f"{path}.{rest}" if rest else path, package)
    return None


def _documented(path: str, package: griffe.Module) -> str | None:
    """``path`` if it is in the package; its class's if it is an attribute without a docstring."""
    if path == package.path:
        return path
    if not path.startswith(package.path + "."):
        return None
    try:
        found = package[path.removeprefix(package.path + ".")]
    except KeyError:
        return None
    if found.is_attribute and found.docstring is None:
        # Described in its class's Attributes section; a module's has no page of its own.
        parent = found.parent
        return parent.path if parent is not None and parent.is_class else None
    return found.path if not found.is_alias else found.target_path


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_walk(member))  # type: ignore[arg-type]
    return found
