"""The bounded work of the service: a fixed pool of recognizers, each run by its own thread, and a fixed number of
places for requests waiting for one.

A request takes a place when it is admitted and gives it back when its answer is computed; when every place is
taken the next request is refused at once (:class:`QueueFull`: 503 with ``Retry-After``) instead of queued without
bound. Places are taken only once a request's body has arrived, so a slow upload holds no worker and no place.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ferlite.recognizer import Recognizer

__all__ = ["QueueFull", "WorkQueue"]

T = TypeVar("T")


class QueueFull(Exception):
    """Every place is taken: ``retry_after`` is the whole number of seconds after which one is likely free."""

    def __init__(self, capacity: int, retry_after: int) -> None:
        super().__init__(f"the server is busy: all {capacity} places (requests being analysed or waiting) are "
                         f"taken; retry after {retry_after} s")
        self.retry_after = retry_after


class WorkQueue:
    """Runs functions of a :class:`~ferlite.recognizer.Recognizer` on a pool of them, ``len(recognizers)`` at a
    time, with room for ``size`` more requests waiting.

    :meth:`run` is called from the event loop only (the count of places is not locked).
    """

    def __init__(self, recognizers: Sequence[Recognizer], size: int) -> None:
        if not recognizers:
            raise ValueError("a WorkQueue needs at least one recognizer")
        if size < 0:
            raise ValueError(f"the queue size must be >= 0, got {size}")
        self.workers, self.size = len(recognizers), size
        self._recognizers = list(recognizers)
        self._free: queue.SimpleQueue[Recognizer] = queue.SimpleQueue()
        for rec in recognizers:
            self._free.put(rec)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="ferlite-serve")
        self._lock = threading.Lock()
        self.admitted = 0
        self.handled = 0
        self.refused = 0
        self._seconds = 0.1  # running mean of the time one request takes a worker, for Retry-After

    @property
    def capacity(self) -> int:
        """How many requests may be admitted at once: one per worker, and ``size`` waiting."""
        return self.workers + self.size

    def check(self) -> None:
        """Raise :class:`QueueFull` if a request arriving now would be refused (before its body is read)."""
        if self.admitted >= self.capacity:
            self.refused += 1
            waiting = self.admitted - self.workers + 1
            raise QueueFull(self.capacity, max(1, math.ceil(waiting * self._seconds / self.workers)))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(recognizer, *args)`` on a free recognizer, in a worker thread; :class:`QueueFull` when full.

        Cancelled (its client gone), a request that has not started never runs; its place is given back when the
        work is dropped or done, never before.
        """
        self.check()
        self.admitted += 1
        loop = asyncio.get_running_loop()
        job = self._executor.submit(self._call, fn, args)
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self.admitted -= 1

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        rec = self._free.get()  # never waits: there are as many recognizers as threads
        t0 = time.perf_counter()
        try:
            return fn(rec, *args)
        finally:
            self._free.put(rec)
            with self._lock:
                self.handled += 1
                self._seconds = 0.9 * self._seconds + 0.1 * (time.perf_counter() - t0)

    def stats(self) -> dict[str, int]:
        """Workers, places and counts: for ``/healthz``."""
        return {"workers": self.workers, "queue_size": self.size, "running": min(self.admitted, self.workers),
                "waiting": max(0, self.admitted - self.workers), "handled": self.handled, "refused": self.refused}

    def close(self) -> None:
        """Finish the work admitted, stop the threads and release the recognizers' detectors."""
        self._executor.shutdown(wait=True)
        for rec in self._recognizers:
            rec.close()
