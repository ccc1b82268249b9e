"""What the documentation site takes from the code when it is built.

mkdocs loads this module as a hook (``hooks:`` in ``mkdocs.yml``):

- the site's name carries the package's version, read from
  ``flask_duplex.__version__``, the one place the version is written;
- the tables of configuration keys in ``docs/api/configuration.md`` are made
  from :class:`flask_duplex.Options` and ``AppSettings`` (their fields, their
  defaults, and the ``Attributes`` sections of their docstrings) each time the
  site is built, so the site cannot list an option the code does not have.

The same tables are also written into the markdown file itself, between the
``<!-- table: NAME -->`` and ``<!-- end table -->`` markers, for readers of the
repository; ``tests/docs/test_reference.py`` fails when that copy is stale, and
``python docs/hooks.py`` rewrites it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask_duplex
from flask_duplex.options import CONFIG_PREFIX, AppSettings, Options, config_defaults

CONFIGURATION_PAGE = Path(__file__).parent / "api" / "configuration.md"

_BLOCK = re.compile(
    r"(?P<start><!-- table: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(?P<end><!-- end table -->)",
    re.DOTALL,
)
_KIB = 1024


def on_config(config: Any) -> Any:
    """Put the package's version in the site's name (the header and every title)."""
    config.site_name = f"{config.site_name} {flask_duplex.__version__}"
    return config


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Fill each generated table of a page from the code."""
    return fill_tables(markdown)


def fill_tables(markdown: str) -> str:
    """``markdown`` with the body of every ``<!-- table: NAME -->`` block made anew.

    Raises:
        KeyError: A block names a table that does not exist.
    """

    def replace(match: re.Match[str]) -> str:
        table = TABLES[match["name"]]()
        return f"{match['start']}{table}{match['end']}"

    return _BLOCK.sub(replace, markdown)


def options_table() -> str:
    """The per-connection options: config key, route keyword, default, meaning."""
    meanings = attributes(Options)
    rows = ["| config key | route keyword | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(Options):
        rows.append(
            f"| `{CONFIG_PREFIX}{field.name.upper()}` | `{field.name}` "
            f"| {show_default(field.default)} | {meanings[field.name]} |"
        )
    return "\n".join(rows) + "\n"


def app_settings_table() -> str:
    """The app-wide settings: config key, default, meaning."""
    meanings = attributes(AppSettings)
    defaults = config_defaults("<import name>")
    rows = ["| config key | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(AppSettings):
        key = CONFIG_PREFIX + field.name.upper()
        # The key is the first column: the docstring's "(``KEY``)" would say it twice.
        meaning = re.sub(rf"\s*\(``{key}``\)", "", meanings[field.name])
        rows.append(f"| `{key}` | {show_default(defaults[key])} | {meaning} |")
    return "\n".join(rows) + "\n"


TABLES: dict[str, Callable[[], str]] = {
    "options": options_table,
    "app-settings": app_settings_table,
}


def attributes(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a Google-style class docstring, name to text.

    Raises:
        ValueError: A dataclass field has no entry there.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    inside = False
    for line in lines:
        if line.strip() == "Attributes:":
            inside = True
            continue
        if not inside:
            continue
        if line and not line.startswith(" "):
            break  # The section ended.
        entry = re.match(r"^    (\w+): (.*)$", line)
        if entry:
            current = found[entry[1]] = [entry[2]]
        elif current is not None and line.strip():
            current.append(line.strip())
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in found]  # type: ignore[arg-type]
    if missing:
        raise ValueError(f"{cls.__name__}'s docstring does not describe {', '.join(missing)}")
    return {name: " ".join(text) for name, text in found.items()}


def show_default(value: Any) -> str:
    """A default as a config value is written, with sizes in KiB or MiB."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = f"`{value!r}`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= _KIB:
        for unit, size in (("MiB", _KIB**2), ("KiB", _KIB)):
            if value % size == 0:
                return f"{text} ({value // size} {unit})"
    return text


def main() -> None:
    """Rewrite the tables in the markdown file from the code."""
    text = CONFIGURATION_PAGE.read_text()
    CONFIGURATION_PAGE.write_text(fill_tables(text))
    print(f"wrote {CONFIGURATION_PAGE}", file=sys.stderr)


if __name__ == "__main__":
    main()
