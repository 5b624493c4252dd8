"""instacolor review: a local web app to check, correct and accept a batch's colorizations.

``instacolor review OUTDIR`` serves one static page (no front-end build step) backed by a
small JSON API (:mod:`instacolor.review.app`, Starlette + uvicorn: ``pip install
"instacolor[review]"``). The batch is read from its manifest
(:mod:`instacolor.review.state`); previews and "apply" go through the batch's own
colorizer and worker (:mod:`instacolor.review.engine`); decisions are appended to
``OUTDIR/review.jsonl`` and an accepted output's XMP records the review
(:mod:`instacolor.review.stamp`). ``docs/review.md`` shows it.
"""
