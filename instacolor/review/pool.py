"""A bounded pool for the review app's heavy work, off the event loop.

Re-colorizing (preview, apply) and stamping an accepted output take from a fraction of
a second to minutes; run on the event loop they would stall every other request (a page
reload, a thumbnail). :class:`WorkPool` runs them in worker threads and admits at most
``capacity`` jobs at a time, running or waiting; one more is refused at once with
:class:`Busy` (the app answers 503 with ``Retry-After``). A slot is freed when its job
ends, also when the client gave up waiting.

Example:
    >>> import asyncio
    >>> pool = WorkPool(workers=1, capacity=2)
    >>> asyncio.run(pool.run(sum, [1, 2]))
    3
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from instacolor.errors import InputError

__all__ = ["Busy", "WorkPool"]


class Busy(Exception):
    """The pool is full; try again after :attr:`retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WorkPool:
    """``workers`` threads, at most ``capacity`` jobs admitted (running or waiting).

    Args:
        workers: threads running jobs (>= 1).
        capacity: jobs admitted at once (>= ``workers``).
        name: what the jobs are, for the refusal.
        retry_after: seconds a refused client is told to wait.
    """

    def __init__(self, workers: int = 1, capacity: int = 4, *, name: str = "work",
                 retry_after: int = 2) -> None:  # fmt: skip
        if workers < 1 or capacity < workers:
            raise InputError(
                f"work pool: expected 1 <= workers <= capacity, received {workers}, {capacity}"
            )
        self.capacity, self.name, self.retry_after = capacity, name, retry_after
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"review-{name}")
        self._lock = threading.Lock()
        self.admitted = 0

    def _release(self, _: Future) -> None:
        with self._lock:
            self.admitted -= 1

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)`` in a worker thread; its result or its exception.

        Raises:
            Busy: ``capacity`` jobs are already admitted.
        """
        with self._lock:
            if self.admitted >= self.capacity:
                raise Busy(
                    f"the server is busy with {self.admitted} {self.name} job(s); "
                    f"try again in {self.retry_after} s",
                    self.retry_after,
                )
            self.admitted += 1
        try:
            future = self._executor.submit(call, *args)
        except BaseException:
            with self._lock:
                self.admitted -= 1
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Stop taking jobs; running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
