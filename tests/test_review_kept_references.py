"""instacolor review keeps the references an output was made with (a batch's --reference).

A batch colorized with ``--reference`` takes colours from that photo; a reviewer's
preview and "apply" must keep them (unless asked not to), and a manifest record naming
references must not make the app read or use a file whose bytes it does not vouch for.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")

from instacolor.cli.main import main
from tests.review_helpers import (  # the fixtures server, client over `batch`
    XSS_REFERENCE,
    client_fixture,  # noqa: F401
    index_of,
    server_fixture,  # noqa: F401
    sha,
)
from tests.review_helpers import colour_photo as _colour

_HINT = {"points": [{"x": 30, "y": 30, "color": "#20c040", "radius": 2}]}


def _scans(inputs: Path) -> None:
    inputs.mkdir(parents=True)
    y, x = np.mgrid[0:72, 0:96]
    for k in range(3):
        gray = 120 + 50 * np.sin(x / (6 + k)) + 30 * np.cos(y / 5)
        gray[16:56, 20:60] = 210 - 50 * k
        Image.fromarray(gray.clip(0, 255).astype(np.uint8)).save(inputs / f"scan{k}.png")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Three scans colorized with a reference kept outside the input folder; scan2's
    latest record is rewritten to name hostile references."""
    root = tmp_path_factory.mktemp("kept")
    inputs, outdir = root / "in", root / "out"
    _scans(inputs)
    hall = _colour(root / "refs" / "hall.png")
    code = main(["colorize", str(inputs), "-o", str(outdir), "--working-size", "64",
                 "--reference", str(hall), "--no-progress"])  # fmt: skip
    assert code == 0
    manifest = outdir / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    (scan2,) = [r for r in records if r.get("input", "").endswith("scan2.png")]
    fifo = root / "refs" / "pipe.png"
    os.mkfifo(fifo)
    other = _colour(inputs / XSS_REFERENCE)
    scan2["references"] = [
        "not an entry",
        {"path": "/etc/passwd", "sha256": "0" * 64, "origin": "option"},
        {"path": str(fifo), "sha256": "1" * 64, "origin": "option"},
        {"path": "refs/hall.png", "sha256": sha(hall), "origin": "option"},
        {
            "path": str(other),
            "sha256": hashlib.sha256(b"other bytes").hexdigest(),
            "origin": "hints",
        },
        {"path": str(hall), "sha256": "ZZ", "origin": "option"},
        {"path": str(other), "sha256": sha(other), "origin": "sidecar"},  # found anew
        {"path": str(hall), "sha256": sha(hall), "origin": "option"},
    ]
    with manifest.open("a") as f:
        f.write(json.dumps(scan2) + "\n")
    return outdir


def _image(answer: dict) -> np.ndarray:
    raw = base64.b64decode(answer["image"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), np.float64)


def _output(batch: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(batch / name).convert("RGB"), np.float64)


def _info(client, n: int) -> dict:
    status, body = client.get(f"/api/images/{n}")
    assert status == 200
    return json.loads(body)


def test_the_batch_reference_is_listed_and_the_preview_keeps_it(client, batch):
    n = index_of(client, "scan0.png")
    info = _info(client, n)
    assert info["kept_references"] == ["hall.png"] and info["dropped_references"] == []
    status, kept = client.post(f"/api/images/{n}/preview", {"points": []})
    assert status == 200, kept
    status, plain = client.post(f"/api/images/{n}/preview", {"keep_references": False})
    assert status == 200, plain
    output = _output(batch, "scan0.png")
    assert np.abs(_image(kept) - output).mean() < 1.0  # the preview is the output
    assert np.abs(_image(plain) - output).mean() > 3.0  # the reference's colours are gone


def test_apply_keeps_the_batch_reference_unless_asked(client, batch):
    n = index_of(client, "scan1.png")
    hall = (batch.parent / "refs" / "hall.png").resolve()
    status, body = client.post(f"/api/images/{n}/apply", _HINT)
    assert status == 200, body
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["references"] == [{"path": str(hall), "sha256": sha(hall), "origin": "option"}]
    assert last["review"]["keep_references"] is True and last["hints"] == 1
    kept = _output(batch, "scan1.png")
    status, body = client.post(f"/api/images/{n}/apply", {**_HINT, "keep_references": False})
    assert status == 200, body
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["references"] == [] and last["review"]["keep_references"] is False
    assert np.abs(_output(batch, "scan1.png") - kept).mean() > 3.0
    assert _info(client, n)["kept_references"] == []  # the new output has none


def test_a_hostile_record_names_nothing_the_app_uses(client, batch):
    n = index_of(client, "scan2.png")
    info = _info(client, n)
    assert info["kept_references"] == ["hall.png"]  # the one entry whose bytes match
    dropped = info["dropped_references"]
    assert len(dropped) == 6, dropped
    assert sum("changed since" in d for d in dropped) == 2  # /etc/passwd, the XSS-named file
    assert sum("not a regular image file" in d for d in dropped) == 1  # the FIFO: never opened
    assert sum("not valid" in d for d in dropped) == 3  # not an entry, relative, bad sha256
    assert not any("/etc" in d or "refs/" in d for d in dropped)  # base names only
    status, body = client.post(f"/api/images/{n}/preview", {"points": []})
    assert status == 200, body
    assert np.abs(_image(body) - _output(batch, "scan2.png")).mean() < 1.0


@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_a_bad_keep_references_is_400_and_changes_nothing(client, batch, value):
    n = index_of(client, "scan0.png")
    before = {p.name: sha(p) for p in batch.iterdir() if p.is_file()}
    for route in ("preview", "apply"):
        status, body = client.post(f"/api/images/{n}/{route}", {"keep_references": value})
        assert status == 400 and "keep_references" in body["error"], (route, body)
    assert {p.name: sha(p) for p in batch.iterdir() if p.is_file()} == before


def test_a_changed_batch_reference_is_dropped_not_used(client, batch):
    hall = batch.parent / "refs" / "hall.png"
    n = index_of(client, "scan0.png")
    saved = hall.read_bytes()
    try:
        Image.fromarray(np.full((40, 40, 3), (20, 200, 40), np.uint8)).save(hall)
        info = _info(client, n)
        assert info["kept_references"] == []
        assert info["dropped_references"] == [
            "'hall.png': the file changed since the output was made"
        ]
        status, body = client.post(f"/api/images/{n}/preview", {"points": []})
        assert status == 200, body
        assert np.abs(_image(body) - _output(batch, "scan0.png")).mean() > 3.0
    finally:
        hall.write_bytes(saved)
