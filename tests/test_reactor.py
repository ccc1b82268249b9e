"""The reactor's timers: they run in deadline order, and a cancelled one never runs.

The heap holds the timers themselves (no tuple per timer), so these check what the tuple's
order used to guarantee, including after the heap is rebuilt without its cancelled timers.
"""

from __future__ import annotations

import random
import threading
import time

from flask_duplex.reactor import get_reactor

WAIT = 10.0  # seconds for timers due within 0.2 s to have run, on a busy machine


def test_timers_run_in_deadline_order_and_cancelled_ones_never_run() -> None:
    reactor = get_reactor()
    rng = random.Random(6455)
    ran: list[float] = []
    all_ran = threading.Event()
    lock = threading.Lock()
    delays = [rng.uniform(0.0, 0.2) for _ in range(120)]
    kept = 0

    def make(delay: float) -> object:
        def callback() -> None:
            with lock:
                ran.append(delay)
                if len(ran) == kept:
                    all_ran.set()

        return callback

    timers = []
    start = time.monotonic()
    for delay in delays:
        timers.append((delay, reactor.call_later(delay, make(delay))))  # type: ignore[arg-type]
    # Far more than half cancelled: the heap is rebuilt without them (timer_cancelled).
    cancelled = {id(timer) for _, timer in timers[::4]} | {id(timer) for _, timer in timers[1::4]}
    cancelled |= {id(timer) for _, timer in timers[2::4]}
    for _, timer in timers:
        if id(timer) in cancelled:
            timer.cancel()
    kept = len(timers) - len(cancelled)
    assert all_ran.wait(WAIT), f"{len(ran)} of {kept} timers ran within {WAIT} s"
    expected = sorted(delay for delay, timer in timers if id(timer) not in cancelled)
    # In deadline order: call_later read the clock once per timer, so two timers scheduled
    # a few microseconds apart with nearly the same delay may swap; none may run early.
    assert sorted(ran) == expected
    for index in range(1, len(ran)):
        assert ran[index] >= ran[index - 1] - 0.001, (index, ran[index - 1], ran[index])
    elapsed = time.monotonic() - start
    assert elapsed >= max(expected) - 0.001
