"""instacolor review: picking a colour reference for one image (its preview and apply)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")

from tests.review_helpers import (  # the fixtures server, client over this module's batch
    XSS_REFERENCE,
    client_fixture,  # noqa: F401
    index_of,
    make_batch,
    server_fixture,  # noqa: F401
    sha,
)
from tests.review_helpers import colour_photo as _colour


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    outdir = make_batch(root)
    inputs = root / "in"
    _colour(inputs / "ref.jpg")
    _colour(inputs / XSS_REFERENCE)
    _colour(inputs / "colour" / "street.png")
    _colour(inputs / "a" / "b" / "c" / "too-deep.png")
    _colour(inputs / "a" / "b" / "deep.png")
    (inputs / "linked.png").symlink_to(_colour(root / "outside.png"))
    return outdir


def _image(answer: dict) -> np.ndarray:
    raw = base64.b64decode(answer["image"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), np.float64)


def _files(folder: Path) -> dict[str, str]:
    return {str(p): sha(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def test_the_images_of_the_input_folder_are_offered(client):
    n = index_of(client, "scan0.png")
    status, body = client.get(f"/api/images/{n}")
    assert status == 200
    offered = json.loads(body)["references"]
    assert {"ref.jpg", XSS_REFERENCE, "colour/street.png", "scan1.png"} <= set(offered)
    assert "scan0.png" not in offered  # the image itself
    assert "linked.png" not in offered  # a symbolic link
    assert "a/b/deep.png" in offered
    assert not any("too-deep" in name for name in offered)  # two levels down at most


def test_a_picked_reference_colours_the_preview_and_writes_nothing(client, batch):
    n = index_of(client, "scan0.png")
    before = _files(batch.parent)
    status, plain = client.post(f"/api/images/{n}/preview", {"points": []})
    assert status == 200
    status, guided = client.post(f"/api/images/{n}/preview", {"reference": XSS_REFERENCE})
    assert status == 200, guided
    assert np.abs(_image(guided) - _image(plain)).mean() > 3.0
    assert _files(batch.parent) == before


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("../outside.png", "one of the images offered"),
        ("/etc/passwd", "one of the images offered"),
        ("linked.png", "one of the images offered"),
        ("scan1.png", "colour photograph"),  # a gray scan
        ("broken.png", "could not decode"),
        (7, "expected the name of an image"),
        (["ref.jpg"], "expected the name of an image"),
    ],
)
def test_a_bad_reference_is_400_and_changes_nothing(client, batch, reference, reason):
    n = index_of(client, "scan0.png")
    before = _files(batch.parent)
    for route in ("preview", "apply"):
        status, body = client.post(f"/api/images/{n}/{route}", {"reference": reference})
        assert status == 400 and reason in body["error"], (route, body)
    assert _files(batch.parent) == before


def test_apply_with_a_reference_records_it_in_the_manifest(client, batch):
    n = index_of(client, "scan2.png")
    inputs = batch.parent / "in"
    output, old = batch / "scan2.png", sha(batch / "scan2.png")
    beside = sorted(p.name for p in inputs.iterdir())
    status, body = client.post(f"/api/images/{n}/apply", {"reference": "colour/street.png"})
    assert status == 200, body
    assert sha(output) != old
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    street = (inputs / "colour" / "street.png").resolve()
    assert last["references"] == [{"path": str(street), "sha256": sha(street), "origin": "hints"}]
    assert last["review"]["reference"] == "colour/street.png"
    assert sorted(p.name for p in inputs.iterdir()) == beside  # nothing written beside inputs


def test_a_reference_applied_before_stays_with_the_next_apply(client, batch):
    n = index_of(client, "scan1.png")
    street = (batch.parent / "in" / "colour" / "street.png").resolve()
    status, body = client.post(f"/api/images/{n}/apply", {"reference": "colour/street.png"})
    assert status == 200, body
    status, info = client.get(f"/api/images/{n}")
    assert json.loads(info)["kept_references"] == ["street.png"]
    hint = {"points": [{"x": 20, "y": 20, "color": "#2040c0", "radius": 2}]}
    status, body = client.post(f"/api/images/{n}/apply", hint)  # no reference picked now
    assert status == 200, body
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["references"] == [{"path": str(street), "sha256": sha(street), "origin": "hints"}]
    assert last["review"]["reference"] is None and last["hints"] == 1
