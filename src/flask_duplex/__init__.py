"""Flask-Duplex: real-time, two-way WebSocket routes for Flask apps."""

from __future__ import annotations

from .browser import register_client
from .channels import ChannelClosed, ChannelOverflow, Subscription
from .connection import WebSocket
from .errors import (
    BackendUnavailable,
    ConnectionClosed,
    DuplexError,
    HandshakeRejected,
    InvalidJSON,
    UnsupportedServer,
)
from .extension import Duplex, DuplexState
from .hub.history import Joined, Position
from .lifecycle import State
from .options import Options
from .pong import Pong
from .tasks import DeploymentTask, Task, TaskCancelled

__all__ = [
    "BackendUnavailable",
    "ChannelClosed",
    "ChannelOverflow",
    "ConnectionClosed",
    "DeploymentTask",
    "Duplex",
    "DuplexError",
    "DuplexState",
    "HandshakeRejected",
    "InvalidJSON",
    "Joined",
    "Options",
    "Pong",
    "Position",
    "State",
    "Subscription",
    "Task",
    "TaskCancelled",
    "UnsupportedServer",
    "WebSocket",
    "register_client",
]

__version__ = "0.1.0"
