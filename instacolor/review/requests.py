"""What every route of the review app shares: refusals, the JSON body, the hints, the pools.

* :class:`Refusal` is how a route says no: a status and one line (``Retry-After`` for 503);
* :func:`read_body` checks the token of a mutating request first, then the content type
  (JSON only, 415 otherwise), the size (:data:`MAX_BODY`, 413) and the nesting
  (:data:`MAX_DEPTH`, 400: a body of 30 000 ``[`` is refused before it is parsed);
* :func:`run_guarded` turns what a call raises into a 4xx or 500 answer: a refused path
  is 403, bad input 400, a batch holding the manifest 409, an input that cannot be
  read 422 (without its content), anything else 500 (logged);
* :func:`pooled` runs it in a bounded :class:`~instacolor.review.pool.WorkPool` (503
  when full), off the event loop;
* image numbers in URLs are 1 to 9 ASCII digits (route convertor ``image``): a number
  of 5000 digits, ``²`` or ``-1`` finds no route (404).
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import traceback
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse

from instacolor.errors import DecodeError, InputError, UsageError
from instacolor.review.pool import Busy, WorkPool
from instacolor.review.trust import UntrustedPath

__all__ = [
    "MAX_BODY",
    "MAX_DEPTH",
    "MAX_POINTS",
    "Refusal",
    "error",
    "item_of",
    "json_depth",
    "parse_hints",
    "pooled",
    "read_body",
    "run_guarded",
]

#: Largest request body accepted (bytes).
MAX_BODY = 64 * 1024
#: Deepest nesting of a request body's JSON (the hint format needs 4).
MAX_DEPTH = 8
#: Most hint points in one request.
MAX_POINTS = 200
_INSTANCE_KEY = re.compile(r"[0-9]{1,4}")


class _Index(Convertor):
    """An image number in a URL: 1 to 9 ASCII digits (anything else finds no route)."""

    regex = "[0-9]{1,9}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("image", _Index())


class Refusal(Exception):
    """A route's answer other than success: ``status`` and a one-line reason.

    Args:
        status: the HTTP status.
        message: what was expected, what was received, what to do.
        retry_after: seconds to wait (with 503).
    """

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    def answer(self) -> JSONResponse:
        """The JSON answer ``{"error": ...}``."""
        response = error(self.status, str(self))
        if self.retry_after is not None:
            response.headers["Retry-After"] = str(self.retry_after)
        return response


def error(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` (on one line) with ``status``."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def item_of(request: Request):
    """The batch item the URL names, or None."""
    return request.app.state.review.batch.item(request.path_params["index"])


def json_depth(text: bytes) -> int:
    """How deep brackets nest in JSON ``text`` (outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def read_body(request: Request) -> Any:
    """The JSON body of a mutating request (token, type, size and depth checked).

    Raises:
        Refusal: 403 without the token, 415 not JSON, 413 too large, 400 unreadable.
    """
    state = request.app.state.review
    given = request.headers.get("x-review-token", "")
    if not secrets.compare_digest(given.encode(), state.token.encode()):
        raise Refusal(403, "missing or wrong X-Review-Token: reload the page to get the token")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refusal(415, f"expected an application/json body, received {kind[:60] or 'none'}; "
                      "uploads are not accepted")  # fmt: skip
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refusal(413, f"expected a JSON body of at most {MAX_BODY} bytes")
    if json_depth(body) > MAX_DEPTH:
        raise Refusal(400, f"expected a JSON body nested at most {MAX_DEPTH} levels deep")
    try:
        return json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, a 5000-digit number
        raise Refusal(400, f"expected a JSON body, could not parse it ({exc})") from None


def parse_hints(state, item, payload: Any):
    """Parse and check a hint payload against the image; InputError says why not."""
    if not isinstance(payload, dict):
        raise InputError(f"hints: expected a JSON object, received {type(payload).__name__}")
    points = payload.get("points", [])
    if isinstance(points, list) and len(points) > MAX_POINTS:
        raise InputError(f"hints: expected at most {MAX_POINTS} points, received {len(points)}")
    colors = payload.get("instance_colors")
    if isinstance(colors, dict):
        for key in colors:
            if not _INSTANCE_KEY.fullmatch(key):
                raise InputError(
                    "instance_colors: expected instance numbers (1 to 4 ASCII digits) as "
                    f"keys, received {key[:20]!r}"
                )
    try:
        from instacolor.hints import as_hints, hints_from_json
    except ImportError as exc:  # hints not in this instacolor
        raise UsageError(f"colour hints are not available in this instacolor ({exc})") from exc
    view = state.engine.view(item)
    hints = hints_from_json({k: payload.get(k) for k in ("points", "instance_colors")
                             if k in payload})  # fmt: skip
    return as_hints(hints, view.full_size, view.instances)


def run_guarded(call, *args):
    """``call(*args)``; what it raises becomes a :class:`Refusal`, never a crash."""
    try:
        return call(*args)
    except UntrustedPath as exc:
        raise Refusal(403, f"refused: {exc}") from None
    except InputError as exc:
        raise Refusal(400, str(exc)) from None
    except UsageError as exc:
        raise Refusal(409, str(exc)) from None
    except DecodeError as exc:  # worded by engine.read_input: none of the file's content
        raise Refusal(422, str(exc)) from None
    except (ValueError, RecursionError) as exc:  # a value no check above foresaw
        raise Refusal(400, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    except Exception as exc:  # one failed image must not stop the server
        traceback.print_exc(file=sys.stderr)
        raise Refusal(500, f"re-colorization failed: {type(exc).__name__}: {exc}") from None


async def pooled(pool: WorkPool, call, *args):
    """:func:`run_guarded` in ``pool``'s worker threads.

    Raises:
        Refusal: what :func:`run_guarded` raises, or 503 when the pool is full.
    """
    try:
        return await pool.run(run_guarded, call, *args)
    except Busy as exc:
        raise Refusal(503, str(exc), retry_after=exc.retry_after) from None
