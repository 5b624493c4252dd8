"""Helpers of the review tests: batches made by the CLI, an HTTP client, hostile texts.

A test module that defines a ``batch`` fixture (a batch's output folder) gets the
fixtures ``server`` (a review server over it) and ``client`` (a :class:`Client` of it) by
importing :func:`server_fixture` and :func:`client_fixture`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from instacolor.cli.main import main

if TYPE_CHECKING:
    from instacolor.review.server import ReviewServer

#: An opener without proxies. urllib.request.urlopen keeps the first opener it builds, with
#: the proxies of that moment (an earlier test may have pointed them at a closed port): talk
#: to the local server directly.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: Number of good scans in :func:`make_batch`.
N_IMAGES = 3

#: Input names and texts that would run script if a page built HTML from them.
XSS_NAME = "<img src=x onerror=\"window.__xss='name'\">.png"
XSS_ERROR = "<img src=x onerror=\"window.__xss='error'\"><script>window.__xss='e2'</script>"
XSS_REVIEWER = "<img src=x onerror=\"window.__xss='reviewer'\">"
XSS_COMMENT = "<svg onload=\"window.__xss='comment'\"></svg><b>bold</b>"


def make_batch(root: Path) -> Path:
    """Three small gray scans and a corrupt one, colorized by the CLI at working size 64."""
    inputs = root / "in"
    inputs.mkdir()
    y, x = np.mgrid[0:72, 0:96]
    for k in range(N_IMAGES):
        gray = 120 + 50 * np.sin(x / (6 + k)) + 30 * np.cos(y / 5)
        gray[16:56, 20:60] = 210 - 50 * k  # a flat region with strong edges
        Image.fromarray(gray.clip(0, 255).astype(np.uint8)).save(inputs / f"scan{k}.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    outdir = root / "out"
    assert main(["colorize", str(inputs), "-o", str(outdir), "--working-size", "64",
                 "--no-progress"]) == 1  # fmt: skip  # the broken file fails alone
    return outdir


def sha(path: Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Client:
    """The review API of a running server over HTTP, with its token."""

    def __init__(self, server: ReviewServer) -> None:
        self.base = server.url.rstrip("/")
        self.token = server.state.token

    def get(self, path: str) -> tuple[int, bytes]:
        """``GET path``: status and body."""
        try:
            with OPENER.open(self.base + path) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path, body=None, *, token=True, data=None, kind="application/json"):
        """``POST path`` with a JSON body (or raw ``data``): status and decoded JSON answer."""
        headers = {"Content-Type": kind}
        if token:
            headers["X-Review-Token"] = self.token if token is True else token
        payload = data if data is not None else json.dumps(body or {}).encode()
        request = urllib.request.Request(self.base + path, payload, headers, method="POST")
        try:
            with OPENER.open(request) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module", name="server")
def server_fixture(batch):
    """``server``: a review server (reviewer "ada") on a free port over the module's ``batch``."""
    from instacolor.review.server import ReviewServer

    with ReviewServer.start(batch, port=0, reviewer="ada") as running:
        yield running


@pytest.fixture(name="client")
def client_fixture(server) -> Client:
    """``client``: a :class:`Client` of ``server``."""
    return Client(server)


def index_of(client: Client, name: str) -> int:
    """The index the server gives the input named ``name`` (from ``/api/batch``)."""
    items = json.loads(client.get("/api/batch")[1])["items"]
    return next(i["index"] for i in items if i["name"] == name)


class FlatRegionDetector:
    """A real, simple detector: the largest perfectly flat region of L is one instance."""

    def __init__(self) -> None:
        from instacolor.detection.base import DetectorConfig

        self.config = DetectorConfig()

    def detect(self, light: np.ndarray):
        """One instance ("car"): the largest region where L has no gradient."""
        import cv2

        from instacolor.detection.base import Detection
        from instacolor.structures import Instances

        gy, gx = np.gradient(light.astype(np.float64))
        flat = ((np.abs(gx) + np.abs(gy)) < 1e-6).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(flat)
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        mask = labels == biggest
        found = Instances.from_masks(mask[None], scores=[0.9], labels=[2])  # "car"
        return Detection(instances=found, semantic=None, backend="flat-region")


def wavy_gray(path: Path, k: int, shape=(48, 64)) -> None:
    """Save a wavy gray 8-bit image, different for each ``k``, at ``path``."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    gray = 120 + 60 * np.sin(x / (5 + k)) + 30 * np.cos(y / 4)
    Image.fromarray(gray.clip(0, 255).astype(np.uint8)).save(path)


def make_hostile_batch(root: Path) -> Path:
    """A batch whose names, manifest errors and review log carry HTML and script."""
    inputs = root / "in"
    inputs.mkdir(parents=True)
    wavy_gray(inputs / XSS_NAME, 0)
    wavy_gray(inputs / "plain.png", 1)
    outdir = root / "out"
    assert main(["colorize", str(inputs), "-o", str(outdir), "--working-size", "64",
                 "--no-progress"]) == 0  # fmt: skip
    record = {"status": "failed", "input": str(inputs / "bad<b>.png"),
              "output": str(outdir / "bad<b>.png"), "error": XSS_ERROR}  # fmt: skip
    with (outdir / "manifest.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    entry = {"image": str(inputs / "plain.png"), "output": str(outdir / "plain.png"),
             "output_sha256": sha(outdir / "plain.png"), "decision": "accept",
             "comment": XSS_COMMENT, "hints": None, "time": "<i>t</i>",
             "reviewer": XSS_REVIEWER}  # fmt: skip
    (outdir / "review.jsonl").write_text(json.dumps(entry) + "\n")
    return outdir


def request(server, method, path, *, body=None, headers=None, host=None):
    """``(status, headers, body bytes)`` of one raw request (no redirects followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        sent = {"Host": host or f"127.0.0.1:{server.port}", **(headers or {})}
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def post(server, path, body, **kw):
    """``request`` a POST with the review token and a JSON body."""
    headers = {"X-Review-Token": server.state.token, **kw.pop("headers", {})}
    return request(server, "POST", path, body=body, headers=headers, **kw)


def copy_batch(hostile: Path, target: Path, out: str = "out") -> Path:
    """The batch copied to ``target`` (outputs in ``target/out``), its manifest pointing there."""
    shutil.copytree(hostile.parent, target, symlinks=True)
    if out != "out":
        (target / "out").rename(target / out)
    manifest = target / out / "manifest.jsonl"
    text = manifest.read_text().replace(str(hostile), str(target / out))
    manifest.write_text(text.replace(str(hostile.parent), str(target)))
    (target / out / "review.jsonl").unlink()
    return target / out


#: A reference file name that would run script if a page built HTML from it.
XSS_REFERENCE = "<img src=x onerror=\"window.__xss='reference'\">'\"ü.png"


def colour_photo(path: Path) -> Path:
    """A colour photo stand-in: textured red and blue halves, 72x96."""
    path.parent.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:72, 0:96]
    tex = 0.55 + 0.35 * np.sin(x / 3.0) * np.where(x < 48, 1.0, np.sin(y / 4.0))
    hue = np.where((x < 48)[..., None], [1.0, 0.3, 0.25], [0.25, 0.45, 1.0])
    Image.fromarray((np.clip(tex, 0, 1)[..., None] * hue * 255).astype(np.uint8)).save(path)
    return path
