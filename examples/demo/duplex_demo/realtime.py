"""The app's one Flask-Duplex extension, shared by the chat and the snake blueprints."""

from __future__ import annotations

from flask_duplex import Duplex

__all__ = ["duplex"]

duplex = Duplex()
