"""SIGTERM stops a batch as Ctrl-C does.

Batch schedulers, ``timeout``, ``docker stop`` and ``systemctl stop`` send SIGTERM, whose
default action kills the process at once: the image being written leaves its hidden
temporary file and the batch ends without a word. While a batch runs,
:func:`sigterm_interrupts` makes SIGTERM raise :class:`Terminated` (a
:class:`KeyboardInterrupt`) in the main thread instead, so it takes Ctrl-C's path: the
write in progress removes its temporary file, the records of finished images are in the
manifest, the runner stops its workers, and ``instacolor`` exits with status 143
(128 + SIGTERM). Worker processes of a pool use :func:`stop_worker_on_signals`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "sigterm_interrupts", "stop_worker_on_signals", "worker_busy"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a batch ran: it stops as on Ctrl-C (``instacolor`` exits 143).

    Attributes:
        exit_status: 143, the shell's status of a process ended by SIGTERM.
    """

    exit_status = 128 + signal.SIGTERM


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Only the first SIGTERM raises (a second one, often sent to every process of a job,
    must not cut the clean-up short). Nothing changes outside the main thread or when
    the process already has its own SIGTERM handler; the previous handler is put back
    when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield
        return
    raised = False

    def handler(signum, frame) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated(f"terminated by SIGTERM (signal {signum})")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_busy = False
_stopping = False


def stop_worker_on_signals() -> None:
    """In a pool's worker process: SIGTERM and SIGINT stop the image in progress cleanly.

    Inside :func:`worker_busy` the signal raises :class:`Terminated` (SIGTERM) or
    :class:`KeyboardInterrupt` (SIGINT), so the write in progress removes its temporary
    file before the worker exits; outside it (idle, loading the networks) the process
    ends at once, as it would by default. Later signals are ignored while it stops.
    """

    def handler(signum, frame) -> None:
        global _stopping
        if _stopping:
            return
        _stopping = True
        if not _busy:
            os._exit(128 + signum)
        if signum == signal.SIGTERM:
            raise Terminated(f"terminated by SIGTERM (signal {signum})")
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as Python's own

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@contextlib.contextmanager
def worker_busy() -> Iterator[None]:
    """Mark a worker process busy with images; a stop signal inside ends the process.

    The image in progress unwinds first (its temporary file is removed), then the
    process exits with 128 + the signal, so its pool sees a dead worker: the parent,
    which is stopping too or records the worker's images as lost, decides what follows.
    """
    global _busy
    if _stopping:  # a stop signal whose interrupt something swallowed: stop now
        os._exit(128 + signal.SIGTERM)
    _busy = True
    try:
        yield
    except KeyboardInterrupt as exc:
        status = exc.exit_status if isinstance(exc, Terminated) else 128 + signal.SIGINT
        os._exit(status)
    finally:
        _busy = False
