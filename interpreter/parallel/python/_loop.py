"""The asyncio event loop of one runtime thread, driven by the engine's completions.

ASGI coroutines run on the worker that owns their connection. Each worker (or the main
thread with ``workers=0``) gets one ``WorkerLoop``: a real asyncio loop (futures, tasks,
``asyncio.sleep``, ``call_soon_threadsafe``, anyio all work) that never blocks in a
selector. The engine drives it instead: after each request is handed over, when a
connection goes away, when the loop's next timer is due (an engine timer on the same
worker), and when another thread calls ``call_soon_threadsafe`` (a post to the worker).
Sockets an application registers with the loop itself (asyncio clients of other
services) are polled every millisecond while any exist: an engine poll operation would
need a readiness watch that the completion API does not have.
"""
from __future__ import annotations

import asyncio
import heapq
import selectors
import threading

import parallel

__all__ = ["WorkerLoop", "this_thread_loop"]

_POLL_SECONDS = 0.001  # how often app-registered sockets are polled (see above)
# While requests are under way with nothing scheduled, the loop also wakes this often:
# a wake-up posted from another thread is refused once the runtime stops (a graceful
# stop must still finish a response waiting on a thread pool).
_IDLE_POLL_SECONDS = 0.01
_ROUNDS = 64           # ready-callback rounds per drive before yielding to the engine


class _NoWaitSelector(selectors.DefaultSelector):
    """Never waits: the engine, not the selector, is what wakes a worker."""

    def select(self, timeout=None):
        if len(self.get_map()) <= 1:  # only the loop's own self-pipe, which we never use
            return []
        return super().select(0)


class WorkerLoop(asyncio.SelectorEventLoop):
    """The asyncio loop of the runtime thread that creates it (see the module doc).

    Use ``this_thread_loop()`` to get it; call ``drive()`` after handing it work from an
    engine callback on its thread.
    """

    def __init__(self) -> None:
        super().__init__(_NoWaitSelector())
        self._engine_loop = parallel._gateway_loop()
        self._run = parallel._run_generation()
        self._ident = threading.get_ident()
        self._driving = False
        self._wake_at: float | None = None
        self._posted = False
        self.requests = 0  # requests under way on this loop (kept by the ASGI gateway)

    # call_soon_threadsafe appends to _ready, then calls this: wake the worker instead
    # of writing to the self-pipe nobody waits on.
    def _write_to_self(self) -> None:
        if self._posted:
            return
        self._posted = True
        if not parallel._gateway_post(self._engine_loop, self._posted_drive):
            self._posted = False  # the runtime is stopping: nothing will run it anyway

    def _posted_drive(self) -> None:
        self._posted = False
        self.drive()

    def drive(self) -> None:
        """Runs everything that is ready (and due), then arms an engine timer for the
        next scheduled callback. Re-entrant calls return at once: the outer one
        continues with whatever they would have run."""
        if self._driving:
            return
        self._driving = True
        # Running while it drives (is_running(), get_running_loop()); otherwise not, so
        # that a loop dropped with its thread state closes its selector.
        self._thread_id = self._ident
        asyncio.events._set_running_loop(self)
        try:
            ready = self._ready
            for _ in range(_ROUNDS):
                if self._scheduled or len(self._selector.get_map()) > 1:
                    self._run_once()
                else:
                    for _ in range(len(ready)):
                        handle = ready.popleft()
                        if not handle._cancelled:
                            handle._run()
                if not ready:
                    break
        finally:
            asyncio.events._set_running_loop(None)
            self._thread_id = None
            self._driving = False
        self._arm()

    def _arm(self) -> None:
        if self._ready:  # a busy loop: let the engine serve I/O in between
            self._write_to_self()
            return
        when = None
        if self._scheduled:
            # Cancelled timers stay in the heap until due; skip to a live one.
            while self._scheduled and self._scheduled[0]._cancelled:
                self._timer_cancelled_count -= 1
                handle = heapq.heappop(self._scheduled)
                handle._scheduled = False
            if self._scheduled:
                when = self._scheduled[0]._when
        if len(self._selector.get_map()) > 1:
            poll = self.time() + _POLL_SECONDS
            when = poll if when is None else min(when, poll)
        elif self.requests and when is None:
            when = self.time() + _IDLE_POLL_SECONDS
        if when is None:
            return
        if self._wake_at is not None and self._wake_at <= when:
            return  # an engine timer fires first anyway
        self._wake_at = when
        parallel._gateway_timer(max(0.0, when - self.time()), self._timer_fired)

    def _timer_fired(self) -> None:
        self._wake_at = None
        self.drive()


_local = threading.local()


def this_thread_loop() -> WorkerLoop:
    """The calling runtime thread's WorkerLoop, made on first use."""
    loop = getattr(_local, "loop", None)
    # A new run() on this thread (the main one, with workers=0) gets a new loop. Not told
    # by the engine loop's address alone: a new one may reuse the last run's, and the old
    # WorkerLoop's _wake_at, an engine timer that run released unfired, would hold off
    # every timer of the new run.
    if loop is None or loop._run != parallel._run_generation():
        loop = _local.loop = WorkerLoop()
    return loop
