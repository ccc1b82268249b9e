"""The API reference covers the public API, and what it says is made from the code.

The site's pages under docs/api/ render docstrings with ``::: name`` lines
(mkdocstrings); the configuration tables are made by docs/hooks.py; the
browser client's page is written by hand beside its module, so these tests
hold it to the module's exports and options.
"""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

import pytest
from flask import Flask

import flask_duplex
import flask_duplex.compat
import flask_duplex.hub
import flask_duplex.hub.redis
import flask_duplex.hub.redis_topology
import flask_duplex.testing
from flask_duplex import Duplex

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"
CLIENT_JS = ROOT / "src" / "flask_duplex" / "static" / "duplex.js"


def _hooks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rendered() -> set[str]:
    """Every object a ``::: path`` line of docs/api/ renders."""
    found = set()
    for page in API.glob("*.md"):
        found |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE))
    return found


@pytest.mark.parametrize(
    "module",
    [
        flask_duplex,
        flask_duplex.testing,
        flask_duplex.compat,
        flask_duplex.hub,
        flask_duplex.hub.redis,
        flask_duplex.hub.redis_topology,
    ],
    ids=lambda module: module.__name__,
)
def test_every_public_name_has_a_reference_entry(module: types.ModuleType) -> None:
    """Each name of the module's __all__ is rendered on an API page."""
    rendered = _rendered()
    missing = [
        name
        for name in module.__all__
        if f"{module.__name__}.{name}" not in rendered
        # A name re-exported from elsewhere may be rendered where it is defined.
        and f"{getattr(module, name).__module__}.{name}" not in rendered
    ]
    assert not missing, f"add '::: {module.__name__}.NAME' to a page of docs/api/ for {missing}"


def test_configuration_tables_in_the_file_are_the_code_s() -> None:
    """The tables committed in configuration.md are the ones the build makes from the code."""
    hooks = _hooks()
    text = hooks.CONFIGURATION_PAGE.read_text()
    assert hooks.fill_tables(text) == text, "stale configuration tables: run python docs/hooks.py"


def test_configuration_tables_list_every_config_key() -> None:
    """Every DUPLEX_* key that init_app sets is in a table, and the tables list no other."""
    app = Flask(__name__)
    Duplex(app)
    keys = {key for key in app.config if key.startswith("DUPLEX_")}
    hooks = _hooks()
    tables = hooks.options_table() + hooks.app_settings_table()
    listed = set(re.findall(r"^\| `(DUPLEX_\w+)` \|", tables, re.MULTILINE))
    assert listed == keys
    assert len(keys) == 17  # 11 per connection, 6 app-wide: a new key shows up here first


def test_a_table_that_names_no_table_fails() -> None:
    """A misspelt table marker stops the build instead of leaving the table empty."""
    with pytest.raises(KeyError):
        _hooks().fill_tables("<!-- table: option -->\n<!-- end table -->")


def _exports() -> set[str]:
    source = CLIENT_JS.read_text()
    return set(
        re.findall(
            r"^export\s+(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)",
            source,
            re.MULTILINE,
        )
    )


def test_browser_client_page_documents_exactly_the_module_s_exports() -> None:
    """docs/api/browser-client.md has one '## `name`' section per export of duplex.js."""
    documented = set(re.findall(r"^## `(\w+)`$", (API / "browser-client.md").read_text(), re.M))
    exports = _exports()
    assert exports >= {"connect", "DuplexClient", "defaults"}  # The parser still finds them.
    assert documented == exports


def test_browser_client_page_lists_exactly_the_client_s_options() -> None:
    """The options table of the page has one row per key of duplex.js's defaults."""
    source = CLIENT_JS.read_text()
    body = re.search(r"export const defaults = Object\.freeze\(\{(.*?)\}\);", source, re.S)
    assert body is not None
    options = set(re.findall(r"^\s*(\w+):", body[1], re.MULTILINE))
    page = (API / "browser-client.md").read_text()
    table = page.split("<!-- options of duplex.js -->", 1)[1].split("\n\n", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert rows == options


def test_changelog_starts_at_the_package_version() -> None:
    """CHANGELOG.md's newest entry is the version the package says it is."""
    versions = re.findall(r"^## \[?(\d+\.\d+\.\d+)\]?", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert versions and versions[0] == flask_duplex.__version__
