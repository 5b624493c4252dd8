"""instacolor review over HTTP: a real batch, a real server on a free port, real files.

The browser tests (test_review_browser.py) drive the page; these check the API's
contract: what it serves, what it refuses, and what it writes.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")

from instacolor.cli.main import main
from instacolor.io.archival.provenance import read_provenance
from instacolor.review.server import ReviewServer
from instacolor.review.stamp import read_review
from tests.review_helpers import (  # the fixtures server, client over this module's batch
    N_IMAGES,
    OPENER,
    Client,
    FlatRegionDetector,
    client_fixture,  # noqa: F401
    index_of,
    make_batch,
    server_fixture,  # noqa: F401
    sha,
)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    return make_batch(tmp_path_factory.mktemp("review"))


def test_batch_lists_every_input_with_its_status(client):
    info = json.loads(client.get("/api/batch")[1])
    assert sorted(i["name"] for i in info["items"]) == [
        "broken.png",
        *[f"scan{k}.png" for k in range(N_IMAGES)],
    ]
    status = {i["name"]: i["status"] for i in info["items"]}
    assert status["broken.png"] == "failed" and status["scan0.png"] == "done"
    assert info["confidence"] is False and "no confidence map" in info["confidence_note"]
    assert info["reviewer"] == "ada" and info["working_size"] == 64


def test_pictures_are_served_by_number_and_kind(client):
    n = index_of(client, "scan1.png")
    for kind in ("thumb", "gray", "color", "instances"):
        status, data = client.get(f"/api/images/{n}/{kind}.png")
        assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n", kind
    assert client.get(f"/api/images/{n}/confidence.png")[0] == 404  # no trained head
    assert client.get(f"/api/images/{index_of(client, 'broken.png')}/color.png")[0] == 404
    assert client.get("/api/images/99/gray.png")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../manifest.jsonl",
        "/static/../../manifest.jsonl",
        "/static/..%2F..%2Fmanifest.jsonl",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/api/images/..%2F..%2Fout%2Fmanifest.jsonl/gray.png",
        "/api/images/0/..%2F..%2Fmanifest.png",
        "/api/images/-1/gray.png",
        "/static/index.html",
        "/manifest.jsonl",
        "/review.jsonl",
    ],
)
def test_traversal_and_unlisted_files_get_404(client, batch, path):
    status, data = client.get(path)
    assert status == 404
    assert b'"status"' not in data and b"root:" not in data


def test_mutating_requests_need_the_token_and_json(client):
    n = index_of(client, "scan0.png")
    for route in ("preview", "apply", "decision"):
        status, body = client.post(f"/api/images/{n}/{route}", {}, token=False)
        assert status == 403 and "X-Review-Token" in body["error"]
        assert client.post(f"/api/images/{n}/{route}", {}, token="wrong")[0] == 403
    upload = b"--x\r\nContent-Disposition: form-data; name=file; filename=a.png\r\n\r\nPNG\r\n--x--"
    status, body = client.post(
        f"/api/images/{n}/apply", data=upload, kind="multipart/form-data; boundary=x"
    )
    assert status == 415 and "uploads" in body["error"]
    status, body = client.post(f"/api/images/{n}/preview", data=b"{" + b" " * 70000 + b"}")
    assert status == 413


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"points": [{"x": 500, "y": 10, "color": "#ff0000"}]}, "inside the image"),
        ({"points": [{"x": 5, "y": 10, "color": "red"}]}, "hex colour"),
        ({"points": [{"x": 5, "y": 10}]}, "color"),
        ({"points": "everywhere"}, "list"),
        ({"instance_colors": {"0": "#00ff00"}}, "instance"),
        ([1, 2, 3], "JSON object"),
        ({"points": [{"x": 1, "y": 1, "color": "#ff0000"}] * 201}, "at most 200"),
    ],
)
def test_bad_hint_payload_is_400_with_a_reason(client, payload, reason):
    n = index_of(client, "scan0.png")
    for route in ("preview", "apply"):
        status, body = client.post(f"/api/images/{n}/{route}", payload)
        assert status == 400, body
        assert reason in body["error"]


def _near(rgb: np.ndarray, x: int, y: int, r: int = 2) -> np.ndarray:
    return rgb[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).astype(float).mean(0)


def test_preview_colours_near_the_hint_and_writes_nothing(client, batch):
    import base64
    import io

    n = index_of(client, "scan2.png")
    before = {p.name: sha(p) for p in batch.iterdir()}
    status, plain = client.post(f"/api/images/{n}/preview", {"points": []})
    assert status == 200
    hint = {"points": [{"x": 40, "y": 36, "color": "#1040ff", "radius": 2}]}
    status, hinted = client.post(f"/api/images/{n}/preview", hint)
    # its latency is measured by tools/benchmarks/review.py (docs/review.md), not here
    assert status == 200 and hinted["seconds"] >= 0

    def decode(data):
        raw = base64.b64decode(data["image"].split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))

    a, b = decode(plain), decode(hinted)
    assert a.shape == b.shape == (72, 96, 3)
    near_a, near_b = _near(a, 40, 36), _near(b, 40, 36)
    assert near_b[2] - near_b[0] > near_a[2] - near_a[0] + 20  # bluer where clicked
    assert {p.name: sha(p) for p in batch.iterdir()} == before


def test_apply_writes_a_new_output_and_a_manifest_record(client, batch):
    n = index_of(client, "scan1.png")
    source, output = batch.parent / "in" / "scan1.png", batch / "scan1.png"
    input_sha, old_sha = sha(source), sha(output)
    hint = {"points": [{"x": 40, "y": 30, "color": "#20c040", "radius": 3}]}
    status, body = client.post(f"/api/images/{n}/apply", hint)
    assert status == 200, body
    assert sha(output) != old_sha and sha(output) == body["record"]["output_sha256"]
    assert sha(source) == input_sha  # the input is only read
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["status"] == "done" and last["output"] == str(output)
    assert last["review"]["hints"]["points"][0]["x"] == 40.0 and last["review"]["reviewer"] == "ada"
    assert last["hints"] == 1 and last["hints_sha256"] == last["review"]["hints_sha256"]
    assert read_provenance(output).input_sha256 == input_sha
    assert not list(batch.glob(".*.tmp"))
    rgb = np.asarray(Image.open(output).convert("RGB"))
    assert _near(rgb, 40, 30)[1] > _near(rgb, 40, 30)[[0, 2]].max() + 10  # green there


def test_a_failed_apply_leaves_output_log_and_server_intact(client, batch):
    n = index_of(client, "scan0.png")
    source, output = batch.parent / "in" / "scan0.png", batch / "scan0.png"
    client.post(f"/api/images/{n}/preview", {"points": []})  # the view is cached
    old_sha, log = sha(output), (batch / "review.jsonl")
    log_before = log.read_bytes() if log.exists() else b""
    moved = source.with_name("away.bin")
    shutil.move(source, moved)
    try:
        status, body = client.post(f"/api/images/{n}/apply", {"points": []})
    finally:
        shutil.move(moved, source)
    assert status == 500 and "output is unchanged" in body["error"]
    assert sha(output) == old_sha
    assert (log.read_bytes() if log.exists() else b"") == log_before
    assert client.get("/api/batch")[0] == 200 and client.get("/")[0] == 200
    assert client.post(f"/api/images/{n}/apply", {"points": []})[0] == 200  # back again


def test_decisions_are_appended_and_the_last_one_wins(client, batch, tmp_path):
    n = index_of(client, "scan2.png")
    output = batch / "scan2.png"
    pixels = np.asarray(Image.open(output).convert("RGB")).copy()
    assert client.post(f"/api/images/{n}/decision", {"decision": "reject"})[0] == 200
    status, body = client.post(
        f"/api/images/{n}/decision", {"decision": "accept", "comment": "sky ok"}
    )
    assert status == 200
    lines = [json.loads(x) for x in (batch / "review.jsonl").read_text().splitlines()]
    mine = [e for e in lines if e["output"] == str(output)]
    assert [e["decision"] for e in mine][-2:] == ["reject", "accept"]
    entry = mine[-1]
    assert entry["reviewer"] == "ada" and entry["comment"] == "sky ok" and entry["time"]
    assert entry["output_sha256"] == sha(output) and entry["image"].endswith("scan2.png")
    review = read_review(output)  # the accepted output's XMP records the review
    assert review["decision"] == "accept" and review["reviewer"] == "ada"
    assert read_provenance(output) is not None
    assert np.array_equal(np.asarray(Image.open(output).convert("RGB")), pixels)
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["output_sha256"] == sha(output)  # --resume keeps the stamped output
    item = next(i for i in json.loads(client.get("/api/batch")[1])["items"] if i["index"] == n)
    assert item["decision"]["decision"] == "accept" and not item["decision"]["stale"]
    listed = tmp_path / "accepted.txt"
    assert main(["review", str(batch), "--export", str(listed)]) == 0
    assert str(output) in listed.read_text().splitlines()
    status, body = client.post(f"/api/images/{n}/decision", {"decision": "maybe"})
    assert status == 400 and "accept" in body["error"]


def test_review_state_survives_a_restart(server, batch):
    client = Client(server)
    n = index_of(client, "scan0.png")
    assert client.post(f"/api/images/{n}/decision", {"decision": "needs-work"})[0] == 200
    with ReviewServer.start(batch, port=0, colorizer=server.state.engine.colorizer) as again:
        other = Client(again)
        assert other.token != client.token
        items = json.loads(other.get("/api/batch")[1])["items"]
        assert next(i for i in items if i["index"] == n)["decision"]["decision"] == "needs-work"
        assert (
            other.post(f"/api/images/{n}/decision", {"decision": "accept"}, token=client.token)[0]
            == 403
        )  # a token of another session


def test_cli_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["review", str(tmp_path), "--no-browser"]) == 2
    assert "manifest.jsonl" in capsys.readouterr().err


def test_two_tabs_never_lose_a_decision(client, batch):
    from concurrent.futures import ThreadPoolExecutor

    n = index_of(client, "scan0.png")
    log = batch / "review.jsonl"
    before = len(log.read_text().splitlines()) if log.exists() else 0
    choices = ["reject", "needs-work"] * 6
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(
                lambda c: client.post(f"/api/images/{n}/decision", {"decision": c, "comment": c}),
                choices,
            )
        )
    assert [a[0] for a in answers] == [200] * len(choices)
    lines = [json.loads(x) for x in log.read_text().splitlines()[before:]]
    assert sorted(e["decision"] for e in lines) == sorted(choices)
    item = next(i for i in json.loads(client.get("/api/batch")[1])["items"] if i["index"] == n)
    assert item["decision"]["decision"] == lines[-1]["decision"]  # the last one wins


def test_large_scans_are_shown_small_and_zoomed_large(server, batch):
    colorizer = server.state.engine.colorizer
    with ReviewServer.start(batch, port=0, colorizer=colorizer, display_size=48) as small:
        client = Client(small)
        n = index_of(client, "scan2.png")
        info = json.loads(client.get(f"/api/images/{n}")[1])
        assert info["size"] == [72, 96] and info["display"] == [36, 48]
        sizes = {}
        for kind in ("gray", "color", "gray-large", "color-large"):
            status, data = client.get(f"/api/images/{n}/{kind}.png")
            assert status == 200
            sizes[kind] = Image.open(io.BytesIO(data)).size
        assert sizes["gray"] == sizes["color"] == (48, 36)
        assert sizes["gray-large"] == sizes["color-large"] == (96, 72)
        hint = {"points": [{"x": 95.9, "y": 71.9, "color": "#ff0000", "radius": 1}]}
        status, body = client.post(f"/api/images/{n}/preview", hint)  # hints in input pixels
        assert status == 200 and body["image"].startswith("data:image/png;base64,")


@pytest.fixture(scope="module")
def detecting(batch, server):
    from instacolor.colorizer import Colorizer

    colorizer = Colorizer("instacolor-w16-v4", working_size=64, detector=FlatRegionDetector())
    with ReviewServer.start(batch, port=0, colorizer=colorizer, reviewer="ada") as running:
        yield Client(running)


def test_instances_are_shown_and_an_instance_colour_lands_inside(detecting):
    import base64

    n = index_of(detecting, "scan2.png")
    info = json.loads(detecting.get(f"/api/images/{n}")[1])
    assert [(i["index"], i["name"]) for i in info["instance_list"]] == [(0, "car")]
    x0, y0, x1, y1 = info["instance_list"][0]["box"]
    assert abs(x0 - 20) <= 1 and abs(y0 - 16) <= 1 and abs(x1 - 60) <= 1 and abs(y1 - 56) <= 1
    status, overlay = detecting.get(f"/api/images/{n}/instances.png")
    gray = detecting.get(f"/api/images/{n}/gray.png")[1]
    assert status == 200 and overlay != gray

    def preview(payload):
        status, body = detecting.post(f"/api/images/{n}/preview", payload)
        assert status == 200, body
        raw = base64.b64decode(body["image"].split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")).astype(float)

    plain, green = preview({}), preview({"instance_colors": {"0": "#10c020"}})
    gain = (green[..., 1] - green[..., [0, 2]].max(-1)) - (
        plain[..., 1] - plain[..., [0, 2]].max(-1)
    )
    inside, outside = gain[24:48, 28:52].mean(), gain[:, 70:].mean()
    assert inside > 15 and inside > outside + 10
    status, body = detecting.post(f"/api/images/{n}/preview", {"instance_colors": {"1": "#fff"}})
    assert status == 400 and "instance" in body["error"]


def test_apply_with_an_instance_colour_uses_the_same_instances(detecting, batch):
    n = index_of(detecting, "scan0.png")
    output = batch / "scan0.png"
    status, body = detecting.post(f"/api/images/{n}/apply", {"instance_colors": {"0": "#10c020"}})
    assert status == 200, body
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["instances"] == 1 and last["review"]["hints"]["instance_colors"]["0"]
    rgb = np.asarray(Image.open(output).convert("RGB")).astype(float)
    green = rgb[..., 1] - rgb[..., [0, 2]].max(-1)
    assert green[24:48, 28:52].mean() > green[:, 70:].mean() + 10


@pytest.mark.slow
def test_cli_colorizes_inputs_then_serves_on_localhost(tmp_path):
    import os
    import subprocess
    import sys

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 3, (48, 1))).save(inputs / "a.png")
    out = str(tmp_path / "out")
    command = [sys.executable, "-m", "instacolor", "review", str(inputs), "-o", out]
    command += ["--working-size", "64", "--no-browser", "--port", "0", "--reviewer", "lin"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in process.stderr:
            if "reviewing" in line:
                url = line.split(" at ")[1].split()[0]
                break
        assert url and url.startswith("http://127.0.0.1:")
        with OPENER.open(url + "api/batch") as response:
            info = json.loads(response.read())
        assert [i["name"] for i in info["items"]] == ["a.png"] and info["reviewer"] == "lin"
        assert (tmp_path / "out" / "a.png").is_file()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_apply_waits_for_no_running_batch(client, batch):
    from instacolor.batch.manifest import Manifest

    n = index_of(client, "scan1.png")
    output = batch / "scan1.png"
    before, lines = sha(output), (batch / "manifest.jsonl").read_text()
    running = Manifest(batch / "manifest.jsonl")  # as a colorize batch into OUTDIR holds it
    try:
        status, body = client.post(f"/api/images/{n}/apply", {"points": []})
    finally:
        running.close()
    assert status == 409 and "another instacolor batch" in body["error"]
    assert sha(output) == before and (batch / "manifest.jsonl").read_text() == lines
