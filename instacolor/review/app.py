"""The review web app: one Starlette application, one static page, a small JSON API.

Every URL names an image by its number in the batch (:class:`~instacolor.review.state.Batch`)
and a picture by a fixed kind; no path from a request reaches the file system, so
``/../`` and its encodings find no route (404). Requests that change anything (preview,
apply, decision) are POSTs with a JSON body of at most :data:`MAX_BODY` bytes and the
per-session token of the page in the ``X-Review-Token`` header (403 without it); other
bodies, file uploads included, are refused (415). Bad hints are a 400 with the reason;
a failure inside a re-colorization is a 500 with the reason, and the server goes on.

Routes: ``GET /`` (the page), ``GET /static/{app.js,app.css}``, ``GET /api/batch``,
``GET /api/images/N``, ``GET /api/images/N/KIND.png``, ``POST /api/images/N/preview``,
``POST /api/images/N/apply``, ``POST /api/images/N/decision``.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import sys
import traceback
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from instacolor.errors import InputError, UsageError
from instacolor.review.engine import Engine, encode_png
from instacolor.review.render import KINDS, instance_list, render
from instacolor.review.stamp import stamp_review
from instacolor.review.state import DECISIONS, Batch, Item, ReviewLog, current_decision

__all__ = ["MAX_BODY", "MAX_POINTS", "ReviewState", "create_app"]

#: Largest request body accepted (bytes).
MAX_BODY = 64 * 1024
#: Most hint points in one request.
MAX_POINTS = 200
_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


class ReviewState:
    """What the app holds: the batch, the networks, the log, the reviewer and the token.

    Args:
        batch: the batch under review.
        engine: its :class:`~instacolor.review.engine.Engine`.
        reviewer: the name written with every decision.
        token: the per-session token (default: a new random one).
    """

    def __init__(self, batch: Batch, engine: Engine, reviewer: str, token: str | None = None):
        self.batch = batch
        self.engine = engine
        self.reviewer = reviewer
        self.token = token or secrets.token_urlsafe(24)
        self.log = ReviewLog(batch.outdir / "review.jsonl")

    def summary(self, item: Item, last: dict) -> dict[str, Any]:
        """The grid's line for ``item``."""
        view = self.engine.views.get(item.index)
        conf = view.confidence if view is not None else None
        mean = item.record.get("mean_confidence")  # what the batch measured, if it did
        if conf is not None:
            mean = float(conf.mean())
        return {
            "index": item.index,
            "name": item.input.name,
            "output": _relative(item, self.batch),
            "status": item.status,
            "error": item.record.get("error"),
            "decision": current_decision(item, last),
            "mean_confidence": None if mean is None else round(float(mean), 4),
            "instances": item.record.get("instances", 0),
            "reviewed_by_app": bool(item.record.get("review")),
        }


def _relative(item: Item, batch: Batch) -> str | None:
    if item.output is None:
        return None
    try:
        return str(item.output.relative_to(batch.outdir))
    except ValueError:
        return item.output.name


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def _item(request: Request) -> Item | None:
    state: ReviewState = request.app.state.review
    return state.batch.item(request.path_params["index"])


async def _body(request: Request) -> Any:
    """The JSON body of a mutating request (token and size checked)."""
    state: ReviewState = request.app.state.review
    given = request.headers.get("x-review-token", "")
    if not secrets.compare_digest(given.encode(), state.token.encode()):
        raise _Refusal(403, "missing or wrong X-Review-Token: reload the page to get the token")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise _Refusal(415, f"expected an application/json body, received {kind or 'none'}; "
                       "uploads are not accepted")  # fmt: skip
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _Refusal(413, f"expected a JSON body of at most {MAX_BODY} bytes")
    try:
        return json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Refusal(400, f"expected a JSON body, could not parse it ({exc})") from None


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _hints(state: ReviewState, item: Item, payload: Any):
    """Parse and check a hint payload against the image; InputError says why not."""
    if not isinstance(payload, dict):
        raise InputError(f"hints: expected a JSON object, received {type(payload).__name__}")
    points = payload.get("points", [])
    if isinstance(points, list) and len(points) > MAX_POINTS:
        raise InputError(f"hints: expected at most {MAX_POINTS} points, received {len(points)}")
    try:
        from instacolor.hints import as_hints, hints_from_json
    except ImportError as exc:  # hints not in this instacolor
        raise UsageError(f"colour hints are not available in this instacolor ({exc})") from exc
    view = state.engine.view(item)
    hints = hints_from_json({k: payload.get(k) for k in ("points", "instance_colors")
                             if k in payload})  # fmt: skip
    return as_hints(hints, view.full_size, view.instances)


def _run(call, *args):
    """Run a re-colorization; its failure becomes a 400/409/500 answer, never a crash."""
    try:
        return call(*args)
    except InputError as exc:
        raise _Refusal(400, str(exc)) from None
    except UsageError as exc:
        raise _Refusal(409, str(exc)) from None
    except Exception as exc:  # one failed image must not stop the server
        traceback.print_exc(file=sys.stderr)
        raise _Refusal(500, f"re-colorization failed: {type(exc).__name__}: {exc}") from None


async def index(request: Request) -> Response:
    state: ReviewState = request.app.state.review
    page = resources.files("instacolor.review").joinpath("static/index.html").read_text("utf-8")
    page = page.replace("{{TOKEN}}", html.escape(state.token)).replace(
        "{{TITLE}}", html.escape(f"instacolor review: {state.batch.outdir.name}")
    )
    return Response(page, media_type="text/html", headers={"Cache-Control": "no-store"})


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:
        return _error(404, "not found")
    text = resources.files("instacolor.review").joinpath(f"static/{name}").read_text("utf-8")
    return Response(text, media_type=_STATIC[name])


def batch_info(request: Request) -> JSONResponse:
    state: ReviewState = request.app.state.review
    last = state.log.last()
    engine = state.engine
    return JSONResponse(
        {
            "outdir": str(state.batch.outdir),
            "reviewer": state.reviewer,
            "model": engine.colorizer.loaded.name,
            "working_size": engine.colorizer.working_size,
            "confidence": engine.has_confidence,
            "confidence_note": None
            if engine.has_confidence
            else "no confidence map for these weights (no trained classification head)",
            "warning": engine.mismatch,
            "items": [state.summary(item, last) for item in state.batch.items],
        }
    )


def image_info(request: Request) -> JSONResponse:
    state: ReviewState = request.app.state.review
    item = _item(request)
    if item is None:
        return _error(404, "no such image in this batch")
    info = state.summary(item, state.log.last())
    if item.output is not None:
        try:
            view = _run(state.engine.view, item)
        except _Refusal as exc:
            return _error(exc.status, str(exc))
        info.update(
            size=list(view.full_size),
            display=list(view.light.shape),
            instance_list=instance_list(state.engine, item),
            mean_confidence=state.summary(item, {})["mean_confidence"],
            history=[e for e in state.log.read() if e["output"] == str(item.output)][-10:],
            applied_hints=(item.record.get("review") or {}).get("hints"),
        )
    return JSONResponse(info)


def picture(request: Request) -> Response:
    state: ReviewState = request.app.state.review
    item, kind = _item(request), request.path_params["kind"]
    if item is None or kind not in KINDS:
        return _error(404, "not found")
    try:
        data = _run(render, state.engine, item, kind)
    except _Refusal as exc:
        return _error(exc.status, str(exc))
    if data is None:
        return _error(404, f"image {item.index} has no {kind} picture")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


async def _posted(request: Request) -> tuple[ReviewState, Item, Any]:
    """``(state, item, payload)`` of a mutating request on a colorized image.

    The token is checked first: nothing is said without it.

    Raises:
        _Refusal: 403/415/413/400 from :func:`_body`, or 404 when the image has no output.
    """
    state: ReviewState = request.app.state.review
    payload = await _body(request)
    item = _item(request)
    if item is None or item.output is None:
        raise _Refusal(404, "no colorized image with this number")
    return state, item, payload


async def preview(request: Request) -> Response:
    try:
        state, item, payload = await _posted(request)
        hints = _run(_hints, state, item, payload)
        rgb, seconds = _run(state.engine.preview, item, hints)
    except _Refusal as exc:
        return _error(exc.status, str(exc))
    data = base64.b64encode(encode_png(rgb)).decode()
    return JSONResponse({"image": f"data:image/png;base64,{data}", "seconds": round(seconds, 4)})


async def apply(request: Request) -> Response:
    try:
        state, item, payload = await _posted(request)
        hints = _run(_hints, state, item, payload)
        review = {"action": "apply", "reviewer": state.reviewer,
                  "hints": None if hints is None else hints.to_json(),
                  "hints_sha256": None if hints is None else hints.sha256()}  # fmt: skip
        record = _run(state.engine.apply, item, hints, review)
    except _Refusal as exc:
        return _error(exc.status, str(exc))
    if record.status != "done":
        return _error(500, f"apply failed, the output is unchanged: {record.error}")
    return JSONResponse({"record": json.loads(record.to_json())})


async def decision(request: Request) -> Response:
    try:
        state, item, payload = await _posted(request)
        if not isinstance(payload, dict):
            raise _Refusal(400, "expected a JSON object {decision, comment}")
        entry = _run(_decide, state, item, payload)
    except _Refusal as exc:
        return _error(exc.status, str(exc))
    return JSONResponse({"decision": entry})


def _decide(state: ReviewState, item: Item, payload: dict) -> dict:
    """Log a decision; an accepted output gets the review in its XMP first."""
    choice, comment = payload.get("decision"), payload.get("comment") or ""
    if choice not in DECISIONS:
        raise InputError(f"decision: expected one of {DECISIONS}, received {choice!r}")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise InputError("comment: expected text of at most 2000 characters")
    with state.engine.lock:
        hints = (item.record.get("review") or {}).get("hints")
        reviewed = item.output_sha256()
        note = None
        if choice == "accept":
            try:
                stamp_review(item.output, item.input, {
                    "decision": "accept", "reviewer": state.reviewer, "time": _now(),
                    "reviewed_sha256": reviewed, "comment": comment,
                    "hints_sha256": (item.record.get("review") or {}).get("hints_sha256"),
                })  # fmt: skip
                _restamped(state, item, reviewed)
            except Exception as exc:  # the decision is still logged, with why
                note = f"the output's XMP could not record the review: {exc}"
        return state.log.append(
            item, choice, reviewer=state.reviewer, comment=comment, hints=hints,
            output_sha256=item.output_sha256(), note=note,
        )  # fmt: skip


def _now() -> str:
    from instacolor.review.state import _now as now

    return now()


def _restamped(state: ReviewState, item: Item, reviewed: str | None) -> None:
    """A manifest record for the stamped output (so ``--resume`` keeps it)."""
    from dataclasses import fields

    from instacolor.batch.manifest import Manifest
    from instacolor.review.engine import ReviewRecord

    known = {f.name for f in fields(ReviewRecord)} - {"time", "timings", "review", "note"}
    values = {k: v for k, v in item.record.items() if k in known}
    values.update(status="done", output_sha256=item.output_sha256())
    record = ReviewRecord(
        **values, note=f"review: accepted; only the XMP changed (was {reviewed})",
        review={"action": "accept", "reviewer": state.reviewer, "reviewed_sha256": reviewed},
    )  # fmt: skip
    book = Manifest(state.batch.manifest)
    try:
        book.append(record)
    finally:
        book.close()
    state.batch.reload()


def create_app(state: ReviewState, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The Starlette application serving ``state``.

    Args:
        state: the batch, engine, log, reviewer and token.
        allowed_hosts: ``Host`` header values accepted (default: any; ``serve`` passes
            the bound host, ``127.0.0.1`` and ``localhost``, against DNS rebinding).
    """
    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/batch", batch_info),
        Route("/api/images/{index:int}", image_info),
        Route("/api/images/{index:int}/{kind}.png", picture),
        Route("/api/images/{index:int}/preview", preview, methods=["POST"]),
        Route("/api/images/{index:int}/apply", apply, methods=["POST"]),
        Route("/api/images/{index:int}/decision", decision, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"])]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.review = state
    return app
