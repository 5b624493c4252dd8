"""Reference matching beside the networks, each on its own core.

A colorization with a colour reference adds encoder passes (the target's, and for a
reference not yet described its own; its mirror's too with
:data:`~instacolor.hints.reference.MIRROR` ``"pass"``) to the networks' pass. At 256 px
an encoder pass barely gains from a second torch thread (one pass took about as long
with two threads as with one), and two torch thread teams competing for the same cores
(the networks at two threads beside a matching thread at two) were slower than running
one after the other. So, when torch may use two threads or more, :func:`match_beside`
runs the caller's work (the networks) and the matching's encoder passes in two Python
threads that share torch's threads (on 2 cores: one each; torch's thread count is per
thread, OpenMP's ``nthreads`` setting: the caller's is set back on return), then the
similarity scores at the caller's threads. With one torch thread it runs them one after
the other.

Which lane does what: the side lane reads and checks the references
(:func:`~instacolor.hints.photos.read_references`; a kept
:class:`~instacolor.hints.reference.Reference` is taken as it is) and encodes those not
yet described at this working size, the caller's lane runs the
networks; the target's pass goes to the lane that is free first (with a kept
:class:`~instacolor.hints.reference.Reference`, the side lane at once), so the two lanes
stay balanced whatever else the cores are running. The matches are those of
:func:`~instacolor.hints.reference.match_references` (the same functions on the same
inputs; with two torch threads, the same known cells and ab as with one). A reference
that cannot be read or has no colour raises the reader's error once the networks are
done (with one torch thread, before they start).

Example:
    >>> import numpy as np
    >>> rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    >>> light = np.full((32, 32), 50.0, np.float32)
    >>> out, match = match_beside(light, rgb, lambda: "networks")
    >>> out, match.known.shape
    ('networks', (32, 32))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from instacolor.hints.photos import read_references
from instacolor.hints.reference import (
    ReferenceMatch,
    describe_references,
    describe_target,
    match_references,
    matches_of,
)

__all__ = ["match_beside"]

_T = TypeVar("_T")


def _at_threads(threads: int, task: Callable[[], _T]) -> _T:
    """``task()`` at ``threads`` torch threads (this thread's setting only)."""
    torch.set_num_threads(threads)
    return task()


def match_beside(
    light: np.ndarray, reference: Any, work: Callable[[], _T]
) -> tuple[_T, ReferenceMatch]:
    """``work()`` and :func:`~instacolor.hints.reference.match_references` side by side.

    Args:
        light: ``(S, S)`` float32 L of the target at the working size.
        reference: what :func:`~instacolor.hints.photos.read_references` reads (not None):
            a path, array or PIL image, a :class:`~instacolor.hints.reference.Reference`,
            or a non-empty list of them.
        work: what the caller has to do meanwhile (the networks), run in this thread.

    Returns:
        ``(work(), the matches)``. An error of either is raised once both are done.

    Raises:
        InputError, DecodeError: the reference's, as
            :func:`~instacolor.hints.photos.read_references` raises them.
    """
    s = light.shape[-1]
    threads = torch.get_num_threads()
    if threads < 2:
        references = read_references(reference)  # a bad reference: before the networks
        out = work()
        return out, match_references(light, references)
    aside = threads // 2  # the side lane's torch threads, the rest the caller's
    claim = threading.Lock()  # the target's pass goes to the lane free first

    def target_if_free():
        return describe_target(light) if claim.acquire(blocking=False) else None

    def side_lane():
        references = read_references(reference)
        describe_references(references, s)
        return references, target_if_free()

    with ThreadPoolExecutor(1, thread_name_prefix="instacolor-match") as pool:
        torch.set_num_threads(threads - aside)
        try:
            side = pool.submit(_at_threads, aside, side_lane)
            out = work()
            if side.done() and side.exception() is not None:
                side.result()  # the side lane failed (a bad reference): no target pass
            target = target_if_free()
            references, theirs = side.result()
        finally:
            torch.set_num_threads(threads)
    target = theirs if target is None else target
    return out, matches_of(target, references, s)
