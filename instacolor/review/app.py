"""The review web app: one Starlette application, one static page, a small JSON API.

Every URL names an image by its number in the batch (:class:`~instacolor.review.state.Batch`,
1 to 9 ASCII digits) and a picture by a fixed kind; no path from a request reaches the
file system, so ``/../`` and its encodings find no route (404). The paths a manifest
record names are checked before use (:mod:`instacolor.review.trust`: 403 outside the
batch's folders, or a symbolic link as output), and no error answer carries a file's
content. Requests that change anything (:mod:`instacolor.review.actions`: preview,
apply, decision) are POSTs with the page's token and a small JSON body
(:mod:`instacolor.review.requests`); their work runs in bounded pools off the event loop
(503 with ``Retry-After`` when full). Headers (CSP, no framing), the ``Host`` allow-list
and the token on non-loopback servers: :mod:`instacolor.review.guard`.

Routes: ``GET /`` (the page), ``GET /static/{app.js,app.css}``, ``GET /api/batch``,
``GET /api/images/N``, ``GET /api/images/N/KIND.png``, ``POST /api/images/N/preview``,
``POST /api/images/N/apply``, ``POST /api/images/N/decision``.
"""

from __future__ import annotations

import html
import math
import secrets
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from instacolor.review.actions import apply, decision, preview
from instacolor.review.engine import Engine
from instacolor.review.guard import Guard
from instacolor.review.pool import WorkPool
from instacolor.review.references import candidates, kept
from instacolor.review.render import KINDS, instance_list, render
from instacolor.review.requests import (
    MAX_BODY,
    MAX_DEPTH,
    MAX_POINTS,
    Refusal,
    error,
    item_of,
    run_guarded,
)
from instacolor.review.state import Batch, Item, ReviewLog, current_decision

__all__ = ["MAX_BODY", "MAX_DEPTH", "MAX_POINTS", "ReviewState", "create_app"]

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}


class ReviewState:
    """What the app holds: the batch, the networks, the log, the reviewer and the token.

    Args:
        batch: the batch under review.
        engine: its :class:`~instacolor.review.engine.Engine`.
        reviewer: the name written with every decision.
        token: the per-session token (default: a new random one).
        queue: re-colorizations admitted at once, running or waiting (503 beyond).
    """

    def __init__(
        self,
        batch: Batch,
        engine: Engine,
        reviewer: str,
        token: str | None = None,
        *,
        queue: int = 4,
    ):
        self.batch = batch
        self.engine = engine
        self.reviewer = reviewer
        self.token = token or secrets.token_urlsafe(24)
        self.log = ReviewLog(batch.outdir / "review.jsonl")
        #: re-colorizing (preview, apply): one at a time, ``queue`` admitted
        self.colorizing = WorkPool(1, max(1, queue), name="re-colorization")
        #: decisions (an accept rewrites the output's XMP): one at a time
        self.deciding = WorkPool(1, 64, name="decision")

    def summary(self, item: Item, last: dict) -> dict[str, Any]:
        """The grid's line for ``item`` (manifest fields are checked, not trusted)."""
        view = self.engine.views.get(item.index)
        conf = view.confidence if view is not None else None
        mean = _number(item.record.get("mean_confidence"))  # what the batch measured, if it did
        if conf is not None:
            mean = float(conf.mean())
        error_text = item.record.get("error")
        return {
            "index": item.index,
            "name": item.input.name,
            "output": _relative(item, self.batch),
            "status": item.status,
            "error": None if error_text is None else str(error_text)[:2000],
            "refused": item.refusal(),
            "decision": current_decision(item, last),
            "mean_confidence": None if mean is None else round(float(mean), 4),
            "instances": int(_number(item.record.get("instances")) or 0),
            "reviewed_by_app": bool(item.record.get("review")),
        }


def _number(value: Any) -> float | None:
    """A finite number from a manifest field, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _relative(item: Item, batch: Batch) -> str | None:
    if item.output is None:
        return None
    try:
        return str(item.output.relative_to(batch.outdir))
    except ValueError:
        return item.output.name


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
        return error(404, "not found")
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
    item = item_of(request)
    if item is None:
        return error(404, "no such image in this batch")
    info = state.summary(item, state.log.last())
    if item.output is not None:
        try:
            run_guarded(item.checked)
            view = run_guarded(state.engine.view, item)
            references = run_guarded(candidates, item)
            made_with = run_guarded(kept, item)
        except Refusal as exc:
            return exc.answer()
        review = item.record.get("review")
        info.update(
            size=list(view.full_size),
            display=list(view.light.shape),
            instance_list=instance_list(state.engine, item),
            mean_confidence=state.summary(item, {})["mean_confidence"],
            history=[e for e in state.log.read() if e["output"] == str(item.output)][-10:],
            applied_hints=review.get("hints") if isinstance(review, dict) else None,
            references=references,
            kept_references=made_with.names,
            dropped_references=list(made_with.dropped),
        )
    return JSONResponse(info)


def picture(request: Request) -> Response:
    state: ReviewState = request.app.state.review
    item, kind = item_of(request), request.path_params["kind"]
    if item is None or kind not in KINDS:
        return error(404, "not found")
    try:
        run_guarded(item.checked)
        data = run_guarded(render, state.engine, item, kind)
    except Refusal as exc:
        return exc.answer()
    if data is None:
        return error(404, f"image {item.index} has no {kind} picture")
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


def create_app(
    state: ReviewState,
    *,
    allowed_hosts: list[str] | None = None,
    require_token: bool = False,
) -> Starlette:
    """The Starlette application serving ``state``.

    Args:
        state: the batch, engine, log, reviewer and token.
        allowed_hosts: ``Host`` names accepted besides the loopback ones (default: any;
            :class:`~instacolor.review.server.ReviewServer` passes the bound address and
            ``--allowed-host`` names, against DNS rebinding).
        require_token: ask for the token on every request, reads included (a server on
            a non-loopback address).
    """
    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/batch", batch_info),
        Route("/api/images/{index:image}", image_info),
        Route("/api/images/{index:image}/{kind}.png", picture),
        Route("/api/images/{index:image}/preview", preview, methods=["POST"]),
        Route("/api/images/{index:image}/apply", apply, methods=["POST"]),
        Route("/api/images/{index:image}/decision", decision, methods=["POST"]),
    ]
    guard = Middleware(
        Guard,
        token=state.token,
        allowed_hosts=allowed_hosts or ["*"],
        require_token=require_token,
    )
    app = Starlette(routes=routes, middleware=[guard])
    app.state.review = state
    return app
