"""Background tasks, and tasks that run in exactly one process of a deployment.

Background tasks
----------------
:meth:`Duplex.start_background_task` runs a function as a thread, or as a
greenlet under gevent or eventlet (``green.spawn``): a plain OS thread in a
gevent worker would block the whole worker at every call into the hub. The
function runs inside the app's context. An exception it raises is logged
with the task's name; nothing is lost in silence.

A task stops when its function returns. It can also be asked to stop
(:meth:`Task.cancel`, the app's hub closing, the process shutting down):
:func:`sleep` then raises :class:`TaskCancelled` inside the task, which ends
it quietly. So a loop that sleeps with ``duplex.sleep()`` between rounds
stops within one round; a loop that never calls it runs until it returns.

Deployment-wide tasks
---------------------
:meth:`Duplex.start_deployment_task` asks for a task to run in exactly one
process of the deployment. Every process that asks competes for a *lease*
named after the task (through Redis, or in the process for the in-process
hub); the holder runs the function and renews the lease every third of
``DUPLEX_LEASE_TTL``; the others try again at the same pace. If the holder
dies, its lease expires and another process takes over within
``DUPLEX_LEASE_TTL`` plus a third of it.

Two holders at once cannot happen while Redis answers: a holder that fails
to renew (Redis did not answer in time) stops its function at once, through
:func:`sleep`, two thirds of a lease before the lease could expire; one that
finds another owner on renewing stops at once too. The function must
therefore sleep with ``duplex.sleep()`` at least every third of the lease.

When the function returns in the holder, the lease is released and the
handle is done there; other processes still competing may take the lease
and run the function again (a game loop whose room is empty returns at once).

One bid per process is enough: :meth:`Duplex.ensure_deployment_task` starts
one unless this process already has one of that name waiting for the lease
(:meth:`Tasks.ensure`). A bid that has started the function does not count:
the function may be about to return (a room found empty a moment before a
player came), and a bid made after it runs once it returned.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import green
from .errors import BackendUnavailable, DuplexError

if TYPE_CHECKING:
    from flask import Flask

    from .hub.leases import Leases

__all__ = ["DeploymentTask", "Task", "TaskCancelled", "Tasks", "sleep"]

logger = logging.getLogger("flask_duplex")

# The Task the running thread (or greenlet) is, if any. Made at first use, after
# monkey-patching, so that it is greenlet-local under gevent and eventlet.
_locals: list[threading.local] = []


def _current() -> threading.local:
    if not _locals:
        _locals.append(threading.local())
    return _locals[0]


class TaskCancelled(DuplexError):
    """Raised by ``duplex.sleep()`` inside a task asked to stop; the task then ends quietly."""


class Task:
    """A background task: a thread, or a greenlet under gevent and eventlet.

    Attributes:
        name: The task's name, in its log lines (the function's qualified name).
    """

    def __init__(self, name: str, target: Callable[[Task], None]) -> None:
        self.name = name
        self._target = target
        self._stop = threading.Event()
        self._done = threading.Event()
        # Called by cancel(): waits other than sleep() (a subscription's get()) end too.
        self._on_cancel: list[Callable[[], None]] = []

    def start(self) -> Task:
        green.spawn(self._run, self.name)
        return self

    @property
    def cancelled(self) -> bool:
        """Whether the task was asked to stop."""
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        """Whether the task's function returned (or raised)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Ask the task to stop: its next (or current) ``duplex.sleep()`` raises TaskCancelled.

        So does a ``Subscription.get()`` it waits in.
        """
        self._stop.set()
        for wake in list(self._on_cancel):
            wake()

    def watch_cancel(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Have ``cancel()`` call ``wake``; returns a function that stops it."""
        self._on_cancel.append(wake)
        return lambda: self._on_cancel.remove(wake)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the task ended; False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def sleep(self, seconds: float) -> None:
        """Sleep, or raise :class:`TaskCancelled` as soon as the task is asked to stop."""
        if self._stop.wait(seconds):
            raise TaskCancelled(f"task {self.name!r} was asked to stop")

    def _run(self) -> None:
        _current().task = self
        try:
            self._target(self)
        except TaskCancelled:
            pass
        except Exception:
            logger.exception("flask-duplex: background task %r failed", self.name)
        finally:
            _current().task = None
            self._done.set()

    def __repr__(self) -> str:
        state = "done" if self.done else "cancelled" if self.cancelled else "running"
        return f"<Task {self.name!r} {state}>"


def sleep(seconds: float) -> None:
    """Sleep as the server's concurrency model wants; inside a task, stop if it is cancelled.

    Raises:
        TaskCancelled: The calling task was asked to stop.
    """
    task: Task | None = getattr(_current(), "task", None)
    if task is not None:
        task.sleep(seconds)
    else:
        green.sleep(seconds)


def current_task() -> Task | None:
    """The task the caller runs in, or ``None``."""
    return getattr(_current(), "task", None)


class DeploymentTask(Task):
    """A task that runs in one process of the deployment at a time (see the module).

    Attributes:
        running_here: Whether this process holds the lease and runs the function now.
        started: Whether the function started in this process (stays true after
            it returned): with ``done``, it tells a bid still waiting for the
            lease (neither) from one that ran here.
    """

    def __init__(
        self,
        name: str,
        leases: Leases,
        ttl: float,
        function: Callable[[], Any],
    ) -> None:
        super().__init__(f"deployment:{name}", self._compete)
        self.lease = name
        self._leases = leases
        self._ttl = ttl
        self._function = function
        self._token = uuid.uuid4().hex
        self.running_here = False
        self.started = False

    def _compete(self, task: Task) -> None:
        every = self._ttl / 3
        while True:
            try:
                held = self._leases.acquire(self.lease, self._token, self._ttl)
            except BackendUnavailable as exc:
                logger.warning("flask-duplex: lease %r unavailable: %s", self.lease, exc)
                held = False
            if held:
                self._hold()
                return
            self.sleep(every)

    def _hold(self) -> None:
        """Run the function while the lease lasts; release it when the function returns."""
        worker = Task(self.name, lambda _task: self._function())
        self.started = True
        self.running_here = True
        worker.start()
        every = self._ttl / 3
        try:
            while not worker.join(every):
                if self.cancelled:
                    break
                try:
                    renewed = self._leases.renew(self.lease, self._token, self._ttl)
                except BackendUnavailable as exc:
                    # Stop now, two thirds of the lease before it could expire, so
                    # that whoever takes it next never runs beside this one.
                    logger.error(
                        "flask-duplex: could not renew lease %r (%s); stopping the task here",
                        self.lease,
                        exc,
                    )
                    break
                if not renewed:
                    logger.error("flask-duplex: lease %r is held elsewhere now", self.lease)
                    break
        finally:
            worker.cancel()
            worker.join(self._ttl)
            self.running_here = False
            try:
                self._leases.release(self.lease, self._token)
            except BackendUnavailable:
                pass  # It expires by itself.


class Tasks:
    """The background tasks of one app: started in its context, cancelled when it stops."""

    def __init__(self, app: Flask) -> None:
        import weakref

        self._app = weakref.ref(app)
        self._lock = threading.Lock()
        self._tasks: set[Task] = set()
        # Deployment-wide tasks by lease name: the last bid ensure() made for each.
        self._bids: dict[str, DeploymentTask] = {}

    def start(self, task: Task) -> Task:
        with self._lock:
            self._tasks = {t for t in self._tasks if not t.done}
            self._tasks.add(task)
        return task.start()

    def ensure(self, name: str, make: Callable[[], DeploymentTask]) -> DeploymentTask:
        """This process's bid for the lease ``name`` that still waits, or a new one, started.

        ``make()`` builds the new bid; it is called only when no bid of that
        name waits here (none was made, or the last one started the function
        or ended).
        """
        with self._lock:
            bid = self._bids.get(name)
            if bid is not None and not bid.started and not bid.done:
                return bid
            bid = make()
            self._bids = {n: b for n, b in self._bids.items() if not b.done}
            self._bids[name] = bid
        self.start(bid)
        return bid

    def in_app_context(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` wrapped to run inside the app's context."""
        app_ref = self._app

        def run() -> Any:
            app = app_ref()
            if app is None:
                return None
            with app.app_context():
                return function(*args, **kwargs)

        return run

    def cancel_all(self, timeout: float) -> None:
        """Cancel every task and wait for them, ``timeout`` seconds in all."""
        with self._lock:
            tasks, self._tasks = self._tasks, set()
            self._bids = {}
        for task in tasks:
            task.cancel()
        deadline = time.monotonic() + timeout
        for task in tasks:
            task.join(max(0.0, deadline - time.monotonic()))
