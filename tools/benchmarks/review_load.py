"""instacolor review under load: memory of full-size pictures, static files during previews.

Colorizes one large 16-bit scan with the CLI (working size 64: the network is not what is
measured), serves the batch with the real review server in this process and prints:

* the peak resident memory after the server starts and after the image's description;
* four ``*-large`` pictures (gray and colour, twice) asked for at once: their statuses,
  the wall time and the peak resident memory;
* ``--previews`` preview requests at once (one hint each): their statuses (200 or 503
  with Retry-After when the pool is full) and the slowest of five ``/static/app.js``
  requests sent while they run.

Usage:
    python tools/bench.py review-load WORKDIR [--width 4000 --height 3000 --previews 12]

WORKDIR keeps the scan and the batch between runs (made on the first run). Peak memory
is the process's maximum resident set (``ru_maxrss``), so run each measurement in a fresh
process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _request(port: int, path: str, body: str | None = None, token: str | None = None):
    """One HTTP request; returns (status, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Host": f"127.0.0.1:{port}"}
    if body is not None:
        headers.update({"Content-Type": "application/json", "X-Review-Token": token or ""})
    start = time.monotonic()
    conn.request("GET" if body is None else "POST", path, body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.status, time.monotonic() - start


def _make_batch(workdir: Path, width: int, height: int) -> Path:
    """The batch of one synthetic 16-bit scan in ``workdir/out``, colorized on the first run."""
    from instacolor.cli.main import main

    inputs, out = workdir / "in", workdir / "out"
    if out.exists():
        return out
    inputs.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width]
    scan = ((x * 13 + y * 7) % 65536).astype(np.uint16)
    Image.fromarray(scan).save(inputs / "scan16.png")
    args = ["colorize", str(inputs), "-o", str(out), "--working-size", "64", "--no-progress"]
    if main(args) != 0:
        raise SystemExit("colorizing the scan failed")
    return out


def load_test(workdir: Path, width: int, height: int, previews: int) -> None:
    """Make (or reuse) the batch in ``workdir``, serve it and print the measurements."""
    from instacolor.review.server import ReviewServer

    out = _make_batch(workdir, width, height)
    hint = json.dumps({"points": [{"x": 10, "y": 10, "color": "#ff0000"}]})
    with ReviewServer.start(out, port=0) as server:
        port = server.port
        print(f"server started: peak RSS {_peak_mib():.0f} MiB")
        status, _ = _request(port, "/api/images/0")
        print(f"image description: {status}, peak RSS {_peak_mib():.0f} MiB")
        with ThreadPoolExecutor(4) as pool:
            start = time.monotonic()
            kinds = ["gray-large", "color-large"] * 2
            done = list(pool.map(lambda k: _request(port, f"/api/images/0/{k}.png"), kinds))
        print(
            f"4 large pictures at once: statuses {[d[0] for d in done]}, "
            f"{time.monotonic() - start:.1f} s, peak RSS {_peak_mib():.0f} MiB"
        )
        token = server.state.token
        with ThreadPoolExecutor(previews) as pool:
            sent = [
                pool.submit(_request, port, "/api/images/0/preview", hint, token)
                for _ in range(previews)
            ]
            time.sleep(0.5)
            static = [_request(port, "/static/app.js") for _ in range(5)]
            statuses = sorted(f.result()[0] for f in sent)
        print(
            f"{previews} previews at once: statuses {statuses}; "
            f"slowest static file meanwhile {max(s[1] for s in static):.3f} s"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py review-load``."""
    parser.add_argument("workdir", type=Path, help="folder for the scan and its batch")
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--previews", type=int, default=12)


def run(args: argparse.Namespace) -> int:
    """Run the load test on ``args.workdir``."""
    load_test(args.workdir, args.width, args.height, args.previews)
    return 0
