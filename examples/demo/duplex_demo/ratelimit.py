"""A token bucket: how the chat and the snake keep a flooding client in check."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate`` actions a second on average, up to ``burst`` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False, and nothing spent, if none is left."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
