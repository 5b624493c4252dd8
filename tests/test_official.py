"""Tests of the one-call download of InstColorization's ``checkpoints.zip``
(instacolor.weights.official).

Google Drive is imitated by a real local server: requests (through gdown) reach it as
an HTTPS proxy (``$HTTPS_PROXY``) that answers ``CONNECT drive.google.com:443`` with a
TLS certificate made here (trusted through ``$REQUESTS_CA_BUNDLE``) and serves Drive's
"too large to scan for viruses" confirmation page before the file, as Drive does for
large files. The production URL and gdown's own confirmation handling are exercised
unchanged; nothing leaves 127.0.0.1. The archives are built here from random
official-format state dicts (width 64 for the full load, width 8 for failure cases).
"""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

from instacolor.errors import DownloadError, MissingDependencyError, WeightsError
from instacolor.models.fusion import FusionGenerator
from instacolor.models.generator import ColorGenerator
from instacolor.weights import get_entry, load_weights, sha256_file
from instacolor.weights.formats import OFFICIAL_FILES
from instacolor.weights.loading import describe_digest, fetch
from instacolor.weights.official import (
    INSTCOLORIZATION_ARCHIVE,
    INSTCOLORIZATION_GDRIVE_ID,
    INSTCOLORIZATION_URL_ENV,
    RECORDED_DIGEST_NOTE,
    digests_path,
)
from tests.conftest import closed_port

NAME = "instcolorization-coco-ffs"
MEMBER = "coco_finetuned_mask_256_ffs"
PART = {
    "latest_net_GComp.pth": "full",
    "latest_net_G.pth": "instance",
    "latest_net_GF.pth": "fusion",
}
UUID = "6d2bd0fb-1c3a-4e2b-9a57-0d8f5a3f2c11"
DRIVE_URL = f"https://drive.google.com/uc?id={INSTCOLORIZATION_GDRIVE_ID}"
CONFIRM_PAGE = (  # the shape of Drive's page; gdown reads the form and its hidden inputs
    "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>\n"
    '<body><div class="uc-main"><p class="uc-warning-subcaption">checkpoints.zip is too '
    "large for Google to scan for viruses. Would you still like to download this file?</p>\n"
    '<form id="download-form" action="https://drive.usercontent.google.com/download" '
    'method="get"><input type="submit" id="uc-download-link" value="Download anyway"/>'
    f'<input type="hidden" name="id" value="{INSTCOLORIZATION_GDRIVE_ID}">'
    '<input type="hidden" name="export" value="download">'
    '<input type="hidden" name="confirm" value="t">'
    f'<input type="hidden" name="uuid" value="{UUID}"></form>\n</div></body></html>\n'
)


# --------------------------------------------------------------------------- archives


def _official_states(width: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Reference-format state dicts with random parameters and BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    nets = {
        "latest_net_GComp.pth": ColorGenerator(width),
        "latest_net_G.pth": ColorGenerator(width),
        "latest_net_GF.pth": FusionGenerator(width),
    }
    states = {}
    for name, net in nets.items():
        state = net.state_dict()
        with torch.no_grad():
            for tensor in state.values():
                if tensor.is_floating_point():
                    tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.1)
        states[name] = state
    return states


def _zip(path: Path, files: dict[str, dict[str, torch.Tensor]], folder: str) -> Path:
    """``checkpoints.zip`` laid out as the reference's: ``checkpoints/<folder>/<file>``."""
    scratch = path.parent / f"{path.stem}-files"
    scratch.mkdir()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, state in files.items():
            torch.save(state, scratch / name)
            zf.write(scratch / name, f"checkpoints/{folder}/{name}")
        decoy = scratch / "decoy.pth"  # another model's folder, as in the real archive
        torch.save({"x": torch.zeros(3)}, decoy)
        zf.write(decoy, "checkpoints/coco_finetuned_mask_256/latest_net_G.pth")
    shutil.rmtree(scratch)
    return path


@pytest.fixture(scope="module")
def zip64(tmp_path_factory):
    states = _official_states(64, seed=64)
    path = _zip(tmp_path_factory.mktemp("zip64") / "checkpoints.zip", states, MEMBER)
    return SimpleNamespace(path=path, states=states)


@pytest.fixture(scope="module")
def zip8(tmp_path_factory):
    states = _official_states(8, seed=8)
    root = tmp_path_factory.mktemp("zip8")
    return SimpleNamespace(
        path=_zip(root / "checkpoints.zip", states, MEMBER),
        wrong=_zip(root / "other.zip", states, "siggraph_retrained"),
        states=states,
    )


# --------------------------------------------------------------------------- Drive imitation


class _Drive(http.server.BaseHTTPRequestHandler):
    """An HTTPS proxy that imitates Google Drive's two-step download of a large file."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_CONNECT(self):
        self.server.tunnels.append(self.path)
        self.send_response(200, "Connection established")
        self.end_headers()
        tls = self.server.tls.wrap_socket(self.connection, server_side=True)
        try:
            _Drive(tls, self.client_address, self.server)
        except OSError:  # the client hung up mid-TLS
            pass
        finally:
            tls.close()
        self.close_connection = True

    def do_GET(self):
        host = self.headers.get("Host", "").split(":")[0]
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append((host, url.path, query))
        asked = (host, url.path, query.get("id"))
        # without Drive's confirm token and uuid there is no file
        confirmed = query.get("confirm") == "t" and query.get("uuid") == UUID
        if asked == ("drive.google.com", "/uc", INSTCOLORIZATION_GDRIVE_ID):
            return self._reply("text/html; charset=utf-8", CONFIRM_PAGE.encode())
        download = ("drive.usercontent.google.com", "/download", INSTCOLORIZATION_GDRIVE_ID)
        if asked == download and confirmed:
            return self._reply("application/octet-stream", self.server.payload.read_bytes())
        self._reply("text/html", b"<html>404 not found</html>", status=404)

    def _reply(self, kind: str, body: bytes, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if kind == "application/octet-stream":
            self.send_header("Content-Disposition", 'attachment; filename="checkpoints.zip"')
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for Drive's three host names (and its key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the imitation's TLS certificate")
    root = tmp_path_factory.mktemp("tls")
    hosts = "DNS:drive.google.com,DNS:docs.google.com,DNS:drive.usercontent.google.com"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"),
         "-subj", "/CN=drive.google.com", "-addext", f"subjectAltName={hosts}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return root


@pytest.fixture
def drive(certificate, zip8, cache, monkeypatch):
    """The Drive imitation on 127.0.0.1, reached as ``$HTTPS_PROXY``; serves ``zip8``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drive)
    server.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.tls.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    server.requests, server.tunnels, server.payload = [], [], zip8.path
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, proxy)
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(INSTCOLORIZATION_URL_ENV, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate / "cert.pem"))
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _fetch_all(progress: bool = False) -> Path:
    entry = get_entry(NAME)
    return fetch(entry, entry.files[0], progress=progress).parent


# --------------------------------------------------------------------------- tests


def test_registry_entry_downloads_the_reference_archive():
    entry = get_entry(NAME)
    assert entry.source == "download" and entry.archive is INSTCOLORIZATION_ARCHIVE
    assert entry.archive.url == DRIVE_URL  # the id in the reference's download.py
    assert entry.archive.member == MEMBER and entry.archive.archive_name == "checkpoints.zip"
    assert [f.name for f in entry.files] == list(OFFICIAL_FILES)


@pytest.mark.slow
def test_first_load_downloads_through_the_confirmation_step_then_only_verifies(drive, zip64, cache):
    drive.payload = zip64.path
    entry = get_entry(NAME)
    assert describe_digest(entry, entry.files[0]) == RECORDED_DIGEST_NOTE

    loaded = load_weights(NAME)
    folder = cache / NAME
    # both of Drive's steps were taken: the page, then the confirmed download
    assert [(h, p) for h, p, _ in drive.requests] == [
        ("drive.google.com", "/uc"),
        ("drive.usercontent.google.com", "/download"),
    ]
    assert drive.requests[1][2]["confirm"] == "t" and drive.requests[1][2]["uuid"] == UUID
    # the folder holds exactly the three files; the digests sit beside it; no leftovers
    assert _files_under(cache) == sorted(
        [*(folder / n for n in OFFICIAL_FILES), digests_path(NAME)]
    )
    record = json.loads(digests_path(NAME).read_text())
    assert record["sha256"] == {n: sha256_file(folder / n) for n in OFFICIAL_FILES}
    assert record["source"] == DRIVE_URL and record["note"] == RECORDED_DIGEST_NOTE
    assert loaded.sha256 == record["sha256"]["latest_net_GF.pth"]
    assert loaded.net.width == 64 and loaded.trained
    for name, part in PART.items():  # every tensor of the served files, in its network
        state = getattr(loaded.net, part).state_dict()
        assert sorted(state) == sorted(zip64.states[name])
        assert all(torch.equal(state[k], v) for k, v in zip64.states[name].items()), name
    got = describe_digest(entry, entry.files[2])
    assert got == f"sha256 {record['sha256'][entry.files[2].name]} ({RECORDED_DIGEST_NOTE})"

    # a second load reads the cache, checks the digests and makes no request
    drive.payload = Path("/nonexistent")
    again = load_weights(NAME)
    assert len(drive.requests) == 2 and again.sha256 == loaded.sha256


@pytest.mark.slow
def test_changed_file_is_refused_with_both_digests(drive, cache):
    folder = _fetch_all()
    recorded = json.loads(digests_path(NAME).read_text())["sha256"]["latest_net_G.pth"]
    target = folder / "latest_net_G.pth"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError) as info:
        load_weights(NAME)
    message = str(info.value)
    assert str(target) in message and recorded in message and sha256_file(target) in message
    assert "Delete" in message and str(digests_path(NAME)) in message
    assert len(drive.requests) == 2  # nothing downloaded again


@pytest.mark.parametrize("how", ["server-down", "mirror-refused"])
def test_offline_names_url_and_folder_and_leaves_nothing(cache, monkeypatch, how):
    closed = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.delenv(INSTCOLORIZATION_URL_ENV, raising=False)
    if how == "server-down":  # the Drive URL itself, through a proxy that refuses
        pytest.importorskip("gdown")
        for var in ("HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(var, closed)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        url = DRIVE_URL
    else:
        url = f"{closed}/checkpoints.zip"
        monkeypatch.setenv(INSTCOLORIZATION_URL_ENV, url)
    with pytest.raises(DownloadError) as info:
        load_weights(NAME)
    message = str(info.value)
    assert url in message and str(cache / NAME) in message and MEMBER in message
    assert _files_under(cache) == [] and list(cache.iterdir()) == []


@pytest.mark.slow
def test_archive_without_the_folder_is_refused_and_leaves_nothing(drive, zip8, cache):
    drive.payload = zip8.wrong
    with pytest.raises(DownloadError) as info:
        _fetch_all()
    message = str(info.value)
    assert f"{MEMBER}/" in message and "latest_net_GF.pth" in message and DRIVE_URL in message
    assert "checkpoints" in message  # what the archive held instead
    assert list(cache.iterdir()) == []


def test_html_instead_of_a_zip_is_refused_and_leaves_nothing(http_root, cache, monkeypatch):
    (http_root.root / "checkpoints.zip").write_text("<html>Quota exceeded</html>")
    monkeypatch.setenv(INSTCOLORIZATION_URL_ENV, f"{http_root.url}/checkpoints.zip")
    with pytest.raises(DownloadError, match="could not be unzipped"):
        _fetch_all()
    assert list(cache.iterdir()) == []


def test_mirror_url_needs_no_gdown(http_root, zip8, cache, monkeypatch):
    shutil.copy(zip8.path, http_root.root / "checkpoints.zip")
    url = f"{http_root.url}/checkpoints.zip"
    monkeypatch.setenv(INSTCOLORIZATION_URL_ENV, url)
    monkeypatch.setitem(sys.modules, "gdown", None)  # `import gdown` now fails
    folder = _fetch_all()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        n: zipfile.ZipFile(zip8.path).read(f"checkpoints/{MEMBER}/{n}") for n in OFFICIAL_FILES
    }
    assert json.loads(digests_path(NAME).read_text())["source"] == url
    assert http_root.server.requests == ["/checkpoints.zip"]


def test_without_gdown_the_error_gives_pip_command_and_manual_steps(cache, monkeypatch):
    monkeypatch.delenv(INSTCOLORIZATION_URL_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "gdown", None)
    with pytest.raises(MissingDependencyError) as info:
        load_weights(NAME)
    message = str(info.value)
    assert "pip install 'instacolor[official]'" in message and "gdown" in message
    assert DRIVE_URL in message and str(cache / NAME) in message and MEMBER in message
    assert _files_under(cache) == []


def test_folder_unzipped_by_hand_gets_its_digests_recorded_then_checked(zip8, cache):
    folder = cache / NAME
    folder.mkdir(parents=True)
    with zipfile.ZipFile(zip8.path) as zf:
        for name in OFFICIAL_FILES:
            (folder / name).write_bytes(zf.read(f"checkpoints/{MEMBER}/{name}"))
    assert _fetch_all() == folder  # present: no download is attempted
    record = json.loads(digests_path(NAME).read_text())["sha256"]
    assert record == {n: sha256_file(folder / n) for n in OFFICIAL_FILES}
    (folder / "latest_net_GComp.pth").write_bytes(b"replaced")
    with pytest.raises(WeightsError, match=r"latest_net_GComp\.pth has changed"):
        _fetch_all()


@pytest.mark.parametrize(
    "text", ["{not json", '{"sha256": ["ab"]}', '{"sha256": {"latest_net_G.pth": "ab"}}', "[]"]
)
def test_unreadable_digest_record_is_a_weights_error(cache, text):
    folder = cache / NAME
    folder.mkdir(parents=True)
    for name in OFFICIAL_FILES:
        (folder / name).write_bytes(b"x")
    digests_path(NAME).write_text(text)
    with pytest.raises(WeightsError) as info:
        _fetch_all()
    assert str(digests_path(NAME)) in str(info.value) and "delete it" in str(info.value)


def test_incomplete_folder_is_named_not_overwritten(cache):
    folder = cache / NAME
    folder.mkdir(parents=True)
    (folder / "latest_net_G.pth").write_bytes(b"mine")
    with pytest.raises(WeightsError) as info:
        _fetch_all()
    assert "latest_net_GF.pth" in str(info.value) and str(folder) in str(info.value)
    assert _files_under(cache) == [folder / "latest_net_G.pth"]
