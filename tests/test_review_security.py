"""instacolor review under attack, over HTTP: headers, Host and token, manifest trust, bad input.

A real batch made by the CLI (inputs with hostile names), real servers on free ports,
real files. The page itself under hostile data is driven in a real browser in
tests/test_review_browser.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")

from instacolor.cli.main import main
from instacolor.review.server import ReviewServer
from tests.review_helpers import (
    XSS_ERROR,
    XSS_NAME,
    XSS_REVIEWER,
    copy_batch,
    make_hostile_batch,
    post,
    request,
    sha,
    wavy_gray,
)

SECRET = b"TOPSECRET-7f3a9 not an image at all"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    return make_hostile_batch(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def server(hostile):
    with ReviewServer.start(hostile, port=0, reviewer=XSS_REVIEWER) as running:
        yield running


@pytest.fixture(scope="module")
def colorizer(server):
    return server.state.engine.colorizer


def index_of(server, name: str) -> int:
    return next(i.index for i in server.state.batch.items if i.input.name == name)


# -- 1. the page: escaping at the root, CSP, no framing ----------------------------------


def test_every_answer_forbids_inline_script_and_framing(server):
    n = index_of(server, "plain.png")
    for method, path in [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/batch"),
                         ("GET", f"/api/images/{n}/gray.png"), ("GET", "/nothing"),
                         ("POST", f"/api/images/{n}/decision")]:  # fmt: skip
        status, headers, _ = request(server, method, path, body={} if method == "POST" else None)
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert (
            "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        )
        assert (
            headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        )
        assert status in (200, 403, 404), path


def test_page_and_script_build_no_html_from_strings():
    from importlib import resources

    static = resources.files("instacolor.review").joinpath("static")
    page = static.joinpath("index.html").read_text()
    script = static.joinpath("app.js").read_text()
    assert all('src="' in tag for tag in page.split("<script")[1:])  # no inline script
    assert " on" not in page.replace(" one ", " ").lower().split("<body", 1)[1].split(">", 1)[0]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "setAttribute(\"on"):  # fmt: skip
        assert sink not in script, sink


def test_hostile_texts_travel_as_plain_json_strings(server):
    status, _, body = request(server, "GET", "/api/batch")
    info = json.loads(body)
    assert status == 200 and info["reviewer"] == XSS_REVIEWER
    names = {i["name"]: i for i in info["items"]}
    assert XSS_NAME in names and names["bad<b>.png"]["error"] == XSS_ERROR
    assert names["plain.png"]["decision"]["reviewer"] == XSS_REVIEWER


def test_page_title_and_token_are_escaped(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b", "o<img src=x onerror=alert(1)>")
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        page = request(running, "GET", "/")[2].decode()
    assert "<img src=x" not in page and "o&lt;img src=x onerror=alert(1)&gt;" in page


# -- 2. binding: loopback by default, elsewhere loud and token-only -----------------------


def test_loopback_server_answers_only_loopback_host_names(server):
    assert request(server, "GET", "/api/batch", host="evil.example:80")[0] == 400
    assert request(server, "GET", "/api/batch", host=f"localhost:{server.port}")[0] == 200
    assert request(server, "GET", "/api/batch")[0] == 200  # reads need no token here


@pytest.fixture(scope="module")
def public(hostile, colorizer):
    with ReviewServer.start(hostile, host="0.0.0.0", port=0, colorizer=colorizer,
                            allowed_hosts=["review.example"], quiet=True) as running:  # fmt: skip
        yield running


def test_public_server_needs_the_token_for_every_request(public):
    n = index_of(public, "plain.png")
    for path in ["/", "/static/app.js", "/api/batch", f"/api/images/{n}",
                 f"/api/images/{n}/gray.png", "/nothing"]:  # fmt: skip
        status, headers, body = request(public, "GET", path)
        assert status == 401, path
        assert b"plain.png" not in body and public.state.token.encode() not in body
        assert headers["x-frame-options"] == "DENY"
    status, _, _ = request(public, "GET", "/api/batch", headers={"X-Review-Token": "wrong"})
    assert status == 401


def test_public_server_token_in_url_becomes_a_cookie(public):
    token = public.state.token
    assert public.url.endswith(f"/?token={token}") and "review.example" in public.url
    status, headers, _ = request(public, "GET", f"/?token={token}&x=1")
    assert status == 303 and headers["location"] == "/?x=1"  # the token leaves the address bar
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    status, _, body = request(public, "GET", "/api/batch", headers=jar)
    assert status == 200 and json.loads(body)["items"]
    assert request(public, "GET", "/api/batch", headers={"X-Review-Token": token})[0] == 200
    n = index_of(public, "plain.png")
    # a cookie alone never changes anything: the header is needed too
    status, _, _ = request(public, "POST", f"/api/images/{n}/decision",
                           body={"decision": "reject"}, headers=jar)  # fmt: skip
    assert status == 403


def test_public_server_keeps_the_host_allow_list(public):
    token = {"X-Review-Token": public.state.token}
    assert request(public, "GET", "/api/batch", headers=token, host="evil.example")[0] == 400
    assert request(public, "GET", "/api/batch", headers=token, host="review.example:1")[0] == 200


def test_public_bind_warns_on_stderr(hostile, colorizer, capfd):
    with ReviewServer.start(hostile, host="0.0.0.0", port=0, colorizer=colorizer) as running:
        err = capfd.readouterr().err
        assert "WARNING" in err and "reachable from other machines" in err
        assert "--allowed-host" in err and running.state.token not in err
        assert running.url.startswith("http://127.0.0.1:") and "?token=" in running.url


@pytest.mark.slow
def test_cli_public_bind_prints_warning_and_token_url(hostile):
    import subprocess
    import sys

    command = [sys.executable, "-m", "instacolor", "review", str(hostile), "--host", "0.0.0.0",
               "--port", "0", "--no-browser", "--allowed-host", "scans.example",
               "--allowed-host", "10.1.2.3"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "reviewing" in line:
                break
        text = "".join(lines)
        assert "WARNING" in text and "scans.example" in text and "10.1.2.3" in text
        assert "http://scans.example:" in text and "/?token=" in text
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- 3. manifest trust ---------------------------------------------------------------------


def _append(outdir: Path, **record) -> None:
    with (outdir / "manifest.jsonl").open("a") as fh:
        fh.write(json.dumps({"status": "done", **record}) + "\n")


def test_a_symlinked_output_is_neither_served_nor_replaced(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b")
    secret = tmp_path / "secret.png"
    wavy_gray(secret, 7)
    before = sha(secret)
    (outdir / "plain.png").unlink()
    (outdir / "plain.png").symlink_to(secret)
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        n = index_of(running, "plain.png")
        for kind in ("color", "thumb", "color-large"):
            status, _, body = request(running, "GET", f"/api/images/{n}/{kind}.png")
            assert status == 403 and b"symbolic link" in body and b"\x89PNG" not in body
        for route, body in [("apply", {}), ("decision", {"decision": "accept"}), ("preview", {})]:
            status, _, answer = post(running, f"/api/images/{n}/{route}", body)
            assert status == 403, (route, answer)
        item = next(i for i in json.loads(request(running, "GET", "/api/batch")[2])["items"]
                    if i["index"] == n)  # fmt: skip
        assert "symbolic link" in item["refused"]
    assert sha(secret) == before and (outdir / "plain.png").is_symlink()
    assert not (outdir / "review.jsonl").exists()


def test_a_symlinked_review_log_is_neither_read_nor_written(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b")
    target = tmp_path / "elsewhere.jsonl"
    target.write_text(json.dumps({"output": "x", "decision": "accept", "comment": "planted"}))
    before = target.read_bytes()
    (outdir / "review.jsonl").symlink_to(target)
    output = outdir / "plain.png"
    output_before = sha(output)
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        n = index_of(running, "plain.png")
        status, _, body = request(running, "GET", "/api/batch")
        assert status == 200 and b"planted" not in body
        for choice in ("accept", "reject"):
            status, _, body = post(running, f"/api/images/{n}/decision", {"decision": choice})
            assert status == 403 and b"symbolic link" in body, body
    assert target.read_bytes() == before and sha(output) == output_before  # XMP unchanged


def test_outputs_outside_outdir_or_not_images_are_refused(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b")
    elsewhere = tmp_path / "elsewhere.png"
    wavy_gray(elsewhere, 3)
    before, manifest_before = sha(elsewhere), None
    inputs = tmp_path / "b" / "in"
    wavy_gray(inputs / "out1.png", 1)
    wavy_gray(inputs / "out2.png", 2)
    _append(
        outdir, input=str(inputs / "out1.png"), output=str(outdir / ".." / ".." / elsewhere.name)
    )
    _append(outdir, input=str(inputs / "out2.png"), output=str(outdir / "manifest.jsonl"))
    manifest_before = (outdir / "manifest.jsonl").read_text()
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        for name, reason in [("out1.png", b"outside OUTDIR"), ("out2.png", b"not a PNG")]:
            n = index_of(running, name)
            status, _, body = request(running, "GET", f"/api/images/{n}/color.png")
            assert status == 403 and reason in body
            for route, payload in [("apply", {}), ("decision", {"decision": "accept"})]:
                status, _, body = post(running, f"/api/images/{n}/{route}", payload)
                assert status == 403 and reason in body, route
    assert sha(elsewhere) == before
    assert (outdir / "manifest.jsonl").read_text() == manifest_before  # nothing appended


def test_inputs_outside_the_input_folders_are_refused(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b")
    outside = tmp_path / "private"
    outside.mkdir()
    wavy_gray(outside / "diary.png", 4)
    shutil.copy(outdir / "plain.png", outdir / "diary.png")
    _append(outdir, input=str(outside / "diary.png"), output=str(outdir / "diary.png"))
    roots = [str(tmp_path / "b" / "in")]
    with ReviewServer.start(outdir, port=0, colorizer=colorizer, input_roots=roots) as running:
        n = index_of(running, "diary.png")
        status, _, body = request(running, "GET", f"/api/images/{n}/gray.png")
        assert status == 403 and b"outside the input folders" in body and b"--input-root" in body
        assert request(running, "GET", f"/api/images/{index_of(running, 'plain.png')}")[0] == 200
    _append(outdir, input="/diary.png", output=str(outdir / "diary.png"))  # common folder: /
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        status, _, body = request(running, "GET", f"/api/images/{index_of(running, 'plain.png')}")
        assert status == 403 and b"--input-root" in body


def test_error_answers_never_carry_file_content(hostile, tmp_path, colorizer):
    outdir = copy_batch(hostile, tmp_path / "b")
    source = tmp_path / "b" / "in" / "plain.png"
    source.write_bytes(SECRET)  # the input is now some other file
    with ReviewServer.start(outdir, port=0, colorizer=colorizer) as running:
        n = index_of(running, "plain.png")
        answers = [request(running, "GET", f"/api/images/{n}"),
                   request(running, "GET", f"/api/images/{n}/gray-large.png"),
                   post(running, f"/api/images/{n}/preview", {}),
                   post(running, f"/api/images/{n}/apply", {})]  # fmt: skip
    for status, _, body in answers:
        assert 400 <= status < 600 and b"TOPSECRET" not in body and b"TOPSECRE" not in body
        assert json.loads(body)["error"]
    assert answers[0][0] == 422 and b"cannot be read" in answers[0][2]


# -- 4. values that used to be 500s --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/images/" + "9" * 5000, "/api/images/" + "1" * 5000 + "/gray.png",
     "/api/images/%C2%B2%C2%B2", "/api/images/%C2%B2/gray.png", "/api/images/0x1",
     "/api/images/1e3/gray.png"],
)  # fmt: skip
def test_odd_image_numbers_are_404(server, path):
    status, _, body = request(server, "GET", path)
    assert status == 404 and b"Traceback" not in body
    assert post(server, path.removesuffix("/gray.png") + "/preview", {})[0] == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 30000, "nested at most"),
        (b'{"points": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested at most"),
        (b'{"points": [{"x": ' + b"1" * 5000 + b', "y": 1, "color": "#ff0000"}]}', "JSON"),
        (json.dumps({"instance_colors": {"²": "#ff0000"}}).encode(), "instance numbers"),
        (json.dumps({"instance_colors": {"1" * 5000: "#ff0000"}}).encode(), "instance numbers"),
        (json.dumps({"instance_colors": {"-1": "#ff0000"}}).encode(), "instance numbers"),
        (b'{"points": [{"x": 1e999, "y": 1, "color": "#ff0000"}]}', ""),
        (b'{"points": [{"x": NaN, "y": 1, "color": "#ff0000"}]}', ""),
        (b"\xff\xfe{}", "JSON"),
    ],
)
def test_hostile_bodies_are_400_with_a_reason(server, body, reason):
    n = index_of(server, "plain.png")
    for route in ("preview", "apply"):
        status, _, answer = post(server, f"/api/images/{n}/{route}", body)
        assert status == 400, (route, answer[:300])
        assert reason in json.loads(answer)["error"]


def test_hostile_decisions_are_400(server):
    n = index_of(server, "plain.png")
    for body in ({"decision": ["accept"]}, {"decision": {"a": 1}}, {"decision": "accept",
                 "comment": {"x": 1}}, {"decision": "x" * 5000}):  # fmt: skip
        status, _, answer = post(server, f"/api/images/{n}/decision", body)
        assert status == 400 and len(answer) < 1000


# -- 5. availability -----------------------------------------------------------------------


def test_full_pool_is_503_and_reads_stay_responsive(hostile, colorizer):
    with ReviewServer.start(hostile, port=0, colorizer=colorizer, queue=1) as running:
        n = index_of(running, "plain.png")
        assert request(running, "GET", f"/api/images/{n}")[0] == 200  # the view is cached
        lock = running.state.engine.lock
        with ThreadPoolExecutor(1) as pool:
            lock.acquire()  # the networks are busy (as with a long apply)
            try:
                first = pool.submit(post, running, f"/api/images/{n}/preview", {})
                deadline = time.monotonic() + 10
                while running.state.colorizing.admitted < 1 and time.monotonic() < deadline:
                    time.sleep(0.01)
                status, headers, body = post(running, f"/api/images/{n}/preview", {})
                assert status == 503 and headers["retry-after"] == "2" and b"busy" in body
                t0 = time.monotonic()
                for path in ("/", "/static/app.js", "/api/batch"):
                    assert request(running, "GET", path)[0] == 200
                assert time.monotonic() - t0 < 5  # answered while the preview waits
                assert not first.done()
            finally:
                lock.release()
            assert first.result(timeout=60)[0] == 200
        assert running.state.colorizing.admitted == 0


def test_large_pictures_are_capped_cached_and_keep_the_tones(tmp_path, colorizer):
    from instacolor.review import render

    inputs = tmp_path / "in"
    inputs.mkdir()
    ramp = (np.linspace(0, 65535, 2200)[None, :] * np.ones((60, 1))).astype(np.uint16)
    Image.fromarray(ramp).save(inputs / "wide.png")
    outdir = tmp_path / "out"
    assert main(["colorize", str(inputs), "-o", str(outdir), "--working-size", "64",
                 "--no-progress"]) == 0  # fmt: skip
    with ReviewServer.start(outdir, port=0, colorizer=colorizer, display_size=256) as running:
        engine = running.state.engine
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda k: request(running, "GET", f"/api/images/0/{k}.png"),
                                    ["gray-large", "color-large"] * 2))  # fmt: skip
        assert [a[0] for a in answers] == [200] * 4
        sizes = {Image.open(io.BytesIO(a[2])).size for a in answers}
        assert sizes == {(render.LARGE_SIZE, round(60 * render.LARGE_SIZE / 2200))}
        assert answers[0][2] == answers[2][2]  # the same cached bytes
        assert set(engine.large) == {(0, "gray-large"), (0, "color-large")}
        gray = np.asarray(Image.open(io.BytesIO(answers[0][2])).convert("L"))
        ramp8 = np.linspace(0, 255, gray.shape[1])
        assert np.abs(gray.mean(0) - ramp8).max() < 3  # the reduced decode keeps the tones
