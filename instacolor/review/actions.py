"""The review app's routes that change or compute something: preview, apply, decision.

Each is a POST with the page's token and a small JSON body
(:func:`~instacolor.review.requests.read_body`); the work runs in a bounded pool off
the event loop (:func:`~instacolor.review.requests.pooled`): re-colorizing in
``state.colorizing``, decisions (an accept rewrites the output's XMP) in
``state.deciding``. The item's files are checked against the batch's folders
(:mod:`instacolor.review.trust`) before they are read or written.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from instacolor.errors import InputError
from instacolor.review.engine import encode_png
from instacolor.review.references import picked
from instacolor.review.requests import Refusal, item_of, parse_hints, pooled, read_body
from instacolor.review.stamp import stamp_review
from instacolor.review.state import DECISIONS, Item

__all__ = ["apply", "decision", "preview"]


async def _posted(request: Request) -> tuple[Any, Item, Any]:
    """``(state, item, payload)`` of a mutating request on a colorized image.

    The token is checked first: nothing is said without it.

    Raises:
        Refusal: 403/415/413/400 from :func:`read_body`, or 404 when the image has no output.
    """
    state = request.app.state.review
    payload = await read_body(request)
    item = item_of(request)
    if item is None or item.output is None:
        raise Refusal(404, "no colorized image with this number")
    return state, item, payload


def _keep(payload: Any) -> bool:
    """The request's ``"keep_references"`` (default true).

    Raises:
        InputError: it is not true, false or absent.
    """
    keep = payload.get("keep_references", True) if isinstance(payload, dict) else True
    if not isinstance(keep, bool):
        raise InputError("keep_references: expected true or false")
    return keep


def _preview(state, item: Item, payload: Any) -> tuple[str, float]:
    item.checked()
    hints = parse_hints(state, item, payload)
    reference = picked(item, payload)
    rgb, seconds = state.engine.preview(item, hints, reference, _keep(payload))
    return base64.b64encode(encode_png(rgb)).decode(), seconds


async def preview(request: Request) -> Response:
    """``POST /api/images/N/preview``: the display copy re-colorized with the hints."""
    try:
        state, item, payload = await _posted(request)
        data, seconds = await pooled(state.colorizing, _preview, state, item, payload)
    except Refusal as exc:
        return exc.answer()
    return JSONResponse({"image": f"data:image/png;base64,{data}", "seconds": round(seconds, 4)})


def _apply(state, item: Item, payload: Any):
    item.checked()
    hints = parse_hints(state, item, payload)
    reference = picked(item, payload)
    keep = _keep(payload)
    review = {"action": "apply", "reviewer": state.reviewer,
              "hints": None if hints is None else hints.to_json(),
              "hints_sha256": None if hints is None else hints.sha256(),
              "reference": None if reference is None else reference[0],
              "keep_references": keep}  # fmt: skip
    name = None if reference is None else reference[0]
    return state.engine.apply(item, hints, review, name, keep)


async def apply(request: Request) -> Response:
    """``POST /api/images/N/apply``: the full-resolution output re-colorized."""
    try:
        state, item, payload = await _posted(request)
        record = await pooled(state.colorizing, _apply, state, item, payload)
    except Refusal as exc:
        return exc.answer()
    if record.status != "done":
        kind = str(record.error or "").split(":", 1)[0][:40]
        return Refusal(
            500,
            f"apply failed, the output is unchanged ({kind}); the manifest's last record "
            "for this input says why",
        ).answer()
    return JSONResponse({"record": json.loads(record.to_json())})


async def decision(request: Request) -> Response:
    """``POST /api/images/N/decision``: accept, reject or needs-work, with a comment."""
    try:
        state, item, payload = await _posted(request)
        if not isinstance(payload, dict):
            raise Refusal(400, "expected a JSON object {decision, comment}")
        entry = await pooled(state.deciding, _decide, state, item, payload)
    except Refusal as exc:
        return exc.answer()
    return JSONResponse({"decision": entry})


def _review(item: Item) -> dict:
    review = item.record.get("review")
    return review if isinstance(review, dict) else {}


def _decide(state, item: Item, payload: dict) -> dict:
    """Log a decision; an accepted output gets the review in its XMP first."""
    choice, comment = payload.get("decision"), payload.get("comment") or ""
    if not isinstance(choice, str) or choice not in DECISIONS:
        raise InputError(f"decision: expected one of {DECISIONS}, received {str(choice)[:40]!r}")
    if not isinstance(comment, str) or len(comment) > 2000:
        raise InputError("comment: expected text of at most 2000 characters")
    with state.engine.lock:
        item.checked()
        state.log.check()  # a log that cannot be written: refused before the XMP changes
        hints = _review(item).get("hints")
        reviewed = item.output_sha256()
        note = None
        if choice == "accept":
            try:
                stamp_review(item.output, item.input, {
                    "decision": "accept", "reviewer": state.reviewer, "time": _now(),
                    "reviewed_sha256": reviewed, "comment": comment,
                    "hints_sha256": _review(item).get("hints_sha256"),
                })  # fmt: skip
                _restamped(state, item, reviewed)
            except Exception as exc:  # the decision is still logged, with why
                note = f"the output's XMP could not record the review ({type(exc).__name__})"
        return state.log.append(
            item, choice, reviewer=state.reviewer, comment=comment, hints=hints,
            output_sha256=item.output_sha256(), note=note,
        )  # fmt: skip


def _now() -> str:
    from instacolor.review.state import _now as now

    return now()


def _restamped(state, item: Item, reviewed: str | None) -> None:
    """A manifest record for the stamped output (so ``--resume`` keeps it)."""
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
