"""Connection ids: unique across processes and machines, and naming their process.

An id is this process's token (16 hex digits, random, new in every forked
child) followed by a counter in hex: no system call per connection, and
``next()`` on ``itertools.count`` is atomic under the GIL. Because the token
comes first, whoever holds an id knows which process holds the connection:
the Redis hub sends ``send_to`` straight to that process's channel.
"""

from __future__ import annotations

import itertools
import os
import secrets

__all__ = ["TOKEN_LENGTH", "next_id", "process_of", "process_token"]

TOKEN_LENGTH = 16

_token = secrets.token_hex(TOKEN_LENGTH // 2)
_counter = itertools.count(1)


def next_id() -> str:
    """A new connection id, unique in this process and, by its token, everywhere."""
    return f"{_token}{next(_counter):x}"


def process_token() -> str:
    """This process's token, the first :data:`TOKEN_LENGTH` characters of its ids."""
    return _token


def process_of(connection_id: str) -> str | None:
    """The token of the process that made ``connection_id``; None if it is not such an id."""
    if len(connection_id) <= TOKEN_LENGTH:
        return None
    token = connection_id[:TOKEN_LENGTH]
    return token if all(c in "0123456789abcdef" for c in token) else None


def _new_token_after_fork() -> None:
    global _token, _counter
    # A forked worker must not repeat its parent's ids.
    _token = secrets.token_hex(TOKEN_LENGTH // 2)
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_new_token_after_fork)
